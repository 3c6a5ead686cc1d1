"""Non-diffusion restorers behind one call, so evaluation runs ``bicubic`` and ``drm`` the same way.

A restorer is a callable LR (B, 3, h, w) in [0, 1] → SR (B, 3, scale·h, scale·w) in [0, 1]; build one
with ``load_restorer(name, path)``. Register new ones in ``spasemsr.registries.RESTORERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.data.resize import bicubic_up
from spasemsr.diffusion.tiling import blend, windows
from spasemsr.registries import RESTORERS

Restorer = Callable[[Tensor], Tensor]


def bicubic_upscale(lr: Tensor, scale: int = 4) -> Tensor:
    """The floor every SR method must beat: torch bicubic (align_corners=False), clamped to [0, 1]."""
    return bicubic_up(lr, (lr.shape[-2] * scale, lr.shape[-1] * scale)).clamp(0, 1)


def tiled(restorer: Restorer, lr: Tensor, scale: int, tile: int, overlap: int,
          on_tile: Callable[[], object] | None = None) -> Tensor:
    """``restorer(lr)`` run on overlapping LR tiles of side ``tile`` (0 = whole) and Gaussian-blended.

    A regression network's memory grows with its output area (RRDBNet keeps full-width feature maps at HR
    size), so large photos go through it tile by tile; the overlap hides the tile borders. ``on_tile`` is
    called after each tile (progress).
    """
    def run(part: Tensor) -> Tensor:
        out = restorer(part)
        if on_tile is not None:
            on_tile()
        return out

    tiles = windows(*lr.shape[-2:], tile, overlap) if tile else []
    if len(tiles) <= 1:
        return run(lr)
    shape = (lr.shape[0], lr.shape[1], lr.shape[-2] * scale, lr.shape[-1] * scale)
    return blend(tiles, lambda win: run(lr[(..., *win.scaled(1))]), scale, shape)


def bicubic_restorer(path: str | Path | None, scale: int, device: str) -> Restorer:
    if path is not None:
        raise ValueError(f"restorer 'bicubic' has no weights, but path={path} was given; leave path unset")
    return partial(bicubic_upscale, scale=scale)


def drm_restorer(path: str | Path | None, scale: int, device: str) -> Restorer:
    from spasemsr.restore.drm import RRDBNet

    if path is None or not (Path(path) / "config.json").is_file():
        inner = path is not None and (Path(path) / "drm" / "config.json").is_file()
        hint = f" (the DRM folder is {Path(path) / 'drm'}: paths name the folder holding config.json)" if inner else ""
        raise FileNotFoundError(
            f"restorer 'drm' needs path= a folder with config.json + safetensors, got {path}{hint}; "
            "train one with `spasemsr train --config configs/tiny_drm.yaml` (it writes <run>/export/drm)"
        )
    model = RRDBNet.from_pretrained(path, local_files_only=True).to(device).eval()
    if model.config.scale != scale:
        raise ValueError(f"the DRM in {path} is x{model.config.scale}, but x{scale} was asked for")

    @torch.no_grad()
    def restore(lr: Tensor) -> Tensor:
        return model(lr.to(device)).clamp(0, 1)

    return restore


def load_restorer(name: str, path: str | Path | None = None, scale: int = 4, device: str = "cpu") -> Restorer:
    """Build the restorer ``name`` (weights from ``path`` where it has any) as a callable LR → SR."""
    return RESTORERS.build(name, path, scale, device)
