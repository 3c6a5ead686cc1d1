"""ControlNet conditioning of the frozen UNet: the trainable branch that reads the LR image."""

from __future__ import annotations

from diffusers import ControlNetModel, UNet2DConditionModel
from torch import Tensor, nn


def controlnet_from_unet(unet: UNet2DConditionModel, embedding_channels: list[int], vae_factor: int) -> ControlNetModel:
    """A ControlNet initialised from the UNet encoder whose condition embedding matches the VAE's downscale."""
    factor = 2 ** (len(embedding_channels) - 1)
    if factor != vae_factor:
        raise ValueError(
            f"profile.control_embedding_channels={list(embedding_channels)} downsamples the condition by {factor}, "
            f"but the VAE downsamples by {vae_factor}; use {vae_factor.bit_length()} channel entries"
        )
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(embedding_channels))


class ControlledUNet(nn.Module):
    """ε-prediction of the frozen UNet steered by ControlNet residuals computed from a pixel condition."""

    def __init__(self, unet: UNet2DConditionModel, controlnet: ControlNetModel) -> None:
        super().__init__()
        self.unet = unet
        self.controlnet = controlnet

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
