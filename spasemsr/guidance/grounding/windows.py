"""Window proposals and their clean-up for the automatic grounder: grid in, one box per object out.

A classifier says what a window shows, not where the object ends. Tiling the image with overlapping
windows at two or three scales and joining the confident ones of a tag recovers a coarse extent:
an object larger than a window lights up several neighbours, and their union covers it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_area, box_iou


def window_grid(height: int, width: int, fractions: Sequence[float], stride: float) -> Tensor:
    """Pixel xyxy windows: row 0 the whole frame, then squares of side `f * min(H, W)` every `stride * side`."""
    windows = [(0.0, 0.0, float(width), float(height))]
    short = min(height, width)
    for fraction in fractions:
        side = fraction * short
        step = max(stride * side, 1.0)
        xs = np.linspace(0, width - side, math.ceil((width - side) / step) + 1)
        ys = np.linspace(0, height - side, math.ceil((height - side) / step) + 1)
        windows += [(x, y, x + side, y + side) for y in ys for x in xs]
    return torch.tensor(windows, dtype=torch.float32)


def merge_linked(boxes: Tensor, scores: Tensor, labels: Tensor, link_iou: float) -> tuple[Tensor, Tensor, Tensor]:
    """Join same-label boxes linked (transitively) by IoU >= `link_iou` into their union, keeping the best score."""
    if boxes.shape[0] == 0:
        return boxes, scores, labels
    reach = (box_iou(boxes, boxes) >= link_iou) & (labels[:, None] == labels[None, :])
    while True:
        grown = (reach.float() @ reach.float()) > 0
        if torch.equal(grown, reach):
            break
        reach = grown
    group = reach.float().argmax(dim=1)  # lowest index in each box's component
    out_boxes, out_scores, out_labels = [], [], []
    for first in group.unique().tolist():
        members = group == first
        out_boxes.append(torch.cat([boxes[members, :2].min(0).values, boxes[members, 2:].max(0).values]))
        out_scores.append(scores[members].max())
        out_labels.append(labels[first])
    return torch.stack(out_boxes), torch.stack(out_scores), torch.stack(out_labels)


def suppress(boxes: Tensor, scores: Tensor, labels: Tensor, nms_iou: float, containment: float) -> Tensor:
    """Indices kept (best first) after same-label NMS and after dropping boxes mostly inside a better one."""
    kept: list[int] = []
    areas = box_area(boxes)
    for index in batched_nms(boxes, scores, labels, nms_iou).tolist():
        better = torch.tensor(kept, dtype=torch.long)
        lo = torch.maximum(boxes[index, :2], boxes[better, :2])
        hi = torch.minimum(boxes[index, 2:], boxes[better, 2:])
        inside = (hi - lo).clamp(min=0).prod(dim=1) >= containment * areas[index]
        if not bool((inside & (labels[better] == labels[index])).any()):
            kept.append(index)
    return torch.tensor(kept, dtype=torch.long)
