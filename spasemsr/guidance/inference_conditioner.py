"""Inference-time conditions for SpaSemSR: what the paper computes from the LR image alone.

The grounder sees DRM(LR) (or the bicubic upsampling when no DRM is configured), the describer reads
the LR image (estimator or VLM), and the net's encoders turn both into e_spa, e_deg and c_img. All of
it runs once per image; the sampler then reuses the result at every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from spasemsr.diffusion.conditions import Conditions, Known
from spasemsr.guidance.denoiser import SpaSemSRNet
from spasemsr.guidance.describer import Describer
from spasemsr.guidance.grounding.base import Grounder
from spasemsr.restore.baselines import Restorer, bicubic_upscale, tiled


class SpaSemSRConditioner:
    """Callable LR (B, 3, h, w) in [0, 1] → Conditions, for ``SRPipeline``.

    The grounder sees DRM(LR) at most ``grounding_side`` pixels on its long side (0: whole): its boxes are
    normalised and its classifier looks at 224-pixel windows, so a larger image only costs time and memory.
    For an LR whose x``scale`` output would be larger, the DRM runs on the LR resized so that its output has
    that side, rather than at full resolution to be shrunk afterwards. ``on_stage`` (if set) is called with
    the name of each stage as it finishes (each DRM tile, the grounder, the describer, the encoders): the
    progress of a large photo's conditioning.
    """

    def __init__(self, net: SpaSemSRNet, scale: int, grounder: Grounder | None, describer: Describer | None,
                 drm: Restorer | None = None, grounding_side: int = 0) -> None:
        self.net = net
        self.scale = scale
        self.grounder = grounder
        self.describer = describer
        self.drm = drm
        self.grounding_side = grounding_side
        self.on_stage: Callable[[str], object] | None = None
        self._last: tuple[Tensor, int, tuple[int, int], Tensor] | None = None  # (LR, its version, tiling, DRM(LR))

    def _stage(self, name: str) -> None:
        if self.on_stage is not None:
            self.on_stage(name)

    def cleaned(self, lr: Tensor, tile: int = 0, overlap: int = 0) -> Tensor:
        """What the grounder sees: DRM(LR) (or the bicubic upsampling), at most ``grounding_side`` a side."""
        height, width = lr.shape[-2:]
        side = self.grounding_side
        if side and max(height, width) * self.scale > side:
            factor = side / (max(height, width) * self.scale)
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            lr = F.interpolate(lr, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        if self.drm is None:
            return bicubic_upscale(lr, self.scale)
        return self._restored(lr, tile, overlap)

    def _restored(self, lr: Tensor, tile: int, overlap: int) -> Tensor:
        """The DRM run on LR tiles (``tile``/``overlap`` in HR pixels), each finished tile reported. The last result
        is kept: a DRM-initialised start encodes the very restoration the grounder saw, not a second DRM run."""
        last = self._last
        if last is not None and last[0] is lr and last[1] == lr._version and last[2] == (tile, overlap):
            return last[3]
        restored = tiled(self.drm, lr, self.scale, tile // self.scale, overlap // self.scale,
                         on_tile=lambda: self._stage("DRM tile"))
        self._last = (lr, lr._version, (tile, overlap), restored)
        return restored

    def restore(self, lr: Tensor, tile: int = 0, overlap: int = 0) -> Tensor:
        """DRM(LR) at the full x``scale`` size: what a DRM-initialised start (``start_image=drm``) encodes."""
        if self.drm is None:
            raise ValueError("sampler.start_image=drm needs a DRM, but this model's model.drm is none")
        return self._restored(lr, tile, overlap).clamp(0, 1)

    def __call__(self, lr: Tensor, tile: int = 0, overlap: int = 0, known: Known | None = None) -> Conditions:
        """Conditions of ``lr``; ``tile``/``overlap`` (HR pixels, 0 = whole) bound the DRM's memory on big photos;
        ``known`` gives the grounder the images' keys and the describer their true degradation, where known."""
        known = known or Known()
        groundings = captions = None
        if self.grounder is not None:
            groundings = self.grounder(self.cleaned(lr, tile, overlap).to(lr.device), keys=known.keys)
            self._stage("grounder")
        if self.describer is not None:
            captions = self.describer(lr, known.degradation)
            self._stage("describer")
        conditions = self.net.conditions(lr, self.scale, groundings, captions)
        self._stage("encoders")
        return conditions
