"""Attention processors that add our trainable attentions to diffusers' frozen cross-attention calls.

Processors are plain callables (like diffusers' own) holding references to modules owned by
``ControlNetFusion`` / ``UNetGuidance``, so the diffusers models' state dicts stay untouched and
``save_pretrained`` keeps working; our weights are saved separately.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import Tensor, nn

from spasemsr.guidance.fusion.context import GuidanceContext
from spasemsr.guidance.text.spatial import QueryPosition
from spasemsr.registries import FUSIONS


def additive_mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(B, M) or per-query (B, N, M) bool keep-mask → diffusers' additive (B, 1 or N, M) bias."""
    if mask is None:
        return None
    bias = (~mask).to(dtype) * torch.finfo(dtype).min
    return bias[:, None, :] if mask.dim() == 2 else bias


class DegradationBranch(nn.Module):
    """h_deg = CrossAttn(h, e_deg), merged into h_spa by the configured fusion mode (all start as a no-op)."""

    def __init__(self, channels: int, text_dim: int, fusion: str, heads: int = 4) -> None:
        super().__init__()
        from spasemsr.guidance.fusion.attention import CrossAttention

        self.fusion = fusion  # the mode's registry name
        self.attend = CrossAttention(channels, text_dim, heads, zero_init=False)
        self.fuse = FUSIONS.build(fusion, channels, heads)

    def forward(self, hidden: Tensor, h_spa: Tensor, e_deg: Tensor) -> Tensor:
        """The residual added to h_spa (scaled by w_deg by the caller)."""
        return self.fuse(h_spa, self.attend(hidden, e_deg))


class ControlNetCrossAttnProcessor:
    """ControlNet cross-attention: h_spa = attn2(h, e_spa) (its own weights, blended by w_spa), then + w_deg · h_deg."""

    def __init__(self, context: GuidanceContext, branch: DegradationBranch | None,
                 position: QueryPosition | None = None, box_mask: bool = False) -> None:
        self.context = context
        self.branch = branch
        self.position = position  # adds each query's position code for the attention over e_spa
        self.box_mask = box_mask  # each query attends only to the e_spa tokens whose box holds it
        self.base = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, **kwargs: object) -> Tensor:
        ctx = self.context
        h_spa = self._spatial_text_attention(attn, hidden_states, encoder_hidden_states, attention_mask)
        if self.branch is None or ctx.e_deg is None or ctx.off("w_deg"):
            return h_spa
        return h_spa + ctx.weighted("w_deg", self.branch(hidden_states, h_spa, ctx.e_deg))

    def _spatial_text_attention(self, attn: Attention, hidden: Tensor, prompt: Tensor | None,
                                prompt_mask: Tensor | None) -> Tensor:
        """attn2 over e_spa, blended with attn2 over the plain prompt by w_spa (0: the prompt alone, 1: e_spa alone).

        So ``w_spa=0`` removes spatial text from the ControlNet as well as from the UNet's SpaTextAttn.
        """
        ctx = self.context
        if ctx.e_spa is None or ctx.off("w_spa"):
            return self.base(attn, hidden, prompt, prompt_mask)
        query = hidden if self.position is None else self.position(hidden, ctx.latent_hw, ctx.view)
        keep = ctx.spatial_keep(hidden.shape[1], self.box_mask)
        spatial = self.base(attn, query, ctx.e_spa, additive_mask(keep, hidden.dtype))
        if ctx.full("w_spa"):
            return spatial
        plain = self.base(attn, hidden, prompt, prompt_mask)
        return plain + ctx.weighted("w_spa", spatial - plain)


class UNetCrossAttnProcessor:
    """Frozen UNet cross-attention + w_spa · SpaTextAttn(h, e_spa) + control_scale · w_sem · SemImgAttn(h, features)."""

    def __init__(self, context: GuidanceContext, spa_text: nn.Module | None, sem_img: nn.Module | None,
                 level: int, position: QueryPosition | None = None, box_mask: bool = False) -> None:
        self.context = context
        self.spa_text = spa_text
        self.sem_img = sem_img
        self.level = level
        self.position = position
        self.box_mask = box_mask
        self.base = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, **kwargs: object) -> Tensor:
        ctx = self.context
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask)
        if self.spa_text is not None and ctx.e_spa is not None and not ctx.off("w_spa"):
            query = hidden_states if self.position is None else self.position(hidden_states, ctx.latent_hw, ctx.view)
            keep = ctx.spatial_keep(hidden_states.shape[1], self.box_mask)
            out = out + ctx.weighted("w_spa", self.spa_text(query, ctx.e_spa, keep))
        features = ctx.control_features.get(self.level)
        if self.sem_img is not None and features is not None and not ctx.off("w_sem") and not ctx.off("control_scale"):
            # SemImgAttn reads ControlNet features, so it is a ControlNet contribution: control_scale scales it too
            tokens = features.flatten(2).transpose(1, 2)
            out = out + ctx.weighted("control_scale", ctx.weighted("w_sem", self.sem_img(hidden_states, tokens)))
        return out
