"""Attach the spatial-semantic modules to a diffusers ControlNet and UNet without forking their blocks."""

from __future__ import annotations

from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from spasemsr.guidance.fusion.attention import CrossAttention
from spasemsr.guidance.fusion.context import GuidanceContext
from spasemsr.guidance.fusion.processors import (
    ControlNetCrossAttnProcessor,
    DegradationBranch,
    UNetCrossAttnProcessor,
)
from spasemsr.guidance.text.spatial import QueryPosition


def _cross_attentions(model: nn.Module) -> list[tuple[str, Attention]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Attention) and name.endswith("attn2")]


def _level(name: str, levels: int) -> int:
    """Resolution level (0 = full latent size) of a block from its module path."""
    parts = name.split(".")
    if parts[0] == "down_blocks":
        return int(parts[1])
    if parts[0] == "up_blocks":
        return levels - 1 - int(parts[1])
    return levels - 1  # mid block


class ControlNetFusion(nn.Module):
    """The Spatial-Semantic ControlNet's trainable additions.

    Every ControlNet cross-attention reads e_spa (its own, trainable weights) and, in parallel, e_deg
    through a ``DegradationBranch``; SpaSemAttn (or sum/concat) fuses them. The visual guidance c_img
    enters after ``conv_in`` through a zero-initialised 1x1 conv. The ControlNet's per-level features
    are published in the context for the UNet's SemImgAttn.
    """

    def __init__(self, controlnet: ControlNetModel, context: GuidanceContext, fusion: str | None,
                 c_img_channels: int, query_position: str | None = None, box_mask: bool = False) -> None:
        """``query_position`` (a box-encoder kind, or None) adds ``QueryPosition`` to the e_spa attention's queries;
        ``box_mask`` restricts each query to the e_spa tokens whose box holds it."""
        super().__init__()
        self.context = context
        text_dim = controlnet.config.cross_attention_dim
        self.branches = nn.ModuleDict()
        self.positions = nn.ModuleDict()
        for name, attn in _cross_attentions(controlnet):
            key = name.replace(".", "_")
            branch = DegradationBranch(attn.to_q.in_features, text_dim, fusion) if fusion else None
            if branch is not None:
                self.branches[key] = branch
            position = QueryPosition(attn.to_q.in_features, query_position) if query_position else None
            if position is not None:
                self.positions[key] = position
            attn.set_processor(ControlNetCrossAttnProcessor(context, branch, position, box_mask))
        self.c_img_in = None
        if c_img_channels:
            self.c_img_in = nn.Conv2d(c_img_channels, controlnet.config.block_out_channels[0], 1)
            nn.init.zeros_(self.c_img_in.weight)
            nn.init.zeros_(self.c_img_in.bias)
            controlnet.conv_in.register_forward_hook(self._add_c_img)
        layers = controlnet.config.layers_per_block
        for level, block in enumerate(controlnet.down_blocks):
            block.register_forward_hook(self._publisher(level, layers))

    def _add_c_img(self, module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        c_img = self.context.c_img
        return output if c_img is None else output + self.c_img_in(c_img)

    def _publisher(self, level: int, layers: int):
        def publish(module: nn.Module, inputs: tuple, output: tuple) -> None:
            self.context.control_features[level] = output[1][layers - 1]
        return publish


class UNetGuidance(nn.Module):
    """Trainable SpaTextAttn in every UNet cross-attention block, SemImgAttn in the decoder's."""

    def __init__(self, unet: UNet2DConditionModel, context: GuidanceContext, spa_text: bool, sem_img: bool,
                 query_position: str | None = None, box_mask: bool = False) -> None:
        """``query_position`` (a box-encoder kind, or None) adds ``QueryPosition`` to SpaTextAttn's queries;
        ``box_mask`` restricts each query to the e_spa tokens whose box holds it."""
        super().__init__()
        channels = list(unet.config.block_out_channels)
        text_dim = unet.config.cross_attention_dim
        self.spa_text = nn.ModuleDict()
        self.sem_img = nn.ModuleDict()
        self.positions = nn.ModuleDict()
        for name, attn in _cross_attentions(unet):
            key, level = name.replace(".", "_"), _level(name, len(channels))
            width = attn.to_q.in_features
            spa = CrossAttention(width, text_dim) if spa_text else None
            sem = CrossAttention(width, channels[level]) if sem_img and name.startswith("up_blocks") else None
            position = QueryPosition(width, query_position) if spa is not None and query_position else None
            if spa is not None:
                self.spa_text[key] = spa
            if sem is not None:
                self.sem_img[key] = sem
            if position is not None:
                self.positions[key] = position
            if spa is not None or sem is not None:
                attn.set_processor(UNetCrossAttnProcessor(context, spa, sem, level, position, box_mask))
