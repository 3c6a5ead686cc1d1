"""A small masked multi-head cross-attention used for every added attention (SpaTextAttn, SemImgAttn, SpaSemAttn)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttention(nn.Module):
    """Q from ``x``, K/V from ``context``; the output projection starts at zero so adding it changes nothing."""

    def __init__(self, query_dim: int, context_dim: int, heads: int = 4, zero_init: bool = True) -> None:
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"query_dim {query_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm_context = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, N, query_dim), context (B, M, context_dim), mask (B, M) or per-query (B, N, M) bool True=attend
        → (B, N, query_dim)."""
        b, n, c = x.shape
        context = self.norm_context(context)
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        bias = None if mask is None else (mask[:, None, None, :] if mask.dim() == 2 else mask[:, None])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))
