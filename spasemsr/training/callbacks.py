"""Lightning callbacks: side-by-side validation images in TensorBoard, and a per-rank trace of the draws."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        """Sample the preview on global rank zero only (the logger writes there; other ranks would sample in vain)."""
        if trainer.sanity_checking or not trainer.is_global_zero or not isinstance(trainer.logger, TensorBoardLogger):
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


def _plain(value: Any) -> Any:
    """A batch entry as JSON: tensors as (rounded) lists, dicts recursively, strings and numbers as they are."""
    if torch.is_tensor(value):
        return [round(v, 6) if isinstance(v, float) else v for v in value.detach().float().cpu().flatten().tolist()]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value if isinstance(value, (str, int, float, list)) else None


class BatchTrace(Callback):
    """``trainer.trace``: one JSON line per training step and validation on each rank, in ``rank<r>.jsonl``.

    Training lines hold what the step drew: the batch number in the rank's stream, the items (paths and
    crop windows), the degradation parameters, the diffusion timesteps and the rank's loss. Validation
    lines hold the rank's own losses and the logged (rank-averaged) values. This is how a DDP run shows
    that ranks drew different data and noise, and how a resumed run shows it redrew what it would have.
    """

    TRAIN_KEYS = ("batch_number", "path", "degradation")

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._val_losses: list[float] = []

    def _write(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"rank": trainer.global_rank, "world_size": trainer.world_size, **record}) + "\n")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        record = {"step": trainer.global_step, **{key: _plain(batch[key]) for key in self.TRAIN_KEYS if key in batch}}
        if "view" in batch:
            record["crop"] = _plain(batch["view"][:, :4])
        for key, value in (outputs or {}).items():
            record[key] = _plain(value)
        self._write(trainer, record)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if torch.is_tensor(outputs):
            self._val_losses.append(float(outputs))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self._write(trainer, {"step": trainer.global_step, "val_local_losses": self._val_losses, "val_logged": logged})
        self._val_losses = []

