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

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import filter2d
from torch import Tensor

from spasemsr.data.degradation_config import PARAM_KEYS, RESIZE_MODES, DegradationConfig, NoiseConfig, ResizeConfig
from spasemsr.data.kernels import (
    identity_kernels,
    sample_kernels,
    sample_sinc_kernels,
    uniform,
)


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
