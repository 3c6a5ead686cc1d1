"""The SpaSemSR denoiser: the ControlNet-SR baseline plus spatial-semantic guidance, all toggled by config.

Composition (DESIGN.md §1): e_spa from grounded tags + boxes, e_deg from the degradation caption, c_img
from E_img ⊕ E_sem on the LR image; the Spatial-Semantic ControlNet reads z_t + c_img and fuses its
e_spa / e_deg cross-attentions; the frozen UNet gets SpaTextAttn and SemImgAttn. Every added module
starts as a no-op, so an untrained SpaSemSRNet equals the ControlNet-SR baseline it is built from.
"""

from __future__ import annotations

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from torch import Tensor

from spasemsr.config.schema import SamplerConfig
from spasemsr.config.tasks import SpaSemSRTask
from spasemsr.diffusion.conditions import Conditions
from spasemsr.diffusion.control import ControlledUNet
from spasemsr.guidance.fusion.attach import ControlNetFusion, UNetGuidance
from spasemsr.guidance.fusion.context import GuidanceContext
from spasemsr.guidance.grounding.base import Grounding
from spasemsr.guidance.text.encoder import TextEncoder
from spasemsr.guidance.text.spatial import SpatialText
from spasemsr.guidance.visual.encoders import VisualGuidance

# Trainable parts (besides the ControlNet itself); saved together as guidance.safetensors on export.
GUIDANCE_MODULES = ("fusion", "unet_guidance", "spatial", "visual")


class SpaSemSRNet(ControlledUNet):
    """ε-prediction with every guidance component; knobs ``w_spa``, ``w_deg``, ``w_sem`` scale their outputs."""

    def __init__(self, unet: UNet2DConditionModel, controlnet: ControlNetModel, text_encoder: TextEncoder,
                 task: SpaSemSRTask, scale: int, vae_factor: int, teacher_channels: int) -> None:
        super().__init__(unet, controlnet, text_encoder([task.prompt]))
        text, visual = task.text, task.visual
        self.context = GuidanceContext()
        self.text_encoder = text_encoder
        self.degradation_text = text.degradation_text
        self.vae_factor = vae_factor
        self.spatial = SpatialText(text_encoder, text.spatial, text.box_encoder, text.max_objects)
        self.visual = VisualGuidance(
            use_img=visual.use_img, use_sem=visual.use_sem, img_channels=visual.channels,
            sem_channels=visual.channels, latent_channels=unet.config.in_channels if visual.l_vae else 0,
            teacher_channels=teacher_channels if visual.l_sem else 0, scale=scale, vae_factor=vae_factor,
            width=visual.width, depth=visual.depth,
        )
        # the attentions over e_spa place their queries (position codes, box masks) only where boxes count (tags_boxes)
        boxed = text.spatial == "tags_boxes"
        position = text.box_encoder if text.query_position and boxed else None
        box_mask = text.box_mask and boxed
        self.fusion = ControlNetFusion(controlnet, self.context, task.fusion if text.degradation_text else None,
                                       self.visual.out_channels, position, box_mask)
        self.unet_guidance = UNetGuidance(unet, self.context, spa_text=text.spatial != "none",
                                          sem_img=visual.sem_img_attn, query_position=position, box_mask=box_mask)

    def latent_hw(self, hr_hw: tuple[int, int]) -> tuple[int, int]:
        """The latent grid of an HR image (the VAE floors)."""
        return hr_hw[0] // self.vae_factor, hr_hw[1] // self.vae_factor

    def conditions(self, lr: Tensor, scale: int, groundings: list[Grounding] | None = None,
                   captions: list[str] | None = None, visual: dict[str, Tensor] | None = None) -> Conditions:
        """Per-image conditions: pixels + null text (baseline), e_spa, e_deg and c_img where enabled.

        ``visual`` are E_img / E_sem features already computed for this LR (training reuses them for the
        constraint losses); without them the encoders run here.
        """
        cond = super().conditions(lr, scale)
        b = lr.shape[0]
        if self.spatial.mode != "none":
            groundings = groundings or [Grounding.empty()] * b
            cond.e_spa, cond.spa_mask, cond.spa_boxes = self.spatial(groundings, self.prompt_embedding)
        if self.degradation_text:
            cond.e_deg = self.text_encoder(captions if captions is not None else [""] * b)
        if self.visual.enabled:
            features = visual if visual is not None else self.visual.encode(lr, self.latent_hw(cond.pixel.shape[2:]))
            cond.c_img = torch.cat(list(features.values()), dim=1)
        return cond

    def eps(self, latents: Tensor, timesteps: Tensor, cond: Conditions, knobs: SamplerConfig) -> Tensor:
        with self.context.active(e_spa=cond.e_spa, spa_mask=cond.spa_mask, spa_boxes=cond.spa_boxes, e_deg=cond.e_deg,
                                 c_img=cond.c_img, knobs=knobs, latent_hw=tuple(latents.shape[-2:]), view=cond.view):
            return super().eps(latents, timesteps, cond, knobs)

    def guidance_state(self) -> dict[str, Tensor]:
        """Weights of the added trainable modules (the ControlNet is saved on its own with save_pretrained)."""
        return {f"{name}.{key}": value for name in GUIDANCE_MODULES
                for key, value in getattr(self, name).state_dict().items()}
