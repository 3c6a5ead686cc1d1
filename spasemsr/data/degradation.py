"""Real-ESRGAN second-order degradation, batched on tensors, returning every sampled parameter.

The parameters come back per image so a describer can caption the degradation ("noisy, blurred,
JPEG q=40") and an estimator can regress it. Conventions of the returned ``params`` (float32, (B,)):

- ``*_type`` indexes ``KERNEL_TYPES``; ``*_size`` odd pixels; ``*_sigma_x/_sigma_y`` pixels;
  ``*_rotation`` radians; ``*_beta`` shape exponent; ``*_omega`` sinc cutoff in radians per pixel.
- ``resize*_scale`` is the factor: stage 1 relative to the HR size, stage 2 relative to the LR target
  size (HR / scale), as in Real-ESRGAN. ``*_mode`` indexes ``RESIZE_MODES``.
- ``noise*_type`` 0 Gaussian, 1 Poisson; ``noise*_level`` is sigma on the 0-255 scale for Gaussian
  and the Poisson scale for Poisson; ``noise*_gray`` 1 when one noise map is shared by R, G and B.
- ``jpeg*_quality`` in [0, 100] (unrounded, like Real-ESRGAN's DiffJPEG).
- ``blur2_applied``, ``final_sinc_applied`` are 0/1; ``final_order`` is 0 for resize + sinc then
  JPEG, 1 for JPEG then resize + sinc.
- NaN marks a parameter that did not shape that image: kernel parameters the kernel type ignores
  (see ``kernels``), all ``blur2_*`` when ``blur2_applied`` is 0, the final sinc's size and omega when
  it was not applied, and a ``*_mode`` when that resize kept the size unchanged.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import filter2d
from torch import Tensor

from spasemsr.data.kernels import (
    KERNEL_PARAMS,
    identity_kernels,
    sample_kernels,
    sample_sinc_kernels,
    uniform,
)

RESIZE_MODES = ("area", "bilinear", "bicubic")
_BLUR = tuple(f"_{name}" for name in KERNEL_PARAMS)
PARAM_KEYS = (
    *(f"blur1{k}" for k in _BLUR),
    "resize1_scale", "resize1_mode", "noise1_type", "noise1_level", "noise1_gray", "jpeg1_quality",
    "blur2_applied", *(f"blur2{k}" for k in _BLUR),
    "resize2_scale", "resize2_mode", "noise2_type", "noise2_level", "noise2_gray", "jpeg2_quality",
    "final_order", "final_resize_mode", "final_sinc_applied", "final_sinc_size", "final_sinc_omega",
)  # fmt: skip


def _check_range(
    name: str, value: tuple[float, float], low: float = -math.inf, high: float = math.inf
) -> None:
    """Reject a (min, max) pair that is reversed or leaves [low, high]."""
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {value}")


def _check_prob(name: str, value: tuple[float, ...], n: int) -> None:
    """Reject a weight vector of the wrong length or with no positive mass."""
    if len(value) != n or min(value) < 0 or sum(value) <= 0:
        raise ValueError(f"{name} must be {n} non-negative weights, not all zero, got {value}")


@dataclass(frozen=True)
class BlurConfig:
    """One blur stage: a sinc with ``sinc_prob``, else a type drawn by ``kernel_prob`` (weights of
    KERNEL_TYPES[:6]: iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso)."""

    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sigma_range: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    size_range: tuple[int, int] = (7, 21)

    def __post_init__(self) -> None:
        _check_prob("kernel_prob", self.kernel_prob, 6)
        _check_range("sigma_range", self.sigma_range, low=1e-3)
        _check_range("betag_range", self.betag_range, low=1e-3)
        _check_range("betap_range", self.betap_range, low=1e-3)


@dataclass(frozen=True)
class ResizeConfig:
    """One resize stage; its scale and mode are drawn once per batch."""

    updown_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    scale_range: tuple[float, float] = (0.15, 1.5)
    mode_prob: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # over RESIZE_MODES

    def __post_init__(self) -> None:
        _check_prob("updown_prob", self.updown_prob, 3)
        _check_prob("mode_prob", self.mode_prob, len(RESIZE_MODES))
        _check_range("scale_range", self.scale_range, low=1e-3)


@dataclass(frozen=True)
class NoiseConfig:
    """One noise stage: Gaussian with ``gaussian_prob``, else Poisson; gray with ``gray_prob``."""

    gaussian_prob: float = 0.5
    sigma_range: tuple[float, float] = (1.0, 30.0)  # 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        _check_range("sigma_range", self.sigma_range, low=0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, low=0.0)


# Defaults are Real-ESRGAN's options/train_realesrgan_x4plus.yml (xinntao/Real-ESRGAN); the final
# order probability 0.5 and the uniform resize modes are hard-coded in its realesrgan_model.py.
@dataclass(frozen=True)
class DegradationConfig:
    """Every range and probability of the two degradation orders and the final stage."""

    blur1: BlurConfig = field(default_factory=BlurConfig)
    resize1: ResizeConfig = field(default_factory=ResizeConfig)
    noise1: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg1_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    blur2: BlurConfig = field(default_factory=lambda: BlurConfig(sigma_range=(0.2, 1.5)))
    resize2: ResizeConfig = field(
        default_factory=lambda: ResizeConfig(updown_prob=(0.3, 0.4, 0.3), scale_range=(0.3, 1.2))
    )
    noise2: NoiseConfig = field(
        default_factory=lambda: NoiseConfig(sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))
    )
    jpeg2_range: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    final_jpeg_first_prob: float = 0.5  # probability of final_order = 1
    final_mode_prob: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    # Antialias bilinear/bicubic downsampling; Real-ESRGAN does not (False reproduces its aliasing).
    antialias: bool = True

    def __post_init__(self) -> None:
        _check_range("jpeg1_range", self.jpeg1_range, 0.0, 100.0)
        _check_range("jpeg2_range", self.jpeg2_range, 0.0, 100.0)
        _check_prob("final_mode_prob", self.final_mode_prob, len(RESIZE_MODES))


def _choice(weights: tuple[float, ...], generator: torch.Generator) -> int:
    """One index drawn with probabilities proportional to ``weights``."""
    probs = torch.tensor(weights, dtype=torch.float32, device=generator.device)
    return int(torch.multinomial(probs, 1, generator=generator))


def _bernoulli(p: float, n: int, generator: torch.Generator) -> Tensor:
    """``n`` coin flips that come up True with probability ``p``."""
    return torch.rand(n, generator=generator, device=generator.device) < p


def _poisson_noise(img: Tensor, generator: torch.Generator) -> Tensor:
    """Unit-scale shot noise; photon counts are the 8-bit levels an image uses, rounded up to a power
    of two, as in BasicSR's tensor version, counted per image without a Python loop."""
    levels = (img.clamp(0, 1) * 255).round()
    used = torch.zeros(img.shape[0], 256, device=img.device)
    used.scatter_(1, levels.flatten(1).long(), 1.0)
    counts = 2 ** torch.ceil(torch.log2(used.sum(1))).to(img)[:, None, None, None]
    clean = levels / 255
    shot = torch.poisson((clean * counts).to(generator.device), generator=generator).to(img) / counts
    return shot - clean


def add_noise(x: Tensor, poisson: Tensor, level: Tensor, gray: Tensor, generator: torch.Generator) -> Tensor:
    """Add per-image Gaussian (``level`` = sigma, 0-255 scale) or Poisson (``level`` = scale) noise,
    colour or gray, and clip to [0, 1]. All variants are drawn for all images so the generator's
    consumption does not depend on the outcome."""
    g = generator
    b, _, h, w = x.shape

    def per_image(t: Tensor) -> Tensor:
        return t.to(x)[:, None, None, None]

    colour = torch.randn(x.shape, generator=g, device=g.device).to(x)
    mono = torch.randn((b, 1, h, w), generator=g, device=g.device).to(x)
    is_gray = per_image(gray) > 0
    gaussian = torch.where(is_gray, mono, colour) / 255
    shot = torch.where(is_gray, _poisson_noise(rgb_to_grayscale(x), g), _poisson_noise(x, g))
    return (x + torch.where(per_image(poisson) > 0, shot, gaussian) * per_image(level)).clamp(0, 1)


def _jpeg(x: Tensor, quality: Tensor) -> Tensor:
    """JPEG round trip with a per-image quality; the codec pads to 16-pixel blocks itself."""
    return jpeg_codec_differentiable(x.clamp(0, 1), quality.to(x))


def _blur(x: Tensor, kernels: Tensor) -> Tensor:
    """One batched convolution, cropped to the widest support in the batch. Reflect padding, as in
    Real-ESRGAN, needs the image wider than the kernel radius; smaller images replicate their border."""
    centre = kernels.shape[-1] // 2
    offsets = (kernels.abs().amax(dim=0) > 0).nonzero() - centre
    half = int(offsets.abs().max())
    kernels = kernels[:, centre - half : centre + half + 1, centre - half : centre + half + 1]
    border = "reflect" if min(x.shape[-2:]) > half else "replicate"
    return filter2d(x, kernels.to(x), border_type=border)


class RealESRGANDegradation(torch.nn.Module):
    """Synthesise LR images from HR crops with Real-ESRGAN's second-order model.

    Pipeline: blur1 -> resize1 -> noise1 -> JPEG1 -> [blur2 with second_blur_prob] -> resize2 ->
    noise2 -> per image, either {resize to HR/scale + final sinc, then JPEG2} or the reverse order.
    Everything is sampled per image except the two resize scales and the three resize modes, which
    are drawn once per batch (as in Real-ESRGAN) so the batch keeps a common size; they are still
    reported for every image. All randomness comes from the ``generator`` passed to ``forward``.
    """

    def __init__(self, cfg: DegradationConfig, scale: int = 4) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = scale

    def _resize(self, x: Tensor, size: tuple[int, int], mode: int) -> tuple[Tensor, bool]:
        """Resize to ``size``; a no-op (reported as such) when the size is already right."""
        if tuple(x.shape[-2:]) == size:
            return x, False
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        antialias = self.cfg.antialias and shrink and RESIZE_MODES[mode] != "area"
        return F.interpolate(x, size=size, mode=RESIZE_MODES[mode], antialias=antialias), True

    def _random_resize(
        self,
        x: Tensor,
        cfg: ResizeConfig,
        base: tuple[int, int],
        name: str,
        params: dict[str, Tensor],
        generator: torch.Generator,
    ) -> Tensor:
        """Scale ``base`` up, down or not at all, one factor and mode for the whole batch."""
        low, high = cfg.scale_range
        mid = min(max(1.0, low), high)
        direction = _choice(cfg.updown_prob, generator)
        u = float(torch.rand(1, generator=generator, device=generator.device))
        factor = (mid + (high - mid) * u, low + (mid - low) * u, 1.0)[direction]
        mode = _choice(cfg.mode_prob, generator)
        size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
        x, resized = self._resize(x, size, mode)
        params[f"{name}_scale"] = torch.full((x.shape[0],), factor)
        params[f"{name}_mode"] = torch.full((x.shape[0],), float(mode) if resized else math.nan)
        return x

    def _random_noise(
        self, x: Tensor, cfg: NoiseConfig, name: str, params: dict[str, Tensor], generator: torch.Generator
    ) -> Tensor:
        """Draw and add one noise stage."""
        b, g = x.shape[0], generator
        poisson = ~_bernoulli(cfg.gaussian_prob, b, g)
        level = torch.where(poisson, uniform(g, b, *cfg.poisson_scale_range), uniform(g, b, *cfg.sigma_range))
        gray = _bernoulli(cfg.gray_prob, b, g)
        params.update({f"{name}_type": poisson.float(), f"{name}_level": level, f"{name}_gray": gray.float()})
        return add_noise(x, poisson, level, gray, g)

    @torch.no_grad()
    def forward(self, hr: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """Degrade ``hr`` (B, 3, H, W) in [0, 1] to 8-bit-quantised ``lr`` (B, 3, H/scale, W/scale),
        with each image's sampled parameters (keys ``PARAM_KEYS``, float32 (B,) on ``hr``'s device)."""
        if hr.ndim != 4 or hr.shape[1] != 3 or hr.shape[-2] % self.scale or hr.shape[-1] % self.scale:
            raise ValueError(
                f"expected hr of shape (B, 3, H, W) with H and W divisible by {self.scale}, "
                f"got {tuple(hr.shape)}"
            )
        cfg, g = self.cfg, generator
        b, _, h, w = hr.shape
        target = (h // self.scale, w // self.scale)
        p: dict[str, Tensor] = {}

        kernels, blur = sample_kernels(b, g, **vars(cfg.blur1))
        p.update({f"blur1_{k}": v for k, v in blur.items()})
        x = _blur(hr, kernels.to(hr.device))
        x = self._random_resize(x, cfg.resize1, (h, w), "resize1", p, g)
        x = self._random_noise(x, cfg.noise1, "noise1", p, g)
        p["jpeg1_quality"] = uniform(g, b, *cfg.jpeg1_range)
        x = _jpeg(x, p["jpeg1_quality"])

        applied = _bernoulli(cfg.second_blur_prob, b, g)
        kernels, blur = sample_kernels(b, g, **vars(cfg.blur2))
        kernels = torch.where(applied[:, None, None], kernels, identity_kernels(b, kernels.device))
        p["blur2_applied"] = applied.float()
        p.update({f"blur2_{k}": torch.where(applied, v, math.nan) for k, v in blur.items()})
        x = _blur(x, kernels.to(hr.device))
        x = self._random_resize(x, cfg.resize2, target, "resize2", p, g)
        x = self._random_noise(x, cfg.noise2, "noise2", p, g)

        p["jpeg2_quality"] = uniform(g, b, *cfg.jpeg2_range)
        jpeg_first = _bernoulli(cfg.final_jpeg_first_prob, b, g)
        sinc_applied = _bernoulli(cfg.final_sinc_prob, b, g)
        sinc, sinc_params = sample_sinc_kernels(b, g)
        sinc = torch.where(sinc_applied[:, None, None], sinc, identity_kernels(b, sinc.device)).to(hr.device)
        mode = _choice(cfg.final_mode_prob, g)
        p.update(
            {
                "final_order": jpeg_first.float(),
                "final_sinc_applied": sinc_applied.float(),
                "final_sinc_size": torch.where(sinc_applied, sinc_params["size"], math.nan),
                "final_sinc_omega": torch.where(sinc_applied, sinc_params["omega"], math.nan),
            }
        )

        lr, quality, resized = hr.new_empty(b, 3, *target), p["jpeg2_quality"].to(hr.device), False
        for order in (False, True):
            idx = (jpeg_first == order).nonzero().squeeze(1).to(hr.device)
            if idx.numel() == 0:
                continue
            y = _jpeg(x[idx], quality[idx]) if order else x[idx]
            y, resized = self._resize(y, target, mode)
            y = _blur(y, sinc[idx])
            lr[idx] = y if order else _jpeg(y, quality[idx])
        p["final_resize_mode"] = torch.full((b,), float(mode) if resized else math.nan)

        lr = (lr.clamp(0, 1) * 255).round() / 255
        return lr, {k: p[k].to(device=hr.device, dtype=torch.float32) for k in PARAM_KEYS}
