"""ControlNet conditioning of the frozen UNet: the trainable branch that reads the LR image."""

from __future__ import annotations

from diffusers import ControlNetModel, UNet2DConditionModel
from torch import Tensor, nn

from spasemsr.config.schema import SamplerConfig
from spasemsr.data.resize import bicubic_up
from spasemsr.diffusion.conditions import Conditions


def controlnet_from_unet(unet: UNet2DConditionModel, embedding_channels: list[int], vae_factor: int) -> ControlNetModel:
    """A ControlNet initialised from the UNet encoder whose condition embedding matches the VAE's downscale."""
    factor = 2 ** (len(embedding_channels) - 1)
    if factor != vae_factor:
        raise ValueError(
            f"profile.control_embedding_channels={list(embedding_channels)} downsamples the condition by {factor}, "
            f"but the VAE downsamples by {vae_factor}; use {vae_factor.bit_length()} channel entries"
        )
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(embedding_channels))


def lr_condition(lr: Tensor, scale: int) -> Tensor:
    """The ControlNet's pixel condition: the LR image bicubically upsampled to HR size, in [-1, 1]."""
    up = bicubic_up(lr, (lr.shape[-2] * scale, lr.shape[-1] * scale))
    return up.clamp(0, 1) * 2 - 1


class ControlledUNet(nn.Module):
    """ε-prediction of the frozen UNet steered by ControlNet residuals (the ControlNet-SR baseline denoiser).

    ``prompt_embedding`` is the fixed prompt's embedding (1, L, D): the frozen UNet's text condition, and the
    null condition classifier-free guidance falls back to.
    """

    def __init__(self, unet: UNet2DConditionModel, controlnet: ControlNetModel, prompt_embedding: Tensor) -> None:
        super().__init__()
        self.unet = unet
        self.controlnet = controlnet
        self.register_buffer("prompt_embedding", prompt_embedding, persistent=False)

    def forward(self, latents: Tensor, timesteps: Tensor, text: Tensor, condition: Tensor,
                control_scale: float = 1.0) -> Tensor:
        down, mid = self.controlnet(
            latents, timesteps, encoder_hidden_states=text, controlnet_cond=condition,
            conditioning_scale=control_scale, return_dict=False,
        )
        return self.unet(
            latents, timesteps, encoder_hidden_states=text,
            down_block_additional_residuals=down, mid_block_additional_residual=mid,
        ).sample

    def conditions(self, lr: Tensor, scale: int) -> Conditions:
        """The baseline's conditions: the upsampled LR image and the fixed prompt."""
        return Conditions(pixel=lr_condition(lr, scale), text=self.prompt_embedding.expand(lr.shape[0], -1, -1))

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Conditions, knobs: SamplerConfig) -> Tensor:
        """Predicted noise under ``cond`` with the knobs this denoiser has (here: ``control_scale``)."""
        return self(latents, timesteps, cond.text, cond.pixel, knobs.control_scale)
