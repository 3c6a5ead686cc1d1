"""Per-image conditions of one SR request, computed once and reused at every denoising step."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from spasemsr.diffusion.tiling import Window
from spasemsr.guidance.text.spatial import UNPLACED, WHOLE


@dataclass(frozen=True)
class Known:
    """What is known about LR images besides their pixels, for backends that read it instead of seeing it.

    ``keys`` name the images (the ``annotations`` and ``probe`` grounders look regions up by them); ``degradation``
    holds their true degradation parameters (the ``params`` describer captions them). Evaluation passes what its
    set has (the guidance probe: both, i.e. oracle guidance); a photo given to ``upscale`` has neither.
    """

    keys: list[str] | None = None
    degradation: dict[str, Tensor] | None = None


@dataclass
class Conditions:
    """Everything the denoiser reads besides z_t and t. Optional parts are None when their guidance is off."""

    pixel: Tensor  # (B, 3, H, W) upsampled LR in [-1, 1] (the ControlNet's image condition)
    text: Tensor  # (B, L, D) the frozen UNet's own text condition (the null prompt)
    e_spa: Tensor | None = None  # (B, L_spa, D) spatial-aware text tokens
    spa_mask: Tensor | None = None  # (B, L_spa) bool
    spa_boxes: Tensor | None = None  # (B, L_spa, 4) normalised xyxy box of each e_spa token (null tokens: UNPLACED)
    e_deg: Tensor | None = None  # (B, L_deg, D) degradation-aware text tokens
    c_img: Tensor | None = None  # (B, C, h, w) visual guidance features
    view: tuple[float, float, float, float] = WHOLE  # the part of the image (normalised xyxy) these conditions cover

    def unconditional(self, null: Tensor) -> Conditions:
        """The same request with its text conditions replaced by the null prompt (for classifier-free guidance)."""
        b = self.pixel.shape[0]
        spa = None if self.e_spa is None else null.expand(b, -1, -1)
        mask = None if spa is None else torch.ones(spa.shape[:2], dtype=torch.bool, device=spa.device)
        boxes = None if spa is None else spa.new_tensor(UNPLACED).expand(*spa.shape[:2], 4)
        deg = None if self.e_deg is None else null.expand(b, -1, -1)
        return replace(self, e_spa=spa, spa_mask=mask, spa_boxes=boxes, e_deg=deg)

    def crop(self, window: Window, factor: int) -> Conditions:
        """The conditions of one latent tile: pixel condition and c_img cut to it, text (global) unchanged, and the
        view narrowed to the tile (spatial-text queries place themselves in the image by it)."""
        rows, cols = window.scaled(factor)
        c_img = None if self.c_img is None else self.c_img[(..., *window.scaled(1))]
        height, width = self.pixel.shape[2] / factor, self.pixel.shape[3] / factor
        x0, y0, x1, y1 = self.view
        sx, sy = (x1 - x0) / width, (y1 - y0) / height
        view = (x0 + window.left * sx, y0 + window.top * sy, x0 + (window.left + window.width) * sx,
                y0 + (window.top + window.height) * sy)
        return replace(self, pixel=self.pixel[..., rows, cols], c_img=c_img, view=view)

    def cat(self, other: Conditions) -> Conditions:
        """Batch-concatenate two requests (token lengths padded with masked entries where they differ)."""
        if self.view != other.view:
            raise ValueError(f"cannot batch conditions of different views {self.view} and {other.view}")
        merged = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a is None or f.name == "view":
                merged[f.name] = a
            elif f.name in ("e_spa", "spa_mask", "spa_boxes") and a.shape[1] != b.shape[1]:
                width = max(a.shape[1], b.shape[1])
                merged[f.name] = torch.cat([_pad_tokens(a, width), _pad_tokens(b, width)])
            else:
                merged[f.name] = torch.cat([a, b])
        return Conditions(**merged)


def _pad_tokens(x: Tensor, width: int) -> Tensor:
    pad = width - x.shape[1]
    if pad == 0:
        return x
    filler = x.new_zeros((x.shape[0], pad, *x.shape[2:]))
    return torch.cat([x, filler], dim=1)
