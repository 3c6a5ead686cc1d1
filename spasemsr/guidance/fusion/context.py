"""Per-forward guidance state shared by the processors and hooks attached to the ControlNet and UNet.

diffusers blocks pass only ``encoder_hidden_states`` to attention processors; everything else the
spatial-semantic attentions read (spatial text, degradation text, visual features, knob weights)
travels through one ``GuidanceContext`` that the model fills before each denoising call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class GuidanceContext:
    """What the injected modules read during one ControlNet + UNet evaluation."""

    e_spa: Tensor | None = None  # (B, L_spa, D) spatial-aware text tokens
    spa_mask: Tensor | None = None  # (B, L_spa) bool, True = attend
    e_deg: Tensor | None = None  # (B, L_deg, D) degradation-aware text tokens
    c_img: Tensor | None = None  # (B, C, h, w) visual guidance features at latent resolution
    control_features: dict[int, Tensor] = field(default_factory=dict)  # level -> ControlNet features
    w_spa: float = 1.0
    w_deg: float = 1.0
    w_sem: float = 1.0

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
            self.e_spa = self.spa_mask = self.e_deg = self.c_img = None
            self.control_features = {}
