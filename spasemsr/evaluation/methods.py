"""The methods ``evaluate`` runs: ``bicubic``, ``drm:PATH`` or an exported diffusion model, each LR -> SR."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.config.knobs import knob_overrides


@dataclass(frozen=True)
class Method:
    """An SR method ready to run, and what the record says about it."""

    upscale: Callable[[Tensor], Tensor]
    ckpt: str
    config: str | None
    knobs: dict | None


def load_method(method: str, scale: int, knobs: Mapping[str, object], seed: int, device: str) -> Method:
    """Build ``bicubic``, ``drm:PATH`` or an exported diffusion model (its sampler knobs overridden by ``knobs``)."""
    from spasemsr.evaluation.identity import export_config_hash, weights_sha256
    from spasemsr.restore.baselines import load_restorer

    overrides = knob_overrides(knobs)
    if method == "bicubic" or method.startswith("drm:"):
        if overrides:
            raise ValueError(f"knobs {sorted(overrides)} apply to diffusion models only, not to {method!r}")
        if method == "bicubic":
            return Method(load_restorer("bicubic", None, scale, device), "bicubic", None, None)
        path = Path(method.removeprefix("drm:"))
        return Method(load_restorer("drm", path, scale, device), weights_sha256(path), export_config_hash(path), None)
    from spasemsr.pipeline import sampler_settings
    from spasemsr.weights.exports import load_pipeline

    export = Path(method)
    pipeline = load_pipeline(export, device=device)
    if pipeline.scale != scale:
        raise ValueError(f"{export} is a x{pipeline.scale} model, but the evaluation set is x{scale}")
    settings = sampler_settings(pipeline.sampler, **overrides, seed=seed)

    def upscale(lr: Tensor) -> Tensor:  # a fresh generator per image, as `spasemsr upscale` seeds it
        return pipeline(lr, torch.Generator(device).manual_seed(seed), settings)

    return Method(upscale, weights_sha256(export), export_config_hash(export), asdict(settings))
