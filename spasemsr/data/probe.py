"""The guidance probe: a procedural world in which the LR lacks what only the guidance carries (issue #19).

Each HR image (``SIZE`` x ``SIZE``) is a flat background with up to three rectangular regions on a grid of
``CELL``-pixel cells, each filled with one texture of ``TEXTURES`` over its own base colour. Every texture has
period ``PERIOD`` (twice the x4 scale: the LR's Nyquist period, and what the tiny VAE still reconstructs), and
the degradation (``probe_degradation``: a strong blur, then the 4x4 area average) removes it: the LR shows each
region's colour but not its texture (measured: about one grey level of leak, against noise of up to 20). The
region's tag (the texture's name) and box, which the ``probe`` grounder reads from the image's key, say which
texture belongs where. The degradation strength (blur and noise, drawn per image) is the second factor; the
degradation text carries it. No clean third factor for the visual encoders exists here: they read the LR, and the
LR holds nothing about the textures (reported, not engineered around).

An image is a function of its seed alone, named ``probe-<seed>``: the layout is drawn first from the seed, so a
grounder recovers boxes and tags from the key without rendering pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor
from torch.utils.data import Dataset

from spasemsr.data.degradation_config import DegradationConfig

SIZE = 96  # NIQE needs 96 pixels a side at x4
CELL = 16
PERIOD = 8
AMPLITUDE = 0.3
FLAT_BELOW = 0.1  # texture amplitude under which the classifier calls a cell flat
TAPER = 4  # pixels over which a texture fades in at its box edges (``envelope``)
TEXTURES = ("horizontal stripes", "vertical stripes", "checkerboard")
FLAT = "flat"
CLASSES = (FLAT, *TEXTURES)
"""What the texture classifier tells apart: the textures, and ``flat`` (the background, or a texture lost)."""
PREFIX = "probe-"
VAL_SEED = 10**9  # validation and evaluation images use seeds from here on; training draws below it
EVAL_OFFSET = 10**6  # evaluation images (the ``probe`` set) are VAL_SEED + EVAL_OFFSET + i

DEGRADATION_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "degradation" / "probe.yaml"


@cache
def probe_degradation() -> DegradationConfig:
    """The probe's degradation (``configs/degradation/probe.yaml``, also what ``degradation: probe`` selects), read
    once per process (frozen)."""
    merged = OmegaConf.merge(OmegaConf.structured(DegradationConfig), OmegaConf.load(DEGRADATION_CONFIG))
    return OmegaConf.to_object(merged)


@dataclass(frozen=True)
class Region:
    """One textured rectangle: its texture index into ``TEXTURES`` and its pixel box ``(x0, y0, x1, y1)``."""

    texture: int
    box: tuple[int, int, int, int]


def layout(seed: int) -> list[Region]:
    """The regions of image ``seed``: one per quadrant chosen (2 or 3 of the 4), distinct textures, each a
    rectangle of 1-3 cells a side inside its quadrant."""
    g = torch.Generator().manual_seed(int(seed))
    count = 2 + int(torch.randint(2, (1,), generator=g))
    quadrants = torch.randperm(4, generator=g)[:count].tolist()
    textures = torch.randperm(len(TEXTURES), generator=g)[:count].tolist()
    half = SIZE // 2 // CELL  # cells per quadrant side
    regions = []
    for quadrant, texture in zip(quadrants, textures, strict=True):
        w, h = (1 + int(v) for v in torch.randint(half, (2,), generator=g))
        cx = (quadrant % 2) * half + int(torch.randint(half - w + 1, (1,), generator=g))
        cy = (quadrant // 2) * half + int(torch.randint(half - h + 1, (1,), generator=g))
        regions.append(Region(texture, (cx * CELL, cy * CELL, (cx + w) * CELL, (cy + h) * CELL)))
    return regions


def pattern(texture: int, size: int = SIZE) -> Tensor:
    """The zero-mean texture ``texture`` (index into ``TEXTURES``), amplitude 1, over a size x size grid.

    Its phase is fixed to the image grid (boxes lie on the cell grid, so also to the box): the tag and box then
    determine the texture completely. With a random phase the best prediction of it, tag known or not, is its mean
    (zero), and denoising could not gain from the tags (what the first probe measured)."""
    coords = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    wave_x, wave_y = torch.cos(2 * math.pi * xs / PERIOD), torch.cos(2 * math.pi * ys / PERIOD)
    return (wave_y, wave_x, wave_x * wave_y)[texture]


def envelope(height: int, width: int, ramp: int = TAPER) -> Tensor:
    """(height, width) weights rising as sin^2 over ``ramp`` pixels from each edge: a texture cut off sharply at
    its box would leave low frequencies at the edges (orientation-dependent) that the degradation passes."""

    def side(n: int) -> Tensor:
        distance = torch.minimum(torch.arange(n) + 0.5, n - torch.arange(n) - 0.5)
        return torch.sin(0.5 * math.pi * (distance / ramp).clamp(max=1)) ** 2

    return side(height)[:, None] * side(width)[None, :]


def render(seed: int) -> Tensor:
    """The HR image (3, SIZE, SIZE) in [0, 1] of ``seed``: base colours in [0.3, 0.7], textures of
    ``AMPLITUDE`` (faded in at their edges)."""
    regions = layout(seed)
    g = torch.Generator().manual_seed(int(seed) + 1)  # the pixels' own draws: the layout stays key-only
    image = (0.3 + 0.4 * torch.rand(3, 1, 1, generator=g)).expand(3, SIZE, SIZE).clone()
    for region in regions:
        x0, y0, x1, y1 = region.box
        colour = 0.3 + 0.4 * torch.rand(3, 1, 1, generator=g)
        texture = AMPLITUDE * pattern(region.texture)[y0:y1, x0:x1] * envelope(y1 - y0, x1 - x0)
        image[:, y0:y1, x0:x1] = colour + texture
    return image.clamp(0, 1)


def seed_of(key: str) -> int:
    """The seed a probe image's key (``probe-<seed>``, or a path ending so) names; a clear error otherwise."""
    name = str(key).rsplit("/", 1)[-1]
    if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
        raise ValueError(f"{key!r} is not a probe image key; expected {PREFIX}<seed> (spasemsr.data.probe)")
    return int(name[len(PREFIX):])


def cell_labels(seed: int) -> Tensor:
    """The true class (index into ``CLASSES``) of each cell, (SIZE/CELL, SIZE/CELL) row-major."""
    side = SIZE // CELL
    labels = torch.zeros(side, side, dtype=torch.long)
    for region in layout(seed):
        x0, y0, x1, y1 = (v // CELL for v in region.box)
        labels[y0:y1, x0:x1] = 1 + region.texture
    return labels


def classify_cells(images: Tensor) -> Tensor:
    """The texture class of every CELL x CELL cell of (B, 3, H, W) images in [0, 1]: (B, H/CELL, W/CELL).

    Fixed, not learned: the power of each cell's luminance at the texture frequency (1/PERIOD cycles per pixel)
    along x (vertical stripes), along y (horizontal stripes) and on both diagonals (checkerboard, whose power
    is half a stripe's at equal amplitude, so it counts double). A cell is ``flat`` when none reaches a
    quarter of the power of stripes of amplitude ``FLAT_BELOW`` (that of a 13-grey-level wave).
    """
    b, _, h, w = images.shape
    luma = images.mean(1)[:, : h - h % CELL, : w - w % CELL]
    cells = luma.unfold(1, CELL, CELL).unfold(2, CELL, CELL)  # (B, H/CELL, W/CELL, CELL, CELL)
    spectrum = torch.fft.fft2(cells - cells.mean((-2, -1), keepdim=True)).abs().pow(2) / CELL**4
    k = CELL // PERIOD
    along_x = spectrum[..., 0, k] + spectrum[..., 0, -k]
    along_y = spectrum[..., k, 0] + spectrum[..., -k, 0]
    diagonal = spectrum[..., k, k] + spectrum[..., k, -k] + spectrum[..., -k, k] + spectrum[..., -k, -k]
    power = torch.stack([along_y, along_x, 2 * diagonal], dim=-1)  # order of TEXTURES
    best, index = power.max(-1)
    threshold = 0.25 * FLAT_BELOW**2 / 2
    return torch.where(best < threshold, torch.zeros_like(index), index + 1)


def texture_accuracy(sr: Tensor, hr: Tensor) -> Tensor:
    """(B,) fraction of cells whose class in ``sr`` is that in ``hr`` (``classify_cells`` of both)."""
    return (classify_cells(sr) == classify_cells(hr)).float().flatten(1).mean(1)


def identity_view() -> Tensor:
    """The dataset view of a whole, unflipped square image (``spasemsr.data.datasets.VIEW_FIELDS``)."""
    return torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])


class ProbeDataset(Dataset):
    """Probe images as dataset items: ``{"hr", "caption": "", "path": "probe-<seed>", "view"}``.

    Training items are keyed ``(index, item_seed)`` by the stream sampler and render the image of that seed
    (a new image at every draw, below ``VAL_SEED``); validation items are the images ``VAL_SEED + index``.
    """

    def __init__(self, length: int, train: bool) -> None:
        self.length, self.train = length, train

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if isinstance(key, tuple):
            seed = int(key[1]) % VAL_SEED
        else:
            seed = int(key) if self.train else VAL_SEED + int(key)
        return {"hr": render(seed), "caption": "", "path": f"{PREFIX}{seed}", "view": identity_view()}
