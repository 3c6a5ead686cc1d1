"""The ControlNet-SR baseline: SpaSemSR with both guidances off.

A ControlNet initialised from the frozen prior's UNet encoder reads the (bicubically upsampled)
LR image; the prior, VAE and text encoder stay frozen; the text condition is a fixed prompt
(the null prompt by default). Trained with the ε-prediction MSE on HR latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spasemsr.diffusion.backbone import load_backbone, vae_downscale
from spasemsr.diffusion.control import ControlledUNet, controlnet_from_unet, lr_condition
from spasemsr.diffusion.latents import encode, epsilon_loss
from spasemsr.models.base import TaskModule
from spasemsr.pipeline import SRPipeline, sampler_settings


class ControlNetSRModule(TaskModule):
    """Only ``model.controlnet`` trains."""

    trainable = ("model.controlnet",)
    needs_lr = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.backbone = load_backbone(self.cfg.profile.backbone_path).freeze()
        text_encoder = self._text_encoder()
        controlnet = controlnet_from_unet(
            self.backbone.unet, list(self.cfg.profile.control_embedding_channels), vae_downscale(self.backbone.vae)
        )
        self.model = ControlledUNet(self.backbone.unet, controlnet, text_encoder([self.cfg.model.prompt]))
        self.vae = self.backbone.vae  # registered so it follows the module across devices

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """ε-MSE of the controlled UNet on the HR latents, conditioned on the LR image."""
        hr, lr = batch["hr"], batch["lr"]
        with torch.no_grad():
            latents = encode(self.vae, hr, generator)
        noisy, noise, timesteps = self.noised(self.backbone.train_scheduler, latents, generator)
        condition = lr_condition(lr, self.cfg.data.scale)
        prediction = self.model(noisy, timesteps, self.model.null_text.expand(hr.shape[0], -1, -1), condition)
        return epsilon_loss(prediction, noise)

    def checkpointed_models(self) -> list:
        return [(self.model.unet, None), (self.model.controlnet, None)]

    def pipeline(self) -> SRPipeline:
        """The inference pipeline over this module's current weights."""
        pipeline = SRPipeline(self.backbone, self.model, self.cfg.data.scale, sampler_settings(self.cfg.sampler))
        pipeline.precision = self.autocast_dtype
        return pipeline

    def preview(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        generator = torch.Generator(self.device).manual_seed(self.cfg.sampler.seed)
        return self.side_by_side(batch["lr"], self.pipeline()(batch["lr"], generator), batch["hr"])

    def export(self, folder: Path) -> None:
        self.model.controlnet.save_pretrained(folder / "controlnet")
