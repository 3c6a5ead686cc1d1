"""The describer: a degradation-aware caption per LR image (e_deg's text), from one of several backends.

Backends are registered by name and imported only when loaded, so choosing ``params`` never imports
transformers' VLM code. ``params`` reads the true degradation parameters (training), ``estimator``
regresses them from pixels, ``vlm`` asks a local vision-language model, ``none`` writes "".
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from spasemsr.registries import DESCRIBERS


class Describer(Protocol):
    """Anything that captions a batch of LR images (B, 3, h, w) in [0, 1]; ``params`` may be None."""

    def __call__(self, lr: Tensor, params: dict[str, Tensor] | None = None) -> list[str]: ...


class NoDescriber:
    """The 'degradation text off' ablation: an empty caption per image."""

    def __call__(self, lr: Tensor, params: dict[str, Tensor] | None = None) -> list[str]:
        return [""] * lr.shape[0]




def load_describer(name: str, device: str | None = None, **options: Any) -> Describer:
    """Build the describer backend ``name`` with its ``options`` (e.g. ``path=`` for estimator, vlm), on ``device``."""
    return DESCRIBERS.build(name, device=device, **options)
