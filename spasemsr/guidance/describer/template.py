"""From Real-ESRGAN parameters to a few measurable degradation quantities, and from those to a caption.

The quantities are what is *visible in the LR image*, so an estimator can regress them from pixels
and the true parameters can produce them too (all in LR-pixel terms, per image):

- ``blur``: extra Gaussian-equivalent blur sigma in LR pixels, beyond a clean bicubic x4 downscale.
  Every filter is replaced by the Gaussian of equal effective area (sigma^2 = 1 / (4 pi sum k^2)), and
  variances add (exact for Gaussians, an approximation otherwise). The blur kernels are rendered from
  their parameters, so sinc, generalised and plateau shapes are handled alike, and their identity
  floor 1 / (4 pi) is removed; each antialiased downscale adds ``RESIZE_SIGMA`` of its output pixel;
  upscales add no band limit. Stage pixels are converted to LR pixels through the resize scales.
  Against Gaussians fitted (luminance MSE) to noise- and JPEG-free pipeline outputs vs a bicubic LR,
  48 bundled crops: correlation 0.8, reading 0.2-0.4 px low at the sharp end.
- ``noise``: per-pixel noise sigma on the 0-255 scale as it reaches the LR. Poisson noise of scale s
  counts as sigma = s * 255 * sqrt(0.5 / 256) (mid-grey pixel, 256 photon levels, as the pipeline's
  level count gives for natural images). Stage-1 noise is attenuated by the blur-2 kernel
  (white noise std x sqrt(sum k^2), exact) and both noises by later downscales (std / factor, area
  averaging) and the final sinc; JPEG's smoothing and clipping are not modelled.
- ``jpeg``: the lowest JPEG quality still visible: the final JPEG always, the first one only when its
  8x8 blocks span at least 4 LR pixels (stage-1 grid at most 2x finer than LR); finer blocks are
  averaged away by the later downscale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spasemsr.config.choices import DEGRADATION_QUANTITIES
from spasemsr.data.degradation import PARAM_KEYS, RESIZE_MODES
from spasemsr.data.kernels import KERNEL_PARAMS, KERNEL_TYPES, build_kernels

QUANTITIES = DEGRADATION_QUANTITIES
LEVELS = ("none", "slight", "moderate", "heavy")
# Bin edges between consecutive LEVELS. blur: LR pixels; noise: 0-255 sigma; jpeg: quality, where lower
# is worse, so its edges fall (quality >= 90 is "none", < 45 "heavy").
THRESHOLDS = {"blur": (0.3, 0.6, 1.0), "noise": (2.0, 6.0, 15.0), "jpeg": (90.0, 70.0, 45.0)}
NOUNS = {"blur": "blur", "noise": "noise", "jpeg": "JPEG compression artifacts"}
CLEAN_CAPTION = "a clean, sharp low-resolution photo"

# Equivalent-area sigma, in output pixels, of torch's antialiased downscale kernel per RESIZE_MODES entry
# (measured from F.interpolate weights at x8; checked in tests/test_describer.py).
RESIZE_SIGMA = (0.282, 0.425, 0.346)
POISSON_SIGMA_PER_SCALE = 255 * math.sqrt(0.5 / 256)
JPEG_VISIBLE_GRID = 0.5  # stage-1 pixel size, in LR pixels, from which its JPEG blocks count
_IDENTITY_AREA = 1 / (4 * math.pi)  # equivalent variance of a unit impulse
_BICUBIC = RESIZE_MODES.index("bicubic")


def _kernel_energy(fields: dict[str, Tensor], applied: Tensor) -> Tensor:
    """sum k^2 of each image's rendered kernel (1 where none was applied): its white-noise power gain."""
    safe = {name: torch.where(applied, value, torch.nan) for name, value in fields.items()}
    safe["type"] = torch.nan_to_num(safe["type"], nan=0.0)
    safe["size"] = torch.nan_to_num(safe["size"], nan=1.0)
    return build_kernels(safe).pow(2).sum(dim=(1, 2))


def _blur_variance(energy: Tensor) -> Tensor:
    """Gaussian-equivalent variance a kernel adds, in its own pixels squared (0 for an impulse)."""
    return (1 / energy - 1) * _IDENTITY_AREA


def _resize_variance(mode: Tensor, pixel_in: Tensor, pixel_out: Tensor) -> Tensor:
    """Variance (LR px^2) an antialiased downscale adds; zero for upscales and unchanged sizes."""
    sigma = torch.tensor(RESIZE_SIGMA, device=mode.device)[torch.nan_to_num(mode, nan=0.0).long()]
    down = ~torch.isnan(mode) & (pixel_out > pixel_in)
    return torch.where(down, (sigma * pixel_out) ** 2, torch.zeros_like(pixel_out))


def _noise_sigma(params: dict[str, Tensor], stage: str) -> Tensor:
    """One noise stage's sigma on the 0-255 scale, Poisson scales mapped to their mid-grey sigma."""
    level = params[f"{stage}_level"]
    return torch.where(params[f"{stage}_type"] > 0, level * POISSON_SIGMA_PER_SCALE, level)


def summarise(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Batched ``blur``, ``noise`` and ``jpeg`` (each (B,)) from ``RealESRGANDegradation`` params."""
    missing = [key for key in PARAM_KEYS if key not in params]
    if missing:
        raise KeyError(f"degradation params lack {missing}; expected every key of degradation.PARAM_KEYS")
    p = {k: v.float() for k, v in params.items()}
    ones = torch.ones_like(p["resize1_scale"])
    blur1 = _kernel_energy({k: p[f"blur1_{k}"] for k in KERNEL_PARAMS}, ones > 0)
    blur2 = _kernel_energy({k: p[f"blur2_{k}"] for k in KERNEL_PARAMS}, p["blur2_applied"] > 0)
    sinc_fields = {k: torch.full_like(ones, torch.nan) for k in KERNEL_PARAMS}
    sinc_fields.update(type=ones * KERNEL_TYPES.index("sinc"), size=p["final_sinc_size"], omega=p["final_sinc_omega"])
    sinc = _kernel_energy(sinc_fields, p["final_sinc_applied"] > 0)

    # Pixel sizes in LR pixels: HR, after resize 1 (relative to HR), after resize 2 (relative to LR).
    pixel0, pixel1, pixel2 = ones / 4, 1 / (4 * p["resize1_scale"]), 1 / p["resize2_scale"]
    variance = (
        pixel0**2 * _blur_variance(blur1)
        + _resize_variance(p["resize1_mode"], pixel0, pixel1)
        + pixel1**2 * _blur_variance(blur2)
        + _resize_variance(p["resize2_mode"], pixel1, pixel2)
        + _resize_variance(p["final_resize_mode"], pixel2, ones)
        + _blur_variance(sinc)
        - RESIZE_SIGMA[_BICUBIC] ** 2
    )

    final_gain = sinc.sqrt() / torch.clamp(1 / pixel2, min=1)
    noise1 = _noise_sigma(p, "noise1") * blur2.sqrt() / torch.clamp(pixel2 / pixel1, min=1) * final_gain
    noise2 = _noise_sigma(p, "noise2") * final_gain

    jpeg1 = torch.where(pixel1 >= JPEG_VISIBLE_GRID, p["jpeg1_quality"], torch.full_like(ones, 100.0))
    return {
        "blur": variance.clamp(min=0).sqrt(),
        "noise": torch.hypot(noise1, noise2),
        "jpeg": torch.minimum(jpeg1, p["jpeg2_quality"]),
    }


def degradation_summary(params: dict[str, Tensor], index: int) -> dict[str, float]:
    """The summary quantities of image ``index`` of a batch of degradation params, as plain floats."""
    return {name: float(value[index]) for name, value in summarise(params).items()}


def level(quantity: str, value: float | Tensor) -> int | Tensor:
    """Index into LEVELS of a quantity's value (works elementwise on tensors)."""
    if quantity not in THRESHOLDS:
        raise KeyError(f"unknown degradation quantity {quantity!r}; expected one of {QUANTITIES}")
    edges = THRESHOLDS[quantity]
    if quantity == "jpeg":
        return sum(value < edge for edge in edges)
    return sum(value >= edge for edge in edges)


def _join(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def check_fields(fields: tuple[str, ...]) -> tuple[str, ...]:
    """``fields`` as a tuple of known quantities, in QUANTITIES order (an unknown one is an error)."""
    unknown = sorted(set(fields) - set(QUANTITIES))
    if unknown or not fields:
        raise ValueError(f"caption fields must be a non-empty subset of {list(QUANTITIES)}, got {list(fields)}")
    return tuple(name for name in QUANTITIES if name in fields)


def caption(summary: dict[str, float], fields: tuple[str, ...] = QUANTITIES) -> str:
    """A degradation-aware caption naming each of ``fields`` above 'none' with its level word.

    ``fields`` leaves out quantities a describer cannot estimate (``model.text.caption_fields``), so training
    captions (true parameters) and inference captions (estimated) state the same things.
    """
    missing = [name for name in fields if name not in summary]
    if missing:
        raise KeyError(f"caption needs the summary quantities {list(fields)}; missing {missing}")
    parts = [f"{LEVELS[lvl]} {NOUNS[name]}" for name in fields if (lvl := level(name, summary[name])) > 0]
    return f"a low-resolution photo with {_join(parts)}" if parts else CLEAN_CAPTION
