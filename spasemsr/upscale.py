"""``spasemsr upscale``: image files in, x4 PNGs out, never losing or clobbering an output.

Each input is read and checked on its own; a bad file is reported by name and skipped, the rest
finish. Existing outputs are kept unless ``overwrite``; every output is written atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from spasemsr.data.images import ImageError, read_image, write_image
from spasemsr.evaluation.runner import knob_overrides
from spasemsr.loading import load_pipeline
from spasemsr.pipeline import sampler_settings


def upscale_files(inputs: list[str], out: Path, ckpt: Path, steps: int | None = None, seed: int = 0,
                  overwrite: bool = False, device: str = "cpu", knobs: dict | None = None) -> list[str]:
    """Upscale every input into ``out/<stem>.png``; return the inputs that failed (with reasons printed).

    ``knobs`` (e.g. a sweep preset) override the model's sampler settings; ``steps`` overrides both.
    """
    pipeline = load_pipeline(ckpt, device=device)
    overrides = knob_overrides(knobs or {}) | ({"steps": steps} if steps is not None else {})
    pipeline.sampler = sampler_settings(pipeline.sampler, **overrides)
    failures = []
    for name in inputs:
        target = out / f"{Path(name).stem}.png"
        if target.exists() and not overwrite:
            print(f"skip {name}: {target} exists (use --overwrite to replace it)", file=sys.stderr)
            continue
        try:
            lr = read_image(name).unsqueeze(0).to(device)
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
            failures.append(name)
            continue
        generator = torch.Generator(device).manual_seed(seed)
        write_image(pipeline(lr, generator)[0].cpu(), target)
        print(f"{name} -> {target}")
    if failures:
        print(f"{len(failures)} of {len(inputs)} inputs failed: {', '.join(failures)}", file=sys.stderr)
    return failures
