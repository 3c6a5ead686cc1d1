"""Full-reference and LR-consistency metrics under BasicSR/pyiqa conventions, so our numbers sit beside published ones.

Every function takes (B, 3, H, W) batches in [0, 1], evaluates the 8-bit image that would be saved
(round(x * 255)), and returns one float64 score per image, shape (B,). Identical images give PSNR = inf
(as BasicSR returns), never a capped or epsilon-shifted value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.data.resize import bicubic_down
from spasemsr.metrics.color import check_images, quantize_8bit, rgb_to_y

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_MS_SSIM_SCALES = 5


def _prepared(sr: Tensor, hr: Tensor, crop: int, what: str) -> tuple[Tensor, Tensor]:
    """Both images quantised to 8 bits, on the 0-255 scale in float64, with `crop` pixels cut from each edge."""
    check_images(sr, f"{what}(sr)")
    check_images(hr, f"{what}(hr)")
    if sr.shape != hr.shape:
        raise ValueError(
            f"{what}: sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}; "
            "crop the HR to scale * LR size before evaluating"
        )
    height, width = sr.shape[-2:]
    if crop < 0 or 2 * crop >= min(height, width):
        raise ValueError(f"{what}: border crop {crop} must be >= 0 and leave pixels of a {height}x{width} image")
    sr8, hr8 = quantize_8bit(sr), quantize_8bit(hr.to(sr.device))
    if crop:
        sr8, hr8 = sr8[..., crop:-crop, crop:-crop], hr8[..., crop:-crop, crop:-crop]
    return sr8 * 255, hr8 * 255


def _psnr_255(a: Tensor, b: Tensor) -> Tensor:
    """PSNR per image of two 0-255 batches; an MSE of 0 gives +inf (log10 of a division by zero)."""
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0**2 / mse)


def _y_255(img: Tensor) -> Tensor:
    """The BT.601 Y channel of a 0-255 RGB batch, on the 0-255 scale, unrounded."""
    return rgb_to_y(img / 255) * 255


def psnr_y(sr: Tensor, hr: Tensor, crop: int = 4) -> Tensor:
    """PSNR on the Y channel with a border crop of `crop` (= scale) pixels: the SR papers' headline number."""
    sr255, hr255 = _prepared(sr, hr, crop, "psnr_y")
    return _psnr_255(_y_255(sr255), _y_255(hr255))


def psnr_rgb(sr: Tensor, hr: Tensor, crop: int = 4) -> Tensor:
    """PSNR over R, G and B together (one MSE), same quantisation and crop as `psnr_y`; colour shifts count here."""
    sr255, hr255 = _prepared(sr, hr, crop, "psnr_rgb")
    return _psnr_255(sr255, hr255)


def _gaussian_taps(dtype: torch.dtype, device: torch.device) -> Tensor:
    """1-D factor of the reference SSIM window (11 taps, sigma 1.5, normalised); the 2-D window is its outer product."""
    offsets = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    taps = torch.exp(-offsets.pow(2) / (2 * _SSIM_SIGMA**2))
    return taps / taps.sum()


def _ssim_255(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM map per image of two (B, 1, H, W) 0-255 float64 batches, 'valid' filtering (no padding)."""
    taps = _gaussian_taps(x.dtype, x.device)

    def blur(img: Tensor) -> Tensor:  # separable: same result as the 11x11 window, ~5x fewer operations
        return F.conv2d(F.conv2d(img, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.pow(2)
    var_y = blur(y * y) - mu_y.pow(2)
    cov = blur(x * y) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + _SSIM_C1) / (mu_x.pow(2) + mu_y.pow(2) + _SSIM_C1)
    structure = ((2 * cov + _SSIM_C2) / (var_x + var_y + _SSIM_C2)).clamp(min=0)  # pyiqa's relu on c*s
    return (luminance * structure).mean(dim=(1, 2, 3))


def ssim_y(sr: Tensor, hr: Tensor, crop: int = 4) -> Tensor:
    """SSIM on the Y channel with a border crop of `crop` pixels (Wang et al. 2004 constants and window).

    pyiqa's ``ssim`` exactly (what OSEDiff and SeeSR report): Y rounded to integers, as MATLAB's
    ``rgb2ycbcr`` does on uint8 images, and the contrast-structure term clamped at 0 where the images
    are anti-correlated (a pyiqa choice: MATLAB and BasicSR keep negative values and skip the rounding,
    which moves SR outputs with invented texture by up to ~1e-2).
    """
    sr255, hr255 = _prepared(sr, hr, crop, "ssim_y")
    if min(sr255.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"ssim_y: needs at least {_SSIM_WINDOW} pixels per side after the crop, got {sr255.shape}")
    return _ssim_255(_y_255(sr255).round(), _y_255(hr255).round())


def ms_ssim(sr: Tensor, hr: Tensor, crop: int = 4) -> Tensor:
    """Multi-scale SSIM on RGB (torchmetrics defaults: 5 scales, 11x11 Gaussian, relu-normalised), 8-bit, cropped."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    sr255, hr255 = _prepared(sr, hr, crop, "ms_ssim")
    smallest = _SSIM_WINDOW * (_MS_SSIM_SCALES - 1) ** 2  # torchmetrics: side // 16 must exceed 10
    if min(sr255.shape[-2:]) < smallest:
        raise ValueError(
            f"ms_ssim: {_MS_SSIM_SCALES} scales need at least {smallest} pixels per side after the {crop}-pixel crop, "
            f"got {tuple(sr255.shape[-2:])}; evaluate larger crops or report ssim_y only"
        )
    # float32: torchmetrics' float64 convolutions are ~10x slower on CPU, for differences far below 1e-4
    scores = multiscale_structural_similarity_index_measure(
        sr255.float(), hr255.float(), data_range=255.0, reduction="none"
    )
    return scores.to(torch.float64)


def lr_consistency(sr: Tensor, lr: Tensor, scale: int = 4) -> Tensor:
    """PSNR (RGB, 8-bit, no crop) between bicubic_down(SR) and the LR input: low when SR invents content.

    A faithful SR, downscaled again, reproduces its input; hallucinated detail that the LR does not
    support shows up as a drop, which fidelity to a (possibly unavailable) HR cannot separate from blur.
    """
    check_images(sr, "lr_consistency(sr)")
    check_images(lr, "lr_consistency(lr)")
    expected = (lr.shape[-2] * scale, lr.shape[-1] * scale)
    if tuple(sr.shape[-2:]) != expected or sr.shape[0] != lr.shape[0]:
        raise ValueError(
            f"lr_consistency: sr {tuple(sr.shape)} must be the LR {tuple(lr.shape)} upscaled x{scale} "
            f"(spatial size {expected}); pass the LR the SR was made from and its scale"
        )
    down = bicubic_down(quantize_8bit(sr), scale)
    return _psnr_255(quantize_8bit(down) * 255, quantize_8bit(lr.to(sr.device)) * 255)
