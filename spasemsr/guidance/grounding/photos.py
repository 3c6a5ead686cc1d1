"""Training groundings taken from whole photos seen as inference sees them (``train_grounding=drm_lr_photo``).

At inference the grounder sees DRM(LR) of the whole photo, at most ``grounding_side`` a side. Grounding each
training crop instead (``drm_lr``) shows it zoomed-in windows of 128 pixels that inference never shows it, and
costs most of a CPU training step. Here each photo is degraded ``draws`` times with the training degradation
(seeded by photo name and draw), restored and sized as at inference, and grounded once; a crop takes one draw
(picked by its view) and the boxes that fall in it, as hand annotations do (``boxes_in_view``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.data.images import read_image
from spasemsr.guidance.grounding.base import Grounding
from spasemsr.guidance.grounding.geometry import boxes_in_view


def _seed(*parts: object) -> int:
    """A seed that is the same on every machine and rank (Python's ``hash`` of a string is not)."""
    return zlib.crc32(":".join(str(part) for part in parts).encode())


class PhotoGroundings:
    """Callable (keys, views) -> one Grounding per crop, from the groundings of its whole photo.

    ``degrade`` maps an HR photo (1, 3, H, W) and a generator to its LR; ``ground`` maps that LR to the
    grounding inference would give it (DRM, resize, grounder). Photos are grounded when first seen and kept.
    """

    def __init__(self, degrade: Callable[[Tensor, torch.Generator], Tensor], ground: Callable[[Tensor], Grounding],
                 scale: int, draws: int = 4, seed: int = 0) -> None:
        if draws < 1:
            raise ValueError(f"model.text.train_grounding_draws must be >= 1, got {draws}")
        self.degrade, self.ground, self.scale, self.draws, self.seed = degrade, ground, scale, draws, seed
        self._photos: dict[str, list[Grounding]] = {}

    def photo(self, key: str) -> list[Grounding]:
        """The ``draws`` groundings of one photo, boxes normalised to the whole file's pixels."""
        if key not in self._photos:
            hr = read_image(Path(key))[None]
            height, width = hr.shape[-2:]
            kept_h, kept_w = height - height % self.scale, width - width % self.scale  # the degradation's multiple
            hr = hr[..., :kept_h, :kept_w]
            to_file = torch.tensor([kept_w / width, kept_h / height] * 2)
            groundings = []
            for draw in range(self.draws):
                generator = torch.Generator().manual_seed(_seed(self.seed, Path(key).name, draw))
                found = self.ground(self.degrade(hr, generator))
                groundings.append(Grounding(found.tags, found.boxes * to_file, found.scores))
            self._photos[key] = groundings
        return self._photos[key]

    def __call__(self, keys: Sequence[str], views: Tensor) -> list[Grounding]:
        if views is None or len(keys) != len(views):
            raise ValueError("train_grounding=drm_lr_photo needs each crop's photo path and view: use an HR-folder "
                             f"or bundled source (got {len(keys)} keys, views {None if views is None else len(views)})")
        crops = []
        for key, view in zip(keys, views, strict=True):
            draw = _seed(Path(key).name, *view.tolist()) % self.draws  # the name: paths differ between clones
            whole = self.photo(key)[draw]
            boxes, keep = boxes_in_view(whole.boxes, view)
            crops.append(Grounding([tag for tag, kept in zip(whole.tags, keep.tolist(), strict=True) if kept], boxes,
                                   whole.scores[keep]))
        return crops
