"""Lightning callbacks: side-by-side validation images in TensorBoard."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid


class ImageGridLogger(Callback):
    """After each validation, log the module's ``preview`` of the first val batch as one grid per image.

    Columns are the preview's entries in order (e.g. LR | SR | HR), so a row reads left to right.
    """

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not isinstance(trainer.logger, TensorBoardLogger):
            return
        batch = next(iter(trainer.datamodule.val_dataloader()))
        batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.no_grad():
            columns = pl_module.preview(batch)
        if not columns:
            return
        if {"sr", "hr"} <= set(columns):
            self._log_fidelity(trainer, pl_module, columns["sr"], columns["hr"], batch.get("lr"))
        names = " | ".join(columns)
        rows = torch.stack(list(columns.values()), dim=1).flatten(0, 1).clamp(0, 1)
        grid = make_grid(rows.float().cpu(), nrow=len(columns), padding=2)
        trainer.logger.experiment.add_image(f"val/{names}", grid, trainer.global_step)

    @staticmethod
    def _log_fidelity(trainer: Trainer, pl_module: LightningModule, sr: Tensor, hr: Tensor, lr: Tensor | None) -> None:
        """Protocol metrics of the preview SR against its HR (and LR), as validation curves."""
        from spasemsr.metrics.registry import compute

        sr, hr = sr.float().cpu(), hr.float().cpu()
        scale = hr.shape[-1] // lr.shape[-1] if lr is not None else 4
        values = {name: compute(name, sr, hr=hr, scale=scale) for name in ("psnr_y", "ssim_y")}
        if lr is not None:
            values["lr_consistency"] = compute("lr_consistency", sr, lr=lr.float().cpu(), scale=scale)
        for name, value in values.items():
            trainer.logger.experiment.add_scalar(f"val/{name}", value.mean().item(), trainer.global_step)
