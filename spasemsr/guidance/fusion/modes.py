"""Fusion modes: how the degradation branch h_deg is merged into the spatial branch h_spa (``model.fusion``).

Each mode is a module built as ``Mode(channels, heads)`` whose ``forward(h_spa, h_deg)`` returns the residual
added to h_spa (scaled by ``w_deg``); each starts at zero so an untrained branch changes nothing. Registered
in ``spasemsr.registries.FUSIONS``; a new mode is one registered class. Parameter names are those of the
shipped weights (each mode *is* its projection, not a wrapper around it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spasemsr.guidance.fusion.attention import CrossAttention


class SpaSemFusion(CrossAttention):
    """The paper's SpaSemAttn: Q = h_spa, K/V = h_deg, output projection zero-initialised."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__(channels, channels, heads, zero_init=True)

    def forward(self, h_spa: Tensor, h_deg: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(h_spa, h_deg)


class _ZeroLinear(nn.Linear):
    """A linear projection that starts as the zero map."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class SumFusion(_ZeroLinear):
    """Ablation: a projection of h_deg alone added to h_spa."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__(channels, channels)

    def forward(self, h_spa: Tensor, h_deg: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(h_deg)


class ConcatFusion(_ZeroLinear):
    """Ablation: a projection of [h_spa, h_deg] (channel concatenation)."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__(2 * channels, channels)

    def forward(self, h_spa: Tensor, h_deg: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(torch.cat([h_spa, h_deg], dim=-1))
