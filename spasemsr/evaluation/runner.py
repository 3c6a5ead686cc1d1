"""``spasemsr evaluate``: one method on one set under the declared protocol, with the record that pins the result.

A method is ``bicubic``, ``drm:PATH`` (a DRM folder) or the path of an exported diffusion model. Every
SR is written as a PNG into ``out_dir/sr/`` and scored as read back from that file, so the numbers are
those of the saved image. ``metrics.csv`` holds only metrics that were computed for every image;
the others are listed under ``unavailable`` in ``metrics.json`` with the reason, never as numbers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor

from spasemsr.config import config_hash
from spasemsr.config.knobs import knob_overrides
from spasemsr.data.images import read_image, write_image
from spasemsr.evaluation.datasets import EvalSet
from spasemsr.metrics.registry import METRICS, available, compute, usable
from spasemsr.training.manifest import file_sha256, package_versions
from spasemsr.utils.atomic import atomic_path, atomic_write_text

DEFAULT_METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "lr_consistency", "niqe", "piqe",
                   "lpips", "dists", "musiq", "maniqa", "clipiqa", "pi")
@dataclass(frozen=True)
class Method:
    """An SR method ready to run, and what the record says about it."""

    upscale: Callable[[Tensor], Tensor]
    ckpt: str
    config: str | None
    knobs: dict | None


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the (relative path, SHA-256) of every safetensors file in ``folder``: the checkpoint's identity."""
    files = sorted(folder.rglob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no *.safetensors files; expected an exported model folder")
    rows = [(str(path.relative_to(folder)), file_sha256(path)) for path in files]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def export_config_hash(folder: Path) -> str | None:
    """The config hash from the export's manifest.json (in ``folder`` or its parent), else of its config.yaml."""
    for place in (folder, folder.parent):
        if (place / "manifest.json").is_file():
            return json.loads((place / "manifest.json").read_text())["config_hash"]
    for place in (folder, folder.parent):
        if (place / "config.yaml").is_file():
            return config_hash(OmegaConf.load(place / "config.yaml"))
    return None


def load_method(method: str, scale: int, knobs: Mapping[str, object], seed: int, device: str) -> Method:
    """Build ``bicubic``, ``drm:PATH`` or an exported diffusion model (its sampler knobs overridden by ``knobs``)."""
    from spasemsr.restore.baselines import load_restorer

    overrides = knob_overrides(knobs)
    if method == "bicubic" or method.startswith("drm:"):
        if overrides:
            raise ValueError(f"knobs {sorted(overrides)} apply to diffusion models only, not to {method!r}")
        if method == "bicubic":
            return Method(load_restorer("bicubic", None, scale, device), "bicubic", None, None)
        path = Path(method.removeprefix("drm:"))
        return Method(load_restorer("drm", path, scale, device), weights_sha256(path), export_config_hash(path), None)
    from spasemsr.pipeline import sampler_settings
    from spasemsr.weights.exports import load_pipeline

    export = Path(method)
    pipeline = load_pipeline(export, device=device)
    if pipeline.scale != scale:
        raise ValueError(f"{export} is a x{pipeline.scale} model, but the evaluation set is x{scale}")
    settings = sampler_settings(pipeline.sampler, **overrides, seed=seed)

    def upscale(lr: Tensor) -> Tensor:  # a fresh generator per image, as `spasemsr upscale` seeds it
        return pipeline(lr, torch.Generator(device).manual_seed(seed), settings)

    return Method(upscale, weights_sha256(export), export_config_hash(export), asdict(settings))


def protocol(metrics: Sequence[str], dataset: EvalSet) -> dict:
    """The declared protocol of one result: every metric's variant and direction, scale, crop, notes."""
    return {
        "scale": dataset.scale,
        "border_crop": dataset.scale,
        "border_crop_applies_to": "psnr_y, ssim_y, psnr_rgb, ms_ssim (see each variant)",
        "scored_image": "the saved 8-bit SR PNG",
        "metrics": {name: {"variant": METRICS[name].variant, "kind": METRICS[name].kind,
                           "lower_better": METRICS[name].lower_better,
                           "direction": "lower is better" if METRICS[name].lower_better else "higher is better"}
                    for name in metrics},
        "notes": list(dataset.notes),
    }


def _score(name: str, sr: Tensor, hr: Tensor, lr: Tensor, scale: int) -> float:
    return float(compute(name, sr, hr=hr, lr=lr, scale=scale)[0])


def code_fingerprint() -> str:
    """SHA-256 of the package's source files: SR images of one code version are never reused by another."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def _sampling_identity(method: str, runner: Method, dataset: EvalSet, seed: int) -> dict:
    """What the SR images in ``sr/`` are a function of (written before the first one, so a rerun can resume)."""
    return {"method": method, "ckpt": runner.ckpt, "knobs": runner.knobs, "dataset": dataset.hash, "seed": seed,
            "code": code_fingerprint()}


def _reusable_sr(out_dir: Path, runner: Method, dataset: EvalSet, seed: int) -> bool:
    """Whether ``out_dir`` holds the SR images of this very method, checkpoint, knobs, set and seed."""
    previous = out_dir / "metrics.json"
    if not previous.is_file():
        return False
    record = json.loads(previous.read_text())["record"]
    same = (record["ckpt"], record["knobs"], record["dataset"]["hash"], record["seed"])
    return same == (runner.ckpt, runner.knobs, dataset.hash, seed) and all(
        (out_dir / "sr" / f"{entry.name}.png").is_file() for entry in dataset.entries)


def evaluate(method: str, dataset: EvalSet, metrics: Sequence[str] | None, out_dir: str | Path,
             knobs: Mapping[str, object] | None = None, seed: int = 0, device: str = "cpu",
             rescore: bool = False, resume: bool = True) -> dict:
    """Run ``method`` on every image of ``dataset``, score it, write sr/, metrics.csv, metrics.json; return the json.

    Every HR and LR is decoded before the method is loaded (a bad file stops the run naming it). ``rescore``
    scores the SR images an earlier complete run of the same method, checkpoint, knobs, set and seed left in
    ``out_dir`` instead of sampling again (after a metric changed). Otherwise, with ``resume``, the SR images
    an interrupted run of the same method, checkpoint, knobs, set, seed and code left are kept and only the
    missing ones are sampled; ``resume=False`` samples everything afresh.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    dataset.verify()
    metrics = list(metrics or DEFAULT_METRICS)
    unavailable = {}
    for name in metrics:  # decided before any sampling, not discovered at the first small image
        ready, reason = usable(name, dataset.smallest, dataset.scale)
        if not ready:
            unavailable[name] = reason
            if available(name)[0]:  # present here, but the images are too small for it
                print(f"warning: {reason}; it is not scored", file=sys.stderr)
    scoring = [name for name in metrics if name not in unavailable]
    runner = load_method(method, dataset.scale, knobs or {}, seed, device)
    reuse = rescore and _reusable_sr(out_dir, runner, dataset, seed)
    if rescore and not reuse:
        print(f"{out_dir}: no SR images of this method, checkpoint, knobs, set and seed to rescore; sampling")
    identity, marker = _sampling_identity(method, runner, dataset, seed), out_dir / "sr" / "identity.json"
    resumable = resume and not reuse and marker.is_file() and json.loads(marker.read_text()) == identity
    if not reuse:
        atomic_write_text(marker, json.dumps(identity, indent=2))
    per_image: dict[str, dict[str, float]] = {}
    resumed = []
    for index, image in enumerate(dataset, 1):
        lr = image.lr[None]
        target = out_dir / "sr" / f"{image.name}.png"
        if resumable and target.is_file():
            resumed.append(image.name)
        elif not reuse:
            with torch.no_grad():
                sr = runner.upscale(lr.to(device))[0].cpu()
            if sr.shape != image.hr.shape:
                raise ValueError(f"{method} made a {tuple(sr.shape)} SR of {image.name}, "
                                 f"expected {tuple(image.hr.shape)}")
            write_image(sr, target)
        saved = read_image(target)[None]
        scores = {}
        for name in list(scoring):
            try:
                scores[name] = _score(name, saved, image.hr[None], lr, dataset.scale)
            except (ValueError, RuntimeError) as err:  # e.g. ms_ssim or niqe on an image too small for them
                unavailable[name] = f"{name}: skipped, cannot score {image.name} ({type(err).__name__}: {err})"
                scoring.remove(name)
                print(f"warning: {unavailable[name]}", file=sys.stderr)
        per_image[image.name] = scores
        print(f"[{index}/{len(dataset)}] {image.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in scores.items()))
    per_image = {image: {k: v for k, v in scores.items() if k in scoring} for image, scores in per_image.items()}
    result = {
        "means": {name: sum(s[name] for s in per_image.values()) / len(per_image) for name in scoring},
        "per_image": per_image,
        "protocol": protocol(metrics, dataset),
        "unavailable": unavailable,
        "record": {
            "method": method, "ckpt": runner.ckpt, "config": runner.config, "knobs": runner.knobs,
            "dataset": dataset.record(), "seed": seed, "versions": package_versions(), "rescored": reuse,
            "resumed_images": resumed,
            "wall_seconds": round(time.perf_counter() - started, 2),
        },
    }
    _write_csv(out_dir / "metrics.csv", scoring, per_image)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    write_hparams(out_dir / "tb", method, runner.knobs, result["means"])
    return result


def write_hparams(folder: Path, method: str, knobs: dict | None, means: dict[str, float]) -> None:
    """One TensorBoard HPARAMS row (knobs → mean metrics), so every evaluated PD point shows up there."""
    from torch.utils.tensorboard import SummaryWriter

    hparams = {"method": method, **{k: v for k, v in (knobs or {}).items() if isinstance(v, (int, float, str))}}
    finite = {f"eval/{k}": v for k, v in means.items() if math.isfinite(v)}
    with SummaryWriter(str(folder)) as writer:
        writer.add_hparams(hparams, finite, run_name=".")


def _write_csv(path: Path, columns: list[str], per_image: dict[str, dict[str, float]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", *columns])
        for image, scores in per_image.items():
            writer.writerow([image, *(repr(scores[name]) for name in columns)])
