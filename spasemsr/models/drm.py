"""Training the DRM: RRDBNet with pixel L1 only, so it lands at the fidelity end of the PD plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.config import to_container
from spasemsr.models.base import TaskModule
from spasemsr.restore.drm import RRDBNet


def rgb_psnr(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean over the batch of per-image RGB PSNR (dB) for images in [0, 1]; a quick validation signal."""
    mse = (sr - hr).pow(2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (-10 * torch.log10(mse)).mean()


class DRMModule(TaskModule):
    """Only ``drm`` (the RRDBNet) trains; LR comes from the DataModule's online degradation."""

    trainable = ("drm",)
    needs_lr = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        arch = to_container(self.cfg.model.arch)
        if "scale" in arch:
            raise ValueError(f"model.arch.scale={arch['scale']} must not be set: the DRM's scale is data.scale")
        self.drm = RRDBNet(**arch, scale=self.cfg.data.scale)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """L1 between drm(LR) and HR; deterministic given the batch, so ``generator`` is unused."""
        return F.l1_loss(self.drm(batch["lr"]), batch["hr"])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        sr = self.drm(batch["lr"]).clamp(0, 1)
        self.log("val/psnr", rgb_psnr(sr, batch["hr"]), batch_size=len(batch["hr"]))

    def preview(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.side_by_side(batch["lr"], self.drm(batch["lr"]).clamp(0, 1), batch["hr"])

    def export(self, folder: Path) -> None:
        self.drm.save_pretrained(folder / "drm")
