"""Colour correction of SR output towards the LR input's colours (StableSR-style), chosen by name.

``adain`` matches each channel's mean and std to the upsampled LR; ``wavelet`` keeps the SR's
high-frequency detail and takes the low frequencies (colour, shading) from the upsampled LR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.config.choices import COLOR_FIXES
from spasemsr.data.resize import bicubic_up


def adain(sr: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-image, per-channel mean/std of ``sr`` matched to ``reference``."""
    sr_mean, sr_std = sr.mean((2, 3), keepdim=True), sr.std((2, 3), keepdim=True)
    ref_mean, ref_std = reference.mean((2, 3), keepdim=True), reference.std((2, 3), keepdim=True)
    return (sr - sr_mean) / (sr_std + eps) * ref_std + ref_mean


BAND_ROWS = 256  # low-pass works on horizontal bands of this many rows (plus halo): memory set by the band


def _low_pass_whole(image: Tensor, levels: int) -> Tensor:
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device)
    kernel = (kernel / kernel.sum()).expand(image.shape[1], 1, 3, 3)
    for level in range(levels):
        dilation = 2**level
        padded = F.pad(image, (dilation,) * 4, mode="replicate")
        image = F.conv2d(padded, kernel, groups=image.shape[1], dilation=dilation)
    return image


def _low_pass(image: Tensor, levels: int, band: int = BAND_ROWS) -> Tensor:
    """The à-trous low-pass, band by band: exact, since each band carries a halo of the filter's full reach.

    Rows near a band's cut see only halo rows (reach 2^levels - 1); replicate padding then acts only at
    the image's true borders, so the result equals the whole-image filter, without its many full-size copies.
    """
    reach = 2**levels - 1
    height = image.shape[-2]
    if height <= band + 2 * reach:
        return _low_pass_whole(image, levels)
    out = torch.empty_like(image)
    for top in range(0, height, band):
        lo, hi = max(0, top - reach), min(height, top + band + reach)
        out[..., top: top + band, :] = _low_pass_whole(image[..., lo:hi, :], levels)[..., top - lo: top - lo + band, :]
    return out


def wavelet(sr: Tensor, reference: Tensor, levels: int = 5) -> Tensor:
    """SR's high frequencies + the reference's low ones: sr - low(sr) + low(ref) = sr + low(ref - sr) (linear low)."""
    return sr + _low_pass(reference - sr, levels)


def color_fix(sr: Tensor, lr: Tensor, method: str) -> Tensor:
    """Apply ``method`` to SR images in [0, 1] given their LR inputs; ``none`` returns ``sr`` itself."""
    if method not in COLOR_FIXES:
        raise ValueError(f"color_fix={method!r} is not one of {COLOR_FIXES}")
    if method == "none":
        return sr
    reference = bicubic_up(lr, sr.shape[-2:])
    fixed = adain(sr, reference) if method == "adain" else wavelet(sr, reference)
    return fixed.clamp(0, 1)
