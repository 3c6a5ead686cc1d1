"""Pretraining the tiny profile's text-conditioned UNet prior on frozen VAE latents.

It stands in for SD-2's UNet: the SR stages freeze it exactly as the paper freezes SD-2. Text
comes from the real MiniLM encoder; captions are dropped with ``caption_dropout`` so the prior
also learns the null prompt the ControlNet-SR baseline and classifier-free guidance use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spasemsr.config import to_container
from spasemsr.diffusion.backbone import Backbone, build_scheduler, build_unet, load_tiny_vae, save_backbone
from spasemsr.diffusion.latents import encode, epsilon_loss
from spasemsr.guidance.text.encoder import text_encoder_for
from spasemsr.models.base import TaskModule


class PriorModule(TaskModule):
    """ε-prediction MSE of a fresh UNet conditioned on caption embeddings."""

    trainable = ("unet",)
    frozen_paths = ("model.vae_path",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.text_encoder = text_encoder_for(self.cfg)
        arch = to_container(self.cfg.profile.unet_arch)
        if arch.get("cross_attention_dim") != self.text_encoder.dim:
            raise ValueError(
                f"profile.unet_arch.cross_attention_dim={arch.get('cross_attention_dim')} must equal the text "
                f"encoder's width {self.text_encoder.dim}"
            )
        self.vae = load_tiny_vae(self.cfg.model.vae_path).requires_grad_(False).eval()
        self.unet = build_unet(arch)
        self.scheduler = build_scheduler(to_container(self.cfg.profile.scheduler))

    def _embed(self, captions: list[str], generator: torch.Generator | None) -> Tensor:
        keep = None
        if self.training:
            device = generator.device if generator is not None else "cpu"
            keep = torch.rand(len(captions), generator=generator, device=device) >= self.cfg.model.caption_dropout
        texts = [c if keep is None or keep[i] else "" for i, c in enumerate(captions)]
        return self.text_encoder(texts)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        with torch.no_grad():
            latents = encode(self.vae, batch["hr"], generator)
        noisy, noise, timesteps = self.noised(self.scheduler, latents, generator)
        prediction = self.unet(noisy, timesteps, encoder_hidden_states=self._embed(batch["caption"], generator)).sample
        return epsilon_loss(prediction, noise)

    def checkpointed_models(self) -> list:
        return [(self.unet, None)]

    def export(self, folder: Path) -> None:
        save_backbone(Backbone(self.vae, self.unet, self.scheduler), folder)
