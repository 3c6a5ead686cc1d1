"""The probe grounder: the true regions of a guidance-probe image (``spasemsr.data.probe``), read from its key.

The probe world's layout is a function of the image's seed, which its key names, so the grounding is exact at
training and at evaluation alike: what the probe measures is whether the model *uses* correct guidance.
``shuffle=True`` hands every tag the box of another region (a cyclic shift): the deliberately broken spatial
path the probe's CI guard must catch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spasemsr.data import probe
from spasemsr.guidance.grounding.base import Grounding, check_images


class ProbeGrounder:
    """Tags (texture names) and normalised boxes of each probe image's regions, looked up by key."""

    def __init__(self, shuffle: bool = False) -> None:
        self.shuffle = shuffle

    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]:
        check_images(images, "grounder 'probe'")
        if keys is None or len(keys) != images.shape[0]:
            raise ValueError(f"grounder 'probe' reads regions from image keys (probe-<seed>): expected "
                             f"{images.shape[0]} keys, got {None if keys is None else len(keys)}")
        return [self._one(key) for key in keys]

    def _one(self, key: str) -> Grounding:
        regions = probe.layout(probe.seed_of(key))
        boxes = torch.tensor([region.box for region in regions], dtype=torch.float32) / probe.SIZE
        if self.shuffle:
            boxes = boxes.roll(1, dims=0)
        tags = [probe.TEXTURES[region.texture] for region in regions]
        return Grounding(tags, boxes, torch.ones(len(tags)))
