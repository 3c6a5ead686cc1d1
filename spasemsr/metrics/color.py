"""The pixel conventions SR evaluation is reported in: 8-bit quantisation and the BT.601 Y channel.

Published x4 numbers (BasicSR, and MATLAB before it) are computed on the saved 8-bit image and on the
luma of studio-range YCbCr, so every fidelity metric here goes through these two functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

# ITU-R BT.601 luma weights on 8-bit studio range (MATLAB rgb2ycbcr, BasicSR bgr2ycbcr), for R, G, B.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def check_images(img: Tensor, what: str) -> None:
    """Refuse anything but a (B, 3, H, W) floating-point batch, naming the argument and what was found."""
    if not isinstance(img, Tensor):
        raise TypeError(f"{what}: expected a (B, 3, H, W) float tensor in [0, 1], got {type(img).__name__}")
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(
            f"{what}: expected shape (B, 3, H, W), got {tuple(img.shape)}; use img[None] for a single (3, H, W) "
            "image"
        )
    if not img.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor in [0, 1], got dtype {img.dtype}; divide uint8 by 255")


def quantize_8bit(img: Tensor) -> Tensor:
    """The image as it would be saved: clamped to [0, 1], rounded to 256 levels, returned in [0, 1] (float64)."""
    return (img.detach().to(torch.float64).clamp(0, 1) * 255).round() / 255


def rgb_to_y(img: Tensor) -> Tensor:
    """Y of BT.601 YCbCr as BasicSR/MATLAB compute it: (B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) in [0, 1].

    Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, so it spans [16/255, 235/255]; it is not rounded
    (BasicSR's float path; MATLAB's uint8 path would round it).
    """
    check_images(img, "rgb_to_y(img)")
    weights = torch.tensor(_Y_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return ((img * weights).sum(dim=1, keepdim=True) + _Y_OFFSET) / 255.0
