"""Reading ncnn models: the text graph (``.param``) and its weights (``.bin``), in layer order.

``.bin`` holds each weighted layer's weights as a 4-byte tag (fp16 ``0x01306B47``, data padded to 4 bytes; fp32
``0``) followed by the data, then the bias as raw fp32; the file must be consumed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# other ncnn weight tags, named in the error: int8 data, fp32 with an extra header, else a 256-entry quantise table
OTHER_TAGS = {0x000D4B38: "int8", 0x0002C056: "raw fp32 with header"}
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "Interp", "BinaryOp"}


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
