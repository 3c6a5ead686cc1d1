"""What every spasemsr training task shares: config handling, optimiser, lean checkpoints, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from omegaconf import DictConfig
from torch import Tensor

from spasemsr.config import to_container, validate
from spasemsr.guidance.text_encoder import TextEncoder, load_text_encoder


class TaskModule(LightningModule):
    """Base LightningModule; subclasses name their trainable submodules in ``trainable``.

    Checkpoints hold only trainable weights (the frozen prior can be gigabytes and is reloaded
    from its own folder), plus optimiser and loop state, all loadable with ``weights_only=True``.
    """

    trainable: tuple[str, ...] = ()
    needs_lr: bool = False  # whether batches must carry an LR image (degraded online if absent)

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        super().__init__()
        plain = to_container(config) if isinstance(config, DictConfig) else config
        self.save_hyperparameters({"config": plain})
        self.cfg = validate(plain)  # typed again, so sections convert back to their dataclasses
        self.strict_loading = False  # frozen weights are not in checkpoints; checked in on_load_checkpoint

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.model.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {
            key: value for key, value in checkpoint["state_dict"].items() if key.startswith(self._prefixes())
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        expected = {key for key in self.state_dict() if key.startswith(self._prefixes())}
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(f"checkpoint lacks {len(missing)} trainable weights, e.g. {missing[:3]}")

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """The training objective on one batch; a seeded ``generator`` makes it repeatable (validation)."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["hr"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        generator = torch.Generator(self.device).manual_seed(batch_idx)
        self.log("val/loss", self.loss(batch, generator), batch_size=len(batch["hr"]))

    def export(self, folder: Path) -> None:
        """Write the trained components as ``from_pretrained`` folders under ``folder``."""
        raise NotImplementedError

    def preview(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Images (B, 3, H, W) in [0, 1], same size, shown side by side in TensorBoard; empty = none."""
        return {}

    def side_by_side(self, lr: Tensor, sr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """The SR preview layout: nearest-upsampled LR | SR | HR, all at HR size."""
        lr_up = torch.nn.functional.interpolate(lr, scale_factor=self.cfg.data.scale, mode="nearest")
        return {"lr": lr_up, "sr": sr, "hr": hr}

    def _prefixes(self) -> tuple[str, ...]:
        return tuple(f"{name}." for name in self.trainable)

    def _text_encoder(self) -> TextEncoder:
        te = self.cfg.profile.text_encoder
        return load_text_encoder(te.name, te.path, te.max_length, te.subfolder)
