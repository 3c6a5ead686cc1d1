"""One inference pipeline (LR → condition → sample → decode) shared by training previews and upscale.

Every entry point that produces SR images goes through ``SRPipeline`` so that a setting means the
same thing everywhere.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor

from spasemsr.diffusion.backbone import Backbone, vae_downscale
from spasemsr.diffusion.control import ControlledUNet
from spasemsr.diffusion.latents import decode
from spasemsr.diffusion.sampler import DDIMSampler


def lr_condition(lr: Tensor, scale: int) -> Tensor:
    """The ControlNet's pixel condition: the LR image bicubically upsampled to HR size, in [-1, 1]."""
    up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.clamp(0, 1) * 2 - 1


class SRPipeline:
    """x``scale`` super-resolution with the ControlNet-steered frozen prior."""

    def __init__(self, backbone: Backbone, model: ControlledUNet, text: Tensor, scale: int,
                 steps: int, eta: float = 0.0) -> None:
        self.backbone = backbone
        self.model = model
        self.text = text  # (1, L, D) embedding of the fixed prompt
        self.scale = scale
        self.sampler = DDIMSampler(backbone.sampling_scheduler(), steps, eta)

    @property
    def multiple(self) -> int:
        """LR sides are padded to a multiple of this so every UNet level divides evenly."""
        unet_factor = 2 ** (len(self.backbone.unet.config.block_out_channels) - 1)
        hr_multiple = vae_downscale(self.backbone.vae) * unet_factor
        return hr_multiple // math.gcd(hr_multiple, self.scale)

    @torch.no_grad()
    def __call__(self, lr: Tensor, generator: torch.Generator) -> Tensor:
        """LR (B, 3, h, w) in [0, 1] → SR (B, 3, scale·h, scale·w) in [0, 1]."""
        b, _, h, w = lr.shape
        padded = _pad_to_multiple(lr, self.multiple)
        condition = lr_condition(padded, self.scale)
        factor = vae_downscale(self.backbone.vae)
        shape = (b, self.backbone.unet.config.in_channels, condition.shape[2] // factor, condition.shape[3] // factor)
        text = self.text.expand(b, -1, -1)

        def denoise(latents: Tensor, t: Tensor) -> Tensor:
            return self.model(latents, t, text, condition)

        latents = self.sampler.sample(denoise, shape, generator, lr.device, lr.dtype)
        sr = decode(self.backbone.vae, latents)
        return sr[:, :, : h * self.scale, : w * self.scale]


def _pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    h, w = image.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def load_pipeline(export: str | Path, device: str | torch.device = "cpu", steps: int | None = None) -> SRPipeline:
    """Rebuild the pipeline from a run's ``export/`` folder (its config, ControlNet and the prior it names)."""
    from diffusers import ControlNetModel

    from spasemsr.config import validate
    from spasemsr.diffusion.backbone import load_backbone
    from spasemsr.guidance.text_encoder import load_text_encoder

    export = Path(export)
    if not (export / "config.yaml").is_file() or not (export / "controlnet" / "config.json").is_file():
        raise FileNotFoundError(
            f"{export} is not an exported SR model: expected config.yaml and controlnet/ "
            "(the export/ folder of a `spasemsr train --config configs/controlnet_sr.yaml` run)"
        )
    cfg = validate(OmegaConf.load(export / "config.yaml"))
    backbone = load_backbone(cfg.profile.backbone_path).freeze()
    controlnet = ControlNetModel.from_pretrained(export / "controlnet", local_files_only=True).eval()
    te = cfg.profile.text_encoder
    text = load_text_encoder(te.name, te.path, te.max_length, te.subfolder)([cfg.model.prompt])
    model = ControlledUNet(backbone.unet, controlnet).to(device)
    backbone.vae.to(device)
    return SRPipeline(backbone, model, text.to(device), cfg.data.scale, steps or cfg.sampler.steps, cfg.sampler.eta)
