"""One inference pipeline (LR → conditions → sample → decode → colour fix → back-projection) for every entry point.

Training previews, ``upscale`` (and later ``evaluate`` and sweeps) all go through ``SRPipeline`` so
that a knob means the same thing everywhere. Conditions are computed once per image; only the
denoiser runs per step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor

from spasemsr.config.schema import SamplerConfig
from spasemsr.diffusion.backbone import Backbone, vae_downscale
from spasemsr.diffusion.color_fix import color_fix
from spasemsr.diffusion.conditions import Conditions, Known
from spasemsr.diffusion.consistency import back_project
from spasemsr.diffusion.control import ControlledUNet
from spasemsr.diffusion.latents import clean_latents, decode
from spasemsr.diffusion.tiling import Window, blend, windows
from spasemsr.registries import SAMPLERS

# padded LR (B, 3, h, w) in [0, 1], HR tile side and overlap (0 = whole), what else is known of the images (keys,
# true degradation; None for plain photos) -> conditions
Conditioner = Callable[[Tensor, int, int, Known | None], Conditions]


@dataclass(frozen=True)
class Prepared:
    """An LR batch and its conditions (computed on the LR padded to the pipeline's multiple)."""

    lr: Tensor
    conditions: Conditions
    start: Tensor | None = None  # the latent sampling starts from (noised), encoded once under ``start_tiles``
    start_tiles: list[Window] | None = None
    start_image: str = "lr"  # which image ``start`` encodes (the knob of the same name)


class SRPipeline:
    """x``scale`` super-resolution with a ControlNet-steered frozen prior and inference-time knobs."""

    def __init__(self, backbone: Backbone, net: ControlledUNet, scale: int, sampler: SamplerConfig,
                 conditioner: Conditioner | None = None) -> None:
        self.backbone = backbone
        self.net = net
        self.scale = scale
        self.sampler = sampler
        self.conditioner = conditioner or (lambda lr, tile, overlap, known=None: net.conditions(lr, scale))
        self.on_denoise: Callable[[], object] | None = None  # called after each denoiser run (a tile of a step)
        self.precision: torch.dtype = torch.float32  # float16/bfloat16: mixed precision (autocast), fp32 weights

    @contextlib.contextmanager
    def _autocast(self, device: torch.device) -> Iterator[None]:
        """Run matmuls and convolutions in ``self.precision`` (weights and the returned image stay float32)."""
        with torch.autocast(device.type, dtype=self.precision, enabled=self.precision != torch.float32):
            yield

    @property
    def unet_factor(self) -> int:
        """Total downsampling of the UNet: latent sides (and tile sides) must be multiples of it."""
        return 2 ** (len(self.backbone.unet.config.block_out_channels) - 1)

    @property
    def multiple(self) -> int:
        """LR sides are padded to a multiple of this so every UNet level divides evenly."""
        hr_multiple = vae_downscale(self.backbone.vae) * self.unet_factor
        return hr_multiple // math.gcd(hr_multiple, self.scale)

    @torch.no_grad()
    def prepare(self, lr: Tensor, knobs: SamplerConfig | None = None, known: Known | None = None) -> Prepared:
        """The knob-independent part of a call: pad the LR, compute its conditions (grounding, text, E_img/E_sem)
        and encode the latent sampling starts from.

        Sweeps prepare each image once and sample it under many knob settings. Of ``knobs`` only the tiling
        is read (and checked before any work): it bounds the conditioner's memory (the DRM runs tile by
        tile, blended at the borders) and tiles the start latent's encoding, which ``sample`` reuses while
        its tiling is the same.
        """
        knobs = knobs or self.sampler
        padded = _pad_to_multiple(lr, self.multiple)
        factor = vae_downscale(self.backbone.vae)
        tiles = self.tiles((padded.shape[2] * self.scale // factor, padded.shape[3] * self.scale // factor), knobs)
        with self._autocast(lr.device):
            cond = self.conditioner(padded, knobs.tile_size, knobs.tile_overlap, known)
        start = self._start_latents(self._start_image(padded, cond, knobs), tiles)
        return Prepared(lr, cond, start, tiles, knobs.start_image)

    def _latent_hw(self, cond: Conditions) -> tuple[int, int]:
        factor = vae_downscale(self.backbone.vae)
        return cond.pixel.shape[2] // factor, cond.pixel.shape[3] // factor

    def _start_image(self, padded: Tensor, cond: Conditions, knobs: SamplerConfig) -> Tensor:
        """The HR-sized image in [0, 1] whose latent sampling starts from: the upsampled LR, or (``start_image=drm``)
        the DRM's restoration of it, restore-then-generate as DiffBIR does."""
        if knobs.start_image == "lr":
            return (cond.pixel[: padded.shape[0]] + 1) / 2
        restore = getattr(self.conditioner, "restore", None)
        if restore is None:
            raise ValueError(f"sampler.start_image=drm: this model ({type(self.net).__name__}) has no DRM to restore "
                             "the LR with; use start_image=lr, or a SpaSemSR export with model.drm set")
        with self._autocast(padded.device):
            return restore(padded, knobs.tile_size, knobs.tile_overlap).to(cond.pixel.dtype)

    def _start_latents(self, image: Tensor, tiles: list[Window] | None) -> Tensor:
        """The latent (VAE posterior mean) of ``image`` (B, 3, H, W) that sampling starts from (the sampler noises
        it)."""
        vae, factor = self.backbone.vae, vae_downscale(self.backbone.vae)
        shape = (image.shape[0], self.backbone.unet.config.in_channels, image.shape[2] // factor,
                 image.shape[3] // factor)
        with self._autocast(image.device):
            start = clean_latents(vae, image) if tiles is None else blend(
                tiles, lambda win: clean_latents(vae, image[(..., *win.scaled(factor))]), 1, shape)
        return start.to(image.dtype)

    def tiles(self, latent_hw: tuple[int, int], knobs: SamplerConfig) -> list[Window] | None:
        """The latent tiles ``knobs`` ask for, or None when the image is processed whole (one tile would cover it)."""
        if knobs.tile_size == 0:
            return None
        factor = vae_downscale(self.backbone.vae)
        if knobs.tile_size % (factor * self.unet_factor):
            raise ValueError(f"sampler.tile_size={knobs.tile_size} must be a multiple of {factor * self.unet_factor} "
                             "HR pixels (VAE x UNet downsampling)")
        tiles = windows(*latent_hw, knobs.tile_size // factor, knobs.tile_overlap // factor, self.unet_factor)
        return tiles if len(tiles) > 1 else None

    @torch.no_grad()
    def sample(self, prepared: Prepared, generator: torch.Generator, knobs: SamplerConfig | None = None) -> Tensor:
        """SR (B, 3, scale·h, scale·w) in [0, 1] of a prepared LR under ``knobs`` (default: the pipeline's)."""
        knobs = knobs or self.sampler
        lr, cond = prepared.lr, prepared.conditions
        b, _, h, w = lr.shape
        latents = self.latents(prepared, generator, knobs)
        vae, factor = self.backbone.vae, vae_downscale(self.backbone.vae)
        tiles = self.tiles(latents.shape[2:], knobs)
        with self._autocast(lr.device):
            sr = decode(vae, latents) if tiles is None else blend(
                tiles, lambda win: decode(vae, latents[(..., *win.scaled(1))]), factor,
                (b, 3, cond.pixel.shape[2], cond.pixel.shape[3]))
        sr = sr[:, :, : h * self.scale, : w * self.scale].to(lr.dtype)
        return back_project(color_fix(sr, lr, knobs.color_fix), lr, self.scale, knobs.backproject)

    @torch.no_grad()
    def latents(self, prepared: Prepared, generator: torch.Generator, knobs: SamplerConfig | None = None) -> Tensor:
        """The sampled latent (B, C, H/f, W/f) of the padded LR, before decoding: what the VAE decoder reads (a decoder
        fine-tuned for SR trains on these: ``spasemsr.data.sampled_latents``)."""
        knobs = knobs or self.sampler
        lr, cond = prepared.lr, prepared.conditions
        if knobs.cfg_scale != 1.0:
            cond = cond.unconditional(self.net.prompt_embedding).cat(cond)
        factor = vae_downscale(self.backbone.vae)
        shape = (lr.shape[0], self.backbone.unet.config.in_channels, *self._latent_hw(cond))
        tiles = self.tiles(shape[2:], knobs)

        def eps(latents: Tensor, t: Tensor, c: Conditions) -> Tensor:
            if knobs.cfg_scale == 1.0:
                return self.net.eps(latents, t, c, knobs)
            uncond_eps, cond_eps = self.net.eps(torch.cat([latents] * 2), torch.cat([t] * 2), c, knobs).chunk(2)
            return uncond_eps + knobs.cfg_scale * (cond_eps - uncond_eps)

        def counted(latents: Tensor, t: Tensor, c: Conditions) -> Tensor:
            out = eps(latents, t, c)
            if self.on_denoise is not None:
                self.on_denoise()
            return out

        def denoise(latents: Tensor, t: Tensor) -> Tensor:
            if tiles is None:
                return counted(latents, t, cond)
            return blend(tiles, lambda win: counted(latents[(..., *win.scaled(1))], t, cond.crop(win, factor)), 1,
                         latents.shape)

        reusable = prepared.start is not None and (prepared.start_tiles, prepared.start_image) == (
            tiles, knobs.start_image)
        init = prepared.start if reusable else self._start_latents(
            self._start_image(_pad_to_multiple(lr, self.multiple), prepared.conditions, knobs), tiles)
        sampler = SAMPLERS.build(knobs.name, self.backbone.train_scheduler.config, knobs.steps, knobs.eta)
        with self._autocast(lr.device):
            return sampler.sample(denoise, shape, generator, lr.device, lr.dtype, knobs.start_t, init)

    def __call__(self, lr: Tensor, generator: torch.Generator, knobs: SamplerConfig | None = None,
                 known: Known | None = None) -> Tensor:
        """LR (B, 3, h, w) in [0, 1] → SR (B, 3, scale·h, scale·w) in [0, 1]; ``known``: what else is known of it."""
        return self.sample(self.prepare(lr, knobs, known), generator, knobs)


def _pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    h, w = image.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def sampler_settings(cfg_sampler: object, **overrides: object) -> SamplerConfig:
    """A ``SamplerConfig`` from a config section, with ``None``-valued overrides ignored."""
    base = OmegaConf.to_object(cfg_sampler) if not isinstance(cfg_sampler, SamplerConfig) else cfg_sampler
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
