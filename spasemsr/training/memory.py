"""The training memory options of ``trainer``: the optimiser by name and the storage of the frozen parts.

``benchmarks/training_memory.py`` measures what each saves at SD-2 sizes. Optimisers (``trainer.optimizer``):

- ``adamw``: ``torch.optim.AdamW`` (two fp32 moments per trainable parameter: 8 bytes each).
- ``adamw_fused``: the same update in torch's fused kernel (CPU and CUDA): faster, same memory.
- ``adamw8bit``: bitsandbytes' block-wise 8-bit AdamW (2 bytes per parameter for both moments; Dettmers
  et al. 2022), as diffusers' ControlNet example offers with ``--use_8bit_adam``. Needs ``bitsandbytes``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from spasemsr.config.choices import FROZEN_DTYPE_NAMES
from spasemsr.registries import OPTIMIZERS

ParamList = Iterable[torch.nn.Parameter]


def adamw(params: ParamList, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr)


def adamw_fused(params: ParamList, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, fused=True)


def adamw8bit(params: ParamList, lr: float) -> torch.optim.Optimizer:
    try:
        import bitsandbytes
    except ImportError as err:
        raise ImportError(f"trainer.optimizer=adamw8bit needs bitsandbytes (pip install bitsandbytes): {err}") from None
    return bitsandbytes.optim.AdamW8bit(params, lr=lr)


def build_optimizer(name: str, params: ParamList, lr: float, precision: str = "32-true",
                    gradient_clip_val: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params``; an unknown name, or a combination Lightning refuses, is an error."""
    OPTIMIZERS.check(name)
    if name == "adamw_fused" and gradient_clip_val and "mixed" in precision:
        raise ValueError(
            f"trainer.optimizer=adamw_fused cannot clip gradients under precision={precision} (a fused optimizer "
            "unscales its gradients itself, so Lightning refuses to clip them first): set "
            "trainer.gradient_clip_val=0 or trainer.optimizer=adamw"
        )
    return OPTIMIZERS.build(name, params, lr)


FROZEN_DTYPES = {name: getattr(torch, name) for name in FROZEN_DTYPE_NAMES}


def store_frozen_as(module: nn.Module, dtype_name: str, precision: str) -> None:
    """``trainer.frozen_dtype``: every frozen layer (prior, VAE, text encoder, teacher) stored in ``dtype_name``.

    As diffusers' training examples do with ``weight_dtype``. Under autocast those weights were cast to half
    for every matmul anyway, so this shrinks their storage and removes the casts' copies autograd would save;
    a layer's buffers (batch-norm statistics) follow its weights. Trainable layers stay float32.
    """
    if dtype_name not in FROZEN_DTYPES:
        raise ValueError(f"trainer.frozen_dtype={dtype_name!r} is not one of {sorted(FROZEN_DTYPES)}")
    dtype = FROZEN_DTYPES[dtype_name]
    if dtype == torch.float32:
        return
    if "mixed" not in precision:
        raise ValueError(f"trainer.frozen_dtype={dtype_name} needs a mixed precision (bf16-mixed or 16-mixed) to run "
                         f"the half-precision frozen parts, got precision={precision}")
    for layer in module.modules():
        own = list(layer.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            for tensor in (*own, *layer.buffers(recurse=False)):
                if tensor.is_floating_point():
                    tensor.data = tensor.data.to(dtype)
