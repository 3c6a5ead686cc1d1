"""``spasemsr evaluate``: one method on one set under the declared protocol, with the record that pins the result.

A method is ``bicubic``, ``drm:PATH`` (a DRM folder) or the path of an exported diffusion model. Every
SR is written as a PNG into ``out_dir/sr/`` and scored as read back from that file, so the numbers are
those of the saved image. ``metrics.csv`` holds only metrics that were computed for every image;
the others are listed under ``unavailable`` in ``metrics.json`` with the reason, never as numbers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.data.images import read_image, write_image
from spasemsr.evaluation.datasets import EvalSet
from spasemsr.evaluation.identity import reusable_sr, sampling_identity
from spasemsr.evaluation.methods import load_method
from spasemsr.evaluation.protocol import DEFAULT_METRICS, protocol
from spasemsr.evaluation.records import write_csv, write_hparams
from spasemsr.metrics.registry import available, compute, usable
from spasemsr.training.manifest import package_versions
from spasemsr.utils.atomic import atomic_write_text


def seed_folder(folder: Path, seed: int) -> Path:
    """Where one sampler seed's run of a method lives: seed 0 in the method's folder, others in ``seed<N>/`` in it."""
    return folder if seed == 0 else folder / f"seed{seed}"


def _score(name: str, sr: Tensor, hr: Tensor, lr: Tensor, scale: int) -> float:
    return float(compute(name, sr, hr=hr, lr=lr, scale=scale)[0])


def evaluate(method: str, dataset: EvalSet, metrics: Sequence[str] | None, out_dir: str | Path,
             knobs: Mapping[str, object] | None = None, seed: int = 0, device: str = "cpu",
             rescore: bool = False, resume: bool = True, drm: str | None = None) -> dict:
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
    runner = load_method(method, dataset.scale, knobs or {}, seed, device, drm)
    reuse = rescore and reusable_sr(out_dir, runner, dataset, seed)
    if rescore and not reuse:
        print(f"{out_dir}: no SR images of this method, checkpoint, knobs, set and seed to rescore; sampling")
    identity, marker = sampling_identity(method, runner, dataset, seed), out_dir / "sr" / "identity.json"
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
                sr = runner.upscale(lr.to(device), image.known)[0].cpu()
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
            "method": method, "ckpt": runner.ckpt, "backbone": runner.backbone, "config": runner.config,
            "knobs": runner.knobs,
            "dataset": dataset.record(), "seed": seed, "versions": package_versions(), "rescored": reuse,
            "resumed_images": resumed,
            "wall_seconds": round(time.perf_counter() - started, 2),
        },
    }
    write_csv(out_dir / "metrics.csv", scoring, per_image)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2))
    write_hparams(out_dir / "tb", method, runner.knobs, result["means"])
    return result
