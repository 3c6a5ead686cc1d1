"""Boxes follow the pixels: map full-image boxes into a dataset item's crop, flip and rotation.

Annotations describe whole images, but training sees random crops that were flipped and turned
(`spasemsr.data.datasets`). `boxes_in_view` replays the same operations on box corners, in the order
the dataset applies them to pixels: crop, then horizontal flip, then `torch.rot90(dims=(-2, -1))`.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_VISIBLE = 0.25
"""Fraction of a box's area that must lie inside the crop for the box to be kept."""

VIEW_SIZE = 7


def identity_view(aspect: float) -> Tensor:
    """The view of a whole image, untransformed (what evaluation on full images uses)."""
    return torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, aspect])


def _rot90_once(boxes: Tensor) -> Tensor:
    """One `rot90(dims=(-2, -1))` turn in normalised coordinates: (x, y) -> (y, 1 - x)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([y0, 1 - x1, y1, 1 - x0], dim=-1)


def boxes_in_view(boxes: Tensor, view: Tensor) -> tuple[Tensor, Tensor]:
    """Map (N, 4) normalised full-image xyxy boxes into the crop `view` describes.

    Returns the kept boxes (M, 4), normalised to the transformed crop and clipped to it, and the (N,)
    mask of which input boxes were kept: those with at least `MIN_VISIBLE` of their area inside the
    crop. Boxes of zero area are never kept.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    view = torch.as_tensor(view, dtype=torch.float32)
    if view.shape != (VIEW_SIZE,):
        raise ValueError(
            f"a view is a ({VIEW_SIZE},) tensor [x0, y0, x1, y1, hflip, rot90, aspect] "
            f"(spasemsr.data.datasets.VIEW_FIELDS), got shape {tuple(view.shape)}"
        )
    cx0, cy0, cx1, cy1, flip, turns, _ = view.tolist()
    if not (cx1 > cx0 and cy1 > cy0):
        raise ValueError(f"view crop window {view[:4].tolist()} is empty; expected x0 < x1 and y0 < y1")
    scale = torch.tensor([cx1 - cx0, cy1 - cy0, cx1 - cx0, cy1 - cy0])
    local = (boxes - torch.tensor([cx0, cy0, cx0, cy0])) / scale
    clipped = local.clamp(0, 1)
    area = (local[:, 2] - local[:, 0]).clamp(min=0) * (local[:, 3] - local[:, 1]).clamp(min=0)
    visible = (clipped[:, 2] - clipped[:, 0]).clamp(min=0) * (clipped[:, 3] - clipped[:, 1]).clamp(min=0)
    keep = (area > 0) & (visible >= MIN_VISIBLE * area)
    mapped = clipped[keep]
    if flip >= 0.5:
        mapped = torch.stack([1 - mapped[:, 2], mapped[:, 1], 1 - mapped[:, 0], mapped[:, 3]], dim=-1)
    for _ in range(int(round(turns)) % 4):
        mapped = _rot90_once(mapped)
    return mapped, keep
