"""The manifest written next to exported weights: enough to know what produced them and re-run it."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from lightning.pytorch import Trainer
from omegaconf import DictConfig

from spasemsr.config import training_hash
from spasemsr.utils.atomic import atomic_write_text

PACKAGES = ("spasemsr", "torch", "diffusers", "transformers", "lightning", "kornia", "numpy", "pyiqa", "torchmetrics")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine results."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def data_hash(data: DictConfig) -> str:
    """SHA-256 identifying the training data: bundled checksums, or folder file names and sizes."""
    digest = hashlib.sha256(f"{data.source}|crop={data.crop_size}|scale={data.scale}".encode())
    if data.source == "bundled":
        from spasemsr.data.samples import SAMPLES

        for sample in sorted(SAMPLES, key=lambda s: s.name):
            if sample.split in ("train", "val"):
                digest.update(f"{sample.split}:{sample.name}:{sample.sha256}".encode())
    else:
        for key in ("train_hr", "train_lr", "val_hr", "val_lr"):
            folder = Path(data[key]) if data[key] else None
            for path in sorted(folder.rglob("*")) if folder and folder.is_dir() else []:
                if path.is_file():
                    digest.update(f"{key}:{path.relative_to(folder)}:{path.stat().st_size}".encode())
    return digest.hexdigest()


def write_manifest(folder: Path, cfg: DictConfig, cfg_hash: str, trainer: Trainer, metrics: dict[str, float],
                   wall_seconds: float, resumed_from: str | None) -> dict:
    """Record config hash, data, steps, final logged metrics (averaged over ranks), weight hashes, wall time
    and versions."""
    weights = {
        str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*.safetensors"))
    }
    manifest = {
        "task": cfg.model.name,
        "profile": cfg.profile.name,
        "config_hash": cfg_hash,
        "data": {"source": cfg.data.source, "crop_size": cfg.data.crop_size, "scale": cfg.data.scale,
                 "hash": data_hash(cfg.data)},
        "seed": cfg.seed,
        "steps": trainer.global_step,
        "training_hash": training_hash(cfg),
        "world_size": trainer.world_size,
        "final_metrics": metrics,
        "wall_seconds_this_invocation": round(wall_seconds, 1),
        "resumed_from": resumed_from,
        "weights_sha256": weights,
        "versions": package_versions(),
    }
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
