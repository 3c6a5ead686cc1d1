"""Optimisers by name (``trainer.optimizer``): the memory options for large trainable ControlNets.

- ``adamw``: ``torch.optim.AdamW`` (two fp32 moments per trainable parameter: 8 bytes each).
- ``adamw_fused``: the same update in torch's fused kernel (CPU and CUDA): faster, same memory.
- ``adamw8bit``: bitsandbytes' block-wise 8-bit AdamW (2 bytes per parameter for both moments; Dettmers
  et al. 2022), as diffusers' ControlNet example offers with ``--use_8bit_adam``. Needs ``bitsandbytes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

ParamList = Iterable[torch.nn.Parameter]


def _adamw(params: ParamList, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr)


def _adamw_fused(params: ParamList, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, fused=True)


def _adamw8bit(params: ParamList, lr: float) -> torch.optim.Optimizer:
    try:
        import bitsandbytes
    except ImportError as err:
        raise ImportError(f"trainer.optimizer=adamw8bit needs bitsandbytes (pip install bitsandbytes): {err}") from None
    return bitsandbytes.optim.AdamW8bit(params, lr=lr)


OPTIMIZERS: dict[str, Callable[[ParamList, float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "adamw_fused": _adamw_fused,
    "adamw8bit": _adamw8bit,
}


def build_optimizer(name: str, params: ParamList, lr: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params``; an unknown name lists the valid ones."""
    if name not in OPTIMIZERS:
        raise ValueError(f"trainer.optimizer={name!r} is not one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr)
