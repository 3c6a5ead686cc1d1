"""The methods ``evaluate`` runs: ``bicubic``, ``drm:PATH`` or an exported diffusion model, each LR -> SR."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.config.knobs import knob_overrides
from spasemsr.diffusion.conditions import Known


@dataclass(frozen=True)
class Method:
    """An SR method ready to run, and what the record says about it."""

    upscale: Callable[[Tensor, Known | None], Tensor]  # (LR, what else is known of it) -> SR
    ckpt: str
    config: str | None
    knobs: dict | None
    backbone: str | None = None  # the frozen prior's weights (identity.backbone_sha256), for diffusion models


def load_method(method: str, scale: int, knobs: Mapping[str, object], seed: int, device: str,
                drm: str | None = None) -> Method:
    """Build a restorer (``bicubic``, ``realesrgan_x4plus``, ``realsr_df2k``, ``drm:PATH``; ``NAME:PATH`` gives any
    restorer its weights) or an exported diffusion model (its sampler knobs overridden by ``knobs``; ``drm`` replaces
    a SpaSemSR export's DRM and is recorded with the knobs)."""
    from spasemsr.evaluation.identity import backbone_sha256, export_config_hash, weights_sha256
    from spasemsr.registries import RESTORERS

    overrides = knob_overrides(knobs)
    name, _, path = method.partition(":")
    if name in RESTORERS:
        if overrides or drm:
            raise ValueError(f"knobs {sorted(overrides)} and drm apply to diffusion models only, not to {method!r}")
        return _restorer_method(name, Path(path) if path else None, scale, device)
    from spasemsr.pipeline import sampler_settings
    from spasemsr.weights.exports import load_pipeline

    export = Path(method)
    pipeline = load_pipeline(export, device=device, drm=drm)
    if pipeline.scale != scale:
        raise ValueError(f"{export} is a x{pipeline.scale} model, but the evaluation set is x{scale}")
    settings = sampler_settings(pipeline.sampler, **overrides, seed=seed)

    def upscale(lr: Tensor, known: Known | None = None) -> Tensor:  # a fresh generator per image, as upscale does
        return pipeline(lr, torch.Generator(device).manual_seed(seed), settings, known)

    record = asdict(settings) | ({"drm": drm} if drm is not None else {})
    return Method(upscale, weights_sha256(export), export_config_hash(export), record, backbone_sha256(export))


def _restorer_method(name: str, path: Path | None, scale: int, device: str) -> Method:
    """A restorer as a method; its identity is the hash of its weights (a folder's safetensors, a checkpoint file,
    or what the restorer reports for built-in weights), its config hash that of the export it came from."""
    from spasemsr.evaluation.identity import export_config_hash, weights_sha256
    from spasemsr.restore.baselines import load_restorer
    from spasemsr.training.manifest import file_sha256

    restorer = load_restorer(name, path, scale, device)

    def upscale(lr: Tensor, known: Known | None = None) -> Tensor:  # a restorer sees the pixels only
        return restorer(lr)

    if path is None:
        return Method(upscale, getattr(restorer, "identity", name), None, None)
    if path.is_dir():
        return Method(upscale, weights_sha256(path), export_config_hash(path), None)
    return Method(upscale, file_sha256(path), None, None)
