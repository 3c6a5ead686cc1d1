"""Colour correction of SR output towards the LR input's colours (StableSR-style), chosen by name.

``adain`` matches each channel's mean and std to the upsampled LR; ``wavelet`` keeps the SR's
high-frequency detail and takes the low frequencies (colour, shading) from the upsampled LR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.data.resize import bicubic_up

COLOR_FIXES = ("none", "adain", "wavelet")


def adain(sr: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-image, per-channel mean/std of ``sr`` matched to ``reference``."""
    sr_mean, sr_std = sr.mean((2, 3), keepdim=True), sr.std((2, 3), keepdim=True)
    ref_mean, ref_std = reference.mean((2, 3), keepdim=True), reference.std((2, 3), keepdim=True)
    return (sr - sr_mean) / (sr_std + eps) * ref_std + ref_mean


def _low_pass(image: Tensor, levels: int) -> Tensor:
    """Repeated dilated 3x3 binomial blur (an à-trous wavelet low band)."""
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device)
    kernel = (kernel / kernel.sum()).expand(image.shape[1], 1, 3, 3)
    for level in range(levels):
        dilation = 2**level
        padded = F.pad(image, (dilation,) * 4, mode="replicate")
        image = F.conv2d(padded, kernel, groups=image.shape[1], dilation=dilation)
    return image


def wavelet(sr: Tensor, reference: Tensor, levels: int = 5) -> Tensor:
    """High frequencies of ``sr`` plus low frequencies of ``reference``."""
    return sr - _low_pass(sr, levels) + _low_pass(reference, levels)


def color_fix(sr: Tensor, lr: Tensor, method: str) -> Tensor:
    """Apply ``method`` to SR images in [0, 1] given their LR inputs; ``none`` returns ``sr`` itself."""
    if method not in COLOR_FIXES:
        raise ValueError(f"color_fix={method!r} is not one of {COLOR_FIXES}")
    if method == "none":
        return sr
    reference = bicubic_up(lr, sr.shape[-2:])
    fixed = adain(sr, reference) if method == "adain" else wavelet(sr, reference)
    return fixed.clamp(0, 1)
