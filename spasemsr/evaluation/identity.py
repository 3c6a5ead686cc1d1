"""What an evaluation result is a function of: the checkpoint's weights, its config, the code, the sampling."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf

from spasemsr.config import config_hash
from spasemsr.evaluation.datasets import EvalSet
from spasemsr.evaluation.methods import Method
from spasemsr.training.manifest import file_sha256


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the (relative path, SHA-256) of every safetensors file in ``folder``: the checkpoint's identity."""
    files = sorted(folder.rglob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no *.safetensors files; expected an exported model folder")
    rows = [(str(path.relative_to(folder)), file_sha256(path)) for path in files]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def prior_sha256(backbone_path: str) -> str | None:
    """``weights_sha256`` of a frozen prior folder (``profile.backbone_path``: VAE, UNet), None if there is none."""
    from spasemsr.weights.paths import local_path

    if not backbone_path:
        return None
    root = local_path(backbone_path)
    return weights_sha256(root) if root.is_dir() else None


def backbone_sha256(export: Path) -> str | None:
    """The frozen prior an exported SR model samples with (``prior_sha256``): its SR images depend on those files as
    on its own, so results made with another VAE or UNet there never pass for this model's (the export's own hash
    covers only what it trained)."""
    config = Path(export) / "config.yaml"
    return prior_sha256(OmegaConf.load(config).profile.get("backbone_path", "")) if config.is_file() else None


def export_config_hash(folder: Path) -> str | None:
    """The config hash from the export's manifest.json (in ``folder`` or its parent), else of its config.yaml."""
    for place in (folder, folder.parent):
        if (place / "manifest.json").is_file():
            return json.loads((place / "manifest.json").read_text())["config_hash"]
    for place in (folder, folder.parent):
        if (place / "config.yaml").is_file():
            return config_hash(OmegaConf.load(place / "config.yaml"))
    return None


def code_fingerprint() -> str:
    """SHA-256 of the package's source files: SR images of one code version are never reused by another."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def sampling_identity(method: str, runner: Method, dataset: EvalSet, seed: int) -> dict:
    """What the SR images in ``sr/`` are a function of (written before the first one, so a rerun can resume)."""
    return {"method": method, "ckpt": runner.ckpt, "backbone": runner.backbone, "knobs": runner.knobs,
            "dataset": dataset.hash, "seed": seed, "code": code_fingerprint()}


def reusable_sr(out_dir: Path, runner: Method, dataset: EvalSet, seed: int) -> bool:
    """Whether ``out_dir`` holds the SR images of this very method, checkpoint, knobs, set and seed."""
    previous = out_dir / "metrics.json"
    if not previous.is_file():
        return False
    record = json.loads(previous.read_text())["record"]
    same = (record["ckpt"], record.get("backbone"), record["knobs"], record["dataset"]["hash"], record["seed"])
    return same == (runner.ckpt, runner.backbone, runner.knobs, dataset.hash, seed) and all(
        (out_dir / "sr" / f"{entry.name}.png").is_file() for entry in dataset.entries)
