"""Overlapping tiles over the latent grid, blended with Gaussian weights, so peak memory is set by the tile.

Every tiled stage (the denoiser at each step, VAE decoding, VAE encoding of the LR start) works on the
same latent windows; outputs are accumulated with a separable Gaussian weight centred on each tile
(Mixture-of-Diffusers style) and divided by the summed weights, so overlaps fade into each other and a
window that covers the whole image reproduces the untiled result exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Window:
    """A tile of the latent grid: top-left corner and size, in latent pixels."""

    top: int
    left: int
    height: int
    width: int

    def scaled(self, factor: int) -> tuple[slice, slice]:
        """Row and column slices of this window on a grid ``factor`` times finer (e.g. pixels under latents)."""
        return (slice(self.top * factor, (self.top + self.height) * factor),
                slice(self.left * factor, (self.left + self.width) * factor))


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def windows(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Window]:
    """Tiles of side ``tile`` covering a ``height`` x ``width`` latent grid, neighbours sharing ≥ ``overlap``.

    ``tile`` and the grid sides must be multiples of ``multiple`` (the UNet's downsampling); starts are kept
    on that multiple so every tile runs through the UNet exactly as a whole image would.
    """
    if tile <= 0 or tile % multiple:
        raise ValueError(f"tile side {tile} (latent pixels) must be a positive multiple of {multiple}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be in [0, tile side {tile})")
    if height % multiple or width % multiple:
        raise ValueError(f"latent grid {height}x{width} is not a multiple of {multiple}")
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    return [Window(top, left, min(tile, height), min(tile, width))
            for top in _starts(height, tile, stride) for left in _starts(width, tile, stride)]


def gaussian_weight(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, 1, height, width) separable Gaussian, σ = a quarter of each side, peaking at the centre."""
    def axis(n: int) -> Tensor:
        x = torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2
        return torch.exp(-0.5 * (x / (0.25 * n)) ** 2)

    return (axis(height)[:, None] * axis(width)[None, :]).to(dtype)[None, None]


def blend(tiles: list[Window], run: Callable[[Window], Tensor], out_factor: int, shape: tuple[int, ...]) -> Tensor:
    """Run every tile and blend: ``run(window)`` returns its output on a grid ``out_factor`` times the latent one.

    ``shape`` is the full output shape (B, C, H, W); the first output fixes device and dtype.
    """
    total = weights = None
    for window in tiles:
        out = run(window)
        if total is None:
            dtype = torch.promote_types(out.dtype, torch.float32)  # half-precision tiles still sum in fp32
            total = out.new_zeros(shape, dtype=dtype)
            weights = out.new_zeros((1, 1, *shape[2:]), dtype=dtype)
        rows, cols = window.scaled(out_factor)
        weight = gaussian_weight(out.shape[-2], out.shape[-1], out.device, dtype)
        total[..., rows, cols] += out * weight
        weights[..., rows, cols] += weight
    return total / weights
