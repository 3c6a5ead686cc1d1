"""ESRGAN-architecture weights onto our ``RRDBNet``: from an ncnn graph (in layer order) or a BasicSR checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

from spasemsr.restore.drm import NEGATIVE_SLOPE, RRDBNet
from spasemsr.restore.ncnn import NcnnLayer

LEAKY_RELU = 2  # ncnn Convolution activation_type


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
