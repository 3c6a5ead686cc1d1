"""``spasemsr upscale``: image files, folders or globs in, x4 images out, never losing or clobbering an output.

Before any model runs, the output folder must exist or be creatable, be a folder and be writable, and the
outputs must be well named: two inputs that would write one output name, a ``suffix`` with a path
separator or ``..``, or an output that is also an input (even with ``overwrite``) are refused. Each input
is then read, upscaled and written on its own: a bad file or a failed write (a full disk, a permission)
is reported by name and leaves no partial file, the rest finish. Existing outputs are kept unless
``overwrite``; every output is written atomically with the umask's permissions. Ctrl-C stops with one line
saying what was written.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from spasemsr.config.knobs import knob_overrides
from spasemsr.data.images import (
    IMAGE_EXTENSIONS,
    ImageError,
    ImageExtras,
    list_images,
    read_image_with_extras,
    write_image,
)
from spasemsr.data.resize import bicubic_up
from spasemsr.pipeline import sampler_settings
from spasemsr.weights.exports import load_pipeline

OUTPUT_FORMATS = ("png", "jpg", "webp", "tif")


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files as given, folders as their images (``list_images``), globs as their matching images, in order.

    Returns the paths and the items that named nothing (a missing file is kept: reading it reports it).
    """
    paths, empty = [], []
    for item in items:
        if Path(item).is_dir():
            paths += list_images(item)
        elif any(char in item for char in "*?["):  # glob.glob: relative and absolute patterns alike
            matches = sorted(p for p in map(Path, glob.glob(item))
                             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            paths += matches
            if not matches:
                empty.append(item)
        else:
            paths.append(Path(item))
    return list(dict.fromkeys(paths)), empty


def output_paths(inputs: list[Path], out: Path, fmt: str = "png", suffix: str = "") -> dict[Path, Path]:
    """``out/<stem><suffix>.<fmt>`` per input; a name two inputs would share, an output that is an input, or
    a suffix that leaves ``out`` is an error naming them."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    if "/" in suffix or "\\" in suffix or ".." in suffix:
        raise ValueError(f"--suffix {suffix!r} may not hold a path separator or '..': it only extends the file name")
    sources = {path.resolve() for path in inputs}
    targets: dict[Path, Path] = {}
    owners: dict[Path, Path] = {}
    for path in inputs:
        target = out / f"{path.stem}{suffix}.{fmt}"
        if target in owners:
            raise ValueError(f"{owners[target]} and {path} would both be written to {target}; upscale them into "
                             "different --out folders or rename one")
        if target.resolve() in sources:
            raise ValueError(f"{target} is an input and would be overwritten by an output (even --overwrite "
                             "never replaces an input): choose another --out or --suffix")
        owners[target], targets[path] = path, target
    return targets


def check_output_folder(out: Path) -> None:
    """Refuse, before any compute, an output folder that is a file, cannot be created or is not writable."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder for the upscaled images")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out} cannot be created: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable by this user")


class Interrupted(Exception):
    """Ctrl-C during ``upscale_files``: the one-line summary is already printed."""


def pick_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_precision(precision: str, device: str) -> torch.dtype:
    """``auto`` → float16 on CUDA (mixed precision), float32 elsewhere; else the named one."""
    if precision == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; valid: auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def _kept_alpha(extras: ImageExtras, target: Path, scale: int) -> Tensor | None:
    """The input's alpha upscaled bicubically to the output size, or None (no alpha, or a JPEG output)."""
    if extras.alpha is None:
        return None
    if target.suffix == ".jpg":
        print(f"note: {target} is JPEG, which has no alpha channel; the input's alpha is dropped", file=sys.stderr)
        return None
    height, width = extras.alpha.shape[-2:]
    return bicubic_up(extras.alpha[None], (height * scale, width * scale))[0].clamp(0, 1)


def _advance(bar: tqdm, stage: str) -> None:
    """One conditioning stage done: count it and show which."""
    bar.set_postfix_str(stage, refresh=False)
    bar.update()


def upscale_files(inputs: list[str], out: Path, ckpt: Path | None, steps: int | None = None, seed: int = 0,
                  overwrite: bool = False, device: str = "auto", knobs: dict | None = None, fmt: str = "png",
                  suffix: str = "", progress: bool = True, precision: str = "auto", method: str | None = None
                  ) -> list[str]:
    """Upscale every input into ``out/<stem><suffix>.<fmt>``; return the inputs that failed (reasons printed).

    ``inputs`` may be files, folders or glob patterns. The upscaler is the diffusion export ``ckpt`` or, with
    ``method``, a registered restorer (``realesrgan_x4plus``, ``realsr_df2k``, ``bicubic``, ``drm:PATH``; ``NAME:PATH``
    gives it weights). ``knobs`` (e.g. a sweep preset) override the model's sampler settings (a restorer takes only
    the tiling); ``steps`` overrides both. ``precision`` picks mixed precision (``pick_precision``).
    """
    paths, empty = expand_inputs(inputs)
    for item in empty:
        print(f"error: {item} matches no image file", file=sys.stderr)
    targets = output_paths(paths, out, fmt, suffix)
    check_output_folder(out)
    device = pick_device(device)
    dtype = pick_precision(precision, device)
    if method is not None:
        scale, run = _restorer_upscaler(method, device, dtype, knobs or {}, steps)
    else:
        scale, run = _diffusion_upscaler(ckpt, device, dtype, knobs or {}, steps, seed)
    failures, written, kept = list(empty), 0, 0

    def summary() -> str:
        return (f"{written} written, {kept} kept (already there), {len(failures)} failed"
                + (f": {', '.join(failures)}" if failures else ""))

    try:
        for path, target in tqdm(targets.items(), desc="images", unit="image", disable=not progress):
            name = str(path)
            if target.exists() and not overwrite:
                print(f"skip {name}: {target} exists (use --overwrite to replace it)", file=sys.stderr)
                kept += 1
                continue
            try:
                image, extras = read_image_with_extras(path)
                lr = image.unsqueeze(0).to(device)
            except ImageError as err:
                print(f"error: {err}", file=sys.stderr)
                failures.append(name)
                continue
            with tqdm(desc=f"{path.name}: conditions", unit="stage", leave=False, disable=not progress) as stages, \
                    tqdm(desc=path.name, unit="tile-step", leave=False, disable=not progress) as bar:
                sr = run(lr, stages, bar)
            try:
                write_image(sr, target, _kept_alpha(extras, target, scale), extras.icc_profile)
            except OSError as err:  # a full disk, a permission: this image is lost, not the others
                print(f"error: {name}: cannot write {target}: {err.strerror or err}", file=sys.stderr)
                failures.append(name)
                continue
            written += 1
            print(f"{name} -> {target}")
    except KeyboardInterrupt:
        unfinished = len(targets) - written - kept - (len(failures) - len(empty))
        print(f"interrupted: {summary()}; {unfinished} not finished", file=sys.stderr)
        raise Interrupted from None
    print(summary(), file=sys.stderr if failures else sys.stdout)
    return failures


Run = Callable[[Tensor, tqdm, tqdm], Tensor]  # (LR (1, 3, h, w), stage bar, step bar) -> SR (3, H, W) on the CPU


def _diffusion_upscaler(ckpt: Path, device: str, dtype: torch.dtype, knobs: dict, steps: int | None,
                        seed: int) -> tuple[int, Run]:
    """The exported diffusion model's pipeline, sampling each image with a fresh generator seeded by ``seed``."""
    pipeline = load_pipeline(ckpt, device=device)
    pipeline.precision = dtype
    overrides = knob_overrides(knobs) | ({"steps": steps} if steps is not None else {})
    pipeline.sampler = sampler_settings(pipeline.sampler, **overrides)

    def run(lr: Tensor, stages: tqdm, bar: tqdm) -> Tensor:
        if hasattr(pipeline.conditioner, "on_stage"):  # SpaSemSR: DRM tiles, grounder, describer, encoders
            pipeline.conditioner.on_stage = partial(_advance, stages)
        pipeline.on_denoise = bar.update
        return pipeline(lr, torch.Generator(device).manual_seed(seed))[0].cpu()

    return pipeline.scale, run


def _restorer_upscaler(method: str, device: str, dtype: torch.dtype, knobs: dict, steps: int | None
                       ) -> tuple[int, Run]:
    """A registered restorer at x4, tile by tile when ``knobs`` ask for tiles (HR pixels, as for diffusion)."""
    from spasemsr.registries import RESTORERS
    from spasemsr.restore.baselines import load_restorer, tiled

    name, _, path = method.partition(":")
    RESTORERS.check(name)
    extra = sorted(set(knob_overrides(knobs)) - {"tile_size", "tile_overlap"}) + (["steps"] if steps else [])
    if extra:
        raise ValueError(f"{method} is a restorer: sampler settings {extra} (presets, steps) do not apply to it")
    scale = 4
    restorer = load_restorer(name, Path(path) if path else None, scale, device)
    tile, overlap = knobs.get("tile_size", 0) // scale, knobs.get("tile_overlap", 64) // scale

    def run(lr: Tensor, stages: tqdm, bar: tqdm) -> Tensor:
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
            return tiled(restorer, lr, scale, tile, overlap, bar.update)[0].float().clamp(0, 1).cpu()

    return scale, run
