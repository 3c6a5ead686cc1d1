"""What every grounder returns, and the one call signature the text guidance relies on.

A grounder turns images into object tags with boxes. The spatial text guidance encodes each tag and
adds a position encoding of its box, so boxes are normalised corners [x0, y0, x1, y1] in [0, 1] of the
image the grounder was given (x by width, y by height), whatever backend produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass
class Grounding:
    """Tags, normalised xyxy boxes (N, 4) and scores (N,) of one image, best score first."""

    tags: list[str]
    boxes: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        self.scores = torch.as_tensor(self.scores, dtype=torch.float32).reshape(-1)
        count = len(self.tags)
        if self.boxes.shape[0] != count or self.scores.shape[0] != count:
            raise ValueError(
                f"Grounding needs one box and one score per tag: got {count} tags, boxes of shape "
                f"{tuple(self.boxes.shape)} and scores of shape {tuple(self.scores.shape)}"
            )
        if count and not bool(((self.boxes >= 0) & (self.boxes <= 1)).all()):
            raise ValueError(f"Grounding boxes must be normalised to [0, 1]; got {self.boxes.tolist()}")
        if count and not bool((self.boxes[:, 2:] >= self.boxes[:, :2]).all()):
            raise ValueError(
                f"Grounding boxes must be [x0, y0, x1, y1] with x0 <= x1, y0 <= y1; got {self.boxes.tolist()}"
            )
        order = torch.sort(self.scores, descending=True, stable=True).indices
        self.tags = [self.tags[i] for i in order.tolist()]
        self.boxes, self.scores = self.boxes[order], self.scores[order]

    @classmethod
    def empty(cls) -> Grounding:
        """No objects: what a disabled or unsure grounder returns, so callers need no special case."""
        return cls([], torch.zeros(0, 4), torch.zeros(0))

    def top(self, k: int) -> Grounding:
        """The `k` best objects, to fit a fixed number of text-token slots."""
        if k < 0:
            raise ValueError(f"top(k) needs k >= 0, got {k}")
        return Grounding(self.tags[:k], self.boxes[:k], self.scores[:k])

    def __len__(self) -> int:
        return len(self.tags)


class Grounder(Protocol):
    """Images (B, 3, H, W) in [0, 1] in, one `Grounding` per image out.

    `keys` name each image's source (a path or a file stem) for backends that look objects up instead
    of seeing them; `views` (B, 7), the datasets' crop/flip/rotation record
    (`spasemsr.data.datasets.VIEW_FIELDS`), lets such backends follow a training crop. Backends that
    look at the pixels ignore both.
    """

    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]: ...


def check_images(images: Tensor, who: str) -> None:
    """Refuse anything but a (B, 3, H, W) float batch in [0, 1], the one input every grounder takes."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        found = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{who}: expected images of shape (B, 3, H, W), got {found}; add a batch dim with [None]")
    if not images.is_floating_point():
        raise ValueError(f"{who}: expected float images in [0, 1], got dtype {images.dtype}; divide uint8 by 255")
    if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise ValueError(
            f"{who}: expected images in [0, 1], found values in [{images.min():.3f}, {images.max():.3f}]; "
            "undo any [-1, 1] or ImageNet normalisation first"
        )


class NoGrounder:
    """Grounding switched off: every image gets an empty `Grounding` (the `none` backend)."""

    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]:
        check_images(images, "grounder 'none'")
        return [Grounding.empty() for _ in range(images.shape[0])]
