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

from spasemsr.diffusion.backbone import Backbone, load_backbone
from spasemsr.diffusion.control import ControlledUNet, lr_condition
from spasemsr.diffusion.latents import encode, epsilon_loss
from spasemsr.guidance.text.encoder import text_encoder_for
from spasemsr.models.base import TaskModule
from spasemsr.models.sr_net import build_sr_net, initialise_from
from spasemsr.pipeline import SRPipeline, sampler_settings


class ControlNetSRModule(TaskModule):
    """Only ``model.controlnet`` trains."""

    trainable = ("model.controlnet",)
    frozen_paths = ("profile.backbone_path",)
    needs_lr = True

    def __init__(self, config: Any, net: ControlledUNet | None = None, backbone: Backbone | None = None) -> None:
        """``net`` and the frozen parts are built from the config unless given."""
        super().__init__(config)
        self.backbone = (backbone or load_backbone(self.cfg.profile.backbone_path)).freeze()
        if net is None:
            net = build_sr_net(self.cfg, self.backbone, text_encoder_for(self.cfg))
            initialise_from(net, self.cfg.model.init_from)
        self.model = net
        self.vae = self.backbone.vae  # registered so it follows the module across devices

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """ε-MSE of the controlled UNet on the HR latents, conditioned on the LR image."""
        hr, lr = batch["hr"], batch["lr"]
        with torch.no_grad():
            latents = encode(self.vae, hr, generator)
        noisy, noise, timesteps = self.noised(self.backbone.train_scheduler, latents, generator)
        condition = lr_condition(lr, self.cfg.data.scale)
        prediction = self.model(noisy, timesteps, self.model.prompt_embedding.expand(hr.shape[0], -1, -1), condition)
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
