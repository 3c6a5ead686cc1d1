"""Spatial-aware text tokens e_spa: grounded object tags with their boxes ("aligned token add").

e_spa = [null-prompt tokens] ++ [one token per object], where an object's token is the frozen text
encoder's pooled embedding of its tag plus the projected position encoding of its box
[x_lu, y_lu, x_rb, y_rb] (normalised). Padding objects are masked out of attention; with no
detections e_spa is the null prompt alone, exactly what text guidance "none" gives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spasemsr.config.choices import BOX_ENCODERS, SPATIAL_MODES
from spasemsr.guidance.text.encoder import TextEncoder


class BoxEncoder(nn.Module):
    """Frozen sinusoidal encoding of the 4 box corners, then a trainable projection to the token width.

    ``linear`` (the "w/o box encoder" ablation) projects the raw coordinates instead. The projection
    starts at zero, so a fresh encoder leaves tag embeddings unchanged.
    """

    def __init__(self, dim: int, kind: str = "sinusoidal", frequencies: int = 8) -> None:
        super().__init__()
        if kind not in BOX_ENCODERS:
            raise ValueError(f"box encoder {kind!r} is not one of {BOX_ENCODERS}")
        self.kind = kind
        self.register_buffer("freqs", (2.0 ** torch.arange(frequencies)) * math.pi, persistent=False)
        width = 4 * 2 * frequencies if kind == "sinusoidal" else 4
        self.project = nn.Linear(width, dim)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, boxes: Tensor) -> Tensor:
        """(..., 4) normalised corners → (..., dim)."""
        if self.kind == "linear":
            return self.project(boxes)
        angles = boxes.unsqueeze(-1) * self.freqs  # (..., 4, F)
        return self.project(torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2))


WHOLE = (0.0, 0.0, 1.0, 1.0)  # normalised xyxy of the whole image: the view of an untiled latent
UNPLACED = (0.0, 0.0, 0.0, 0.0)  # the (empty) box of the null prompt's tokens: placed nowhere, read where no tag is


def grid_shape(n: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the ``n``-position grid an attention runs on, whose aspect is the latent's (H, W)."""
    height = max(1, round(math.sqrt(n * latent_hw[0] / latent_hw[1])))
    width = n // height
    if height * width != n:
        raise ValueError(f"{n} query positions do not form a grid of the latent's aspect {latent_hw}")
    return height, width


def cell_boxes(height: int, width: int, device: torch.device | str | None = None,
               view: tuple[float, float, float, float] = WHOLE) -> Tensor:
    """(height * width, 4) normalised xyxy box of every cell of a height x width grid, row-major (as ``flatten(2)``).

    ``view`` is the part of the image the grid covers (a tile's window; the whole image by default), so the cells
    of a tile get the image coordinates its tokens' boxes are given in.
    """
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    x0, y0, x1, y1 = view
    cw, ch = (x1 - x0) / width, (y1 - y0) / height
    left, top = x0 + xs.flatten() * cw, y0 + ys.flatten() * ch
    return torch.stack([left, top, left + cw, top + ch], dim=-1)


def box_keep_mask(boxes: Tensor, keep: Tensor, n: int, latent_hw: tuple[int, int],
                  view: tuple[float, float, float, float] = WHOLE) -> Tensor:
    """Which tokens each of ``n`` queries may attend to: (B, M, 4) token boxes, (B, M) keep → (B, n, M) bool.

    Each query reads the words painted on it, as in eDiff-I's paint-with-words but as a hard mask: the tags whose
    box holds its cell's centre, or, where no box does, the tokens placed nowhere (empty box: the null prompt's,
    ``UNPLACED``). So a tag is not diluted among the null prompt's padding tokens, and a query outside every box
    reads no tag.
    """
    cells = cell_boxes(*grid_shape(n, latent_hw), boxes.device, view)
    cx, cy = ((cells[:, 0] + cells[:, 2]) / 2)[None, :, None], ((cells[:, 1] + cells[:, 3]) / 2)[None, :, None]
    x0, y0, x1, y1 = (boxes[:, None, :, i] for i in range(4))
    unplaced = ((x1 <= x0) | (y1 <= y0)) & keep[:, None, :]  # (B, 1, M)
    tagged = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1) & keep[:, None, :]
    return torch.where(tagged.any(-1, keepdim=True), tagged, unplaced)


class QueryPosition(nn.Module):
    """Each query's own cell, encoded as a box (``BoxEncoder``) and added to the queries of a spatial-text attention.

    e_spa's tokens carry their boxes, but an attention's queries are convolutional features that do not know where
    they are, so "the token whose box holds me" is not something they can match: in the guidance probe (issue #19)
    boxes handed to the wrong tags trained to the same denoising error as the right ones. Giving the queries the same
    encoding of their position (as LayoutDiffusion embeds its image patches' positions to fuse layout tokens) makes
    the match a learnable dot product. The projection starts at zero, so a fresh module changes nothing.
    """

    def __init__(self, channels: int, kind: str = "sinusoidal") -> None:
        super().__init__()
        self.encode = BoxEncoder(channels, kind)

    def forward(self, hidden: Tensor, latent_hw: tuple[int, int],
                view: tuple[float, float, float, float] = WHOLE) -> Tensor:
        """hidden (B, N, C) of an N-position grid whose aspect is the latent's (H, W), covering ``view`` of the
        image → hidden + position codes."""
        cells = cell_boxes(*grid_shape(hidden.shape[1], latent_hw), hidden.device, view)
        return hidden + self.encode(cells.to(hidden.dtype))[None]


class SpatialText(nn.Module):
    """Builds (e_spa, mask) for a batch of groundings.

    The frozen text encoder is used, not owned: it is kept out of this module's parameters and state dict
    (the denoiser registers it once, outside the trainable prefixes), so checkpoints and exports of the
    trainable guidance never carry a copy of it.
    """

    def __init__(self, text_encoder: TextEncoder, mode: str, box_encoder: str, max_objects: int) -> None:
        super().__init__()
        if mode not in SPATIAL_MODES:
            raise ValueError(f"spatial text mode {mode!r} is not one of {SPATIAL_MODES}")
        self._encoder = (text_encoder,)  # a tuple, so nn.Module does not register it as a submodule
        self.mode = mode
        self.max_objects = max_objects if mode != "none" else 0
        self.boxes = BoxEncoder(text_encoder.dim, box_encoder) if mode == "tags_boxes" else None
        self._tag_cache: dict[str, Tensor] = {}

    def _tags(self, tags: list[str]) -> Tensor:
        missing = [t for t in dict.fromkeys(tags) if t not in self._tag_cache]
        if missing:
            for tag, vector in zip(missing, self._encoder[0].pooled(missing), strict=True):
                self._tag_cache[tag] = vector
        return torch.stack([self._tag_cache[t] for t in tags])

    def forward(self, groundings: list, null_tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``groundings`` (one per image, sorted by score) and null tokens (1, L, D) → e_spa (B, L+K, D), its keep
        mask (B, L+K) and each token's box (B, L+K, 4; the null tokens' is ``UNPLACED``).

        The box encoder runs on every object slot, padding included (zero boxes, masked out of the sum), so
        its projection takes part in every forward: a batch without one detection still gives it a (zero)
        gradient, which DDP requires of every trainable parameter.
        """
        b, k = len(groundings), self.max_objects
        null = null_tokens.expand(b, -1, -1)
        keep = torch.ones(b, null.shape[1], dtype=torch.bool, device=null.device)
        unplaced = null.new_tensor(UNPLACED).expand(b, null.shape[1], 4)
        if k == 0:
            return null, keep, unplaced
        objects = null.new_zeros(b, k, null.shape[-1])
        boxes = null.new_zeros(b, k, 4)
        present = torch.zeros(b, k, dtype=torch.bool, device=null.device)
        for i, grounding in enumerate(groundings):
            n = min(len(grounding.tags), k)
            if n == 0:
                continue
            objects[i, :n] = self._tags(grounding.tags[:n]).to(null)
            boxes[i, :n] = grounding.boxes[:n].to(null)
            present[i, :n] = True
        if self.boxes is not None:
            objects = objects + self.boxes(boxes) * present.unsqueeze(-1).to(null.dtype)
        return (torch.cat([null, objects], dim=1), torch.cat([keep, present], dim=1),
                torch.cat([unplaced, boxes], dim=1))
