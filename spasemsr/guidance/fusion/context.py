"""Per-forward guidance state shared by the processors and hooks attached to the ControlNet and UNet.

diffusers blocks pass only ``encoder_hidden_states`` to attention processors; everything else the
spatial-semantic attentions read (spatial text, degradation text, visual features, knob weights)
travels through one ``GuidanceContext`` that the model fills before each denoising call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import torch.utils.checkpoint
from torch import Tensor, nn

from spasemsr.config.knobs import SamplerConfig
from spasemsr.guidance.text.spatial import WHOLE, box_keep_mask


@dataclass
class GuidanceContext:
    """What the injected modules read during one ControlNet + UNet evaluation."""

    e_spa: Tensor | None = None  # (B, L_spa, D) spatial-aware text tokens
    spa_mask: Tensor | None = None  # (B, L_spa) bool, True = attend
    spa_boxes: Tensor | None = None  # (B, L_spa, 4) normalised xyxy box of each e_spa token
    e_deg: Tensor | None = None  # (B, L_deg, D) degradation-aware text tokens
    c_img: Tensor | None = None  # (B, C, h, w) visual guidance features at latent resolution
    control_features: dict[int, Tensor] = field(default_factory=dict)  # level -> ControlNet features
    latent_hw: tuple[int, int] = (1, 1)  # (H, W) of the latent being denoised: the aspect of every attention's grid
    view: tuple[float, float, float, float] = WHOLE  # the part of the image (normalised xyxy) that latent covers
    knobs: SamplerConfig = field(default_factory=SamplerConfig)  # the call's knobs (its GUIDANCE_KNOBS apply here)

    def weighted(self, knob: str, residual: Tensor) -> Tensor:
        """``residual`` scaled by knob ``knob``: the one place the injected attentions apply a knob."""
        return getattr(self.knobs, knob) * residual

    def off(self, knob: str) -> bool:
        """Whether ``knob`` is 0 (its module is skipped, saving its compute)."""
        return getattr(self.knobs, knob) == 0

    def full(self, knob: str) -> bool:
        """Whether ``knob`` is 1 (a blend it weighs is its module's output alone, the other side not computed)."""
        return getattr(self.knobs, knob) == 1

    def spatial_keep(self, queries: int, boxed: bool) -> Tensor | None:
        """The e_spa keep-mask of an attention with ``queries`` positions: (B, L_spa), or with ``boxed`` (B, queries,
        L_spa), where each query keeps only the tokens whose box holds it (``box_keep_mask``)."""
        if not boxed or self.spa_mask is None or self.spa_boxes is None:
            return self.spa_mask
        return box_keep_mask(self.spa_boxes, self.spa_mask, queries, self.latent_hw, self.view)

    @contextmanager
    def active(self, **values: object) -> Iterator[GuidanceContext]:
        """Set fields for the duration of one forward, then clear tensors so nothing stale leaks."""
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(f"GuidanceContext has no field {key!r}")
            setattr(self, key, value)
        try:
            yield self
        finally:
            self.e_spa = self.spa_mask = self.spa_boxes = self.e_deg = self.c_img = None
            self.control_features = {}

    def snapshot(self) -> dict[str, Any]:
        """The current values (the feature dict copied, since later levels are still being published into it)."""
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), dict) else v for f in fields(self)}

    @contextmanager
    def restored(self, state: dict[str, Any]) -> Iterator[GuidanceContext]:
        """Hold ``state`` for the duration, then put back exactly what was there before."""
        previous = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in state.items():
            setattr(self, key, value)
        try:
            yield self
        finally:
            for key, value in previous.items():
                setattr(self, key, value)

    def checkpointing_function(self) -> Callable[..., Any]:
        """A ``gradient_checkpointing_func`` for diffusers models that run processors reading this context.

        Backward recomputes a checkpointed block after the forward's ``active`` scope has ended; the block's
        SpaTextAttn / SemImgAttn / degradation branch would then read an empty context and compute something
        else. This function captures the context when the block first runs and re-enters it for the
        recomputation, so checkpointed gradients equal the plain ones.
        """
        def checkpointed(module: nn.Module, *args: Any) -> Any:
            state = self.snapshot()

            def run(*inputs: Any) -> Any:
                with self.restored(state):
                    return module(*inputs)

            return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)

        return checkpointed

