"""Inference-time conditions for SpaSemSR: what the paper computes from the LR image alone.

The grounder sees DRM(LR) (or the bicubic upsampling when no DRM is configured), the describer reads
the LR image (estimator or VLM), and the net's encoders turn both into e_spa, e_deg and c_img. All of
it runs once per image; the sampler then reuses the result at every step.
"""

from __future__ import annotations

from torch import Tensor

from spasemsr.guidance.conditions import Conditions
from spasemsr.guidance.describer import Describer
from spasemsr.guidance.grounding.base import Grounder
from spasemsr.guidance.network import SpaSemSRNet
from spasemsr.restore.baselines import Restorer, bicubic_upscale, tiled


class SpaSemSRConditioner:
    """Callable LR (B, 3, h, w) in [0, 1] → Conditions, for ``SRPipeline``."""

    def __init__(self, net: SpaSemSRNet, scale: int, grounder: Grounder | None, describer: Describer | None,
                 drm: Restorer | None = None) -> None:
        self.net = net
        self.scale = scale
        self.grounder = grounder
        self.describer = describer
        self.drm = drm

    def __call__(self, lr: Tensor, tile: int = 0, overlap: int = 0) -> Conditions:
        """Conditions of ``lr``; ``tile``/``overlap`` (HR pixels, 0 = whole) bound the DRM's memory on big photos."""
        groundings = captions = None
        if self.grounder is not None:
            if self.drm is None:
                cleaned = bicubic_upscale(lr, self.scale)
            else:
                cleaned = tiled(self.drm, lr, self.scale, tile // self.scale, overlap // self.scale)
            groundings = self.grounder(cleaned.to(lr.device))
        if self.describer is not None:
            captions = self.describer(lr, None)
        return self.net.conditions(lr, self.scale, groundings, captions)
