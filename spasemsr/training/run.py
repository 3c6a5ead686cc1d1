"""``spasemsr train``: one function from a validated config to a trained, exported run folder.

Layout of ``<run.root>/<run.name>/``: ``config.yaml`` (resolved), ``checkpoints/`` (``step<N>.ckpt`` every
``trainer.ckpt_every_n_steps``, the newest kept, and ``last.ckpt`` linking it: one copy on disk), ``tb/``
(TensorBoard), ``trace/`` (with ``trainer.trace``), and ``export/`` (``from_pretrained`` folders of the
trained parts, the config and ``manifest.json``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from spasemsr.config import config_hash
from spasemsr.data.datamodule import SRDataModule
from spasemsr.models.base import TaskModule
from spasemsr.registries import TASKS
from spasemsr.training.callbacks import BatchTrace, ImageGridLogger
from spasemsr.training.manifest import write_manifest
from spasemsr.utils.atomic import atomic_write_text


def run_dir(cfg: DictConfig) -> Path:
    """The folder a run writes to."""
    return Path(cfg.run.root) / cfg.run.name


def build_trainer(cfg: DictConfig, folder: Path) -> Trainer:
    """A Lightning Trainer from the ``trainer`` preset, with checkpointing, TensorBoard and previews.

    Validation runs every ``val_every_n_steps`` optimiser steps, as checkpoints do (Lightning counts
    validation intervals in batches, so the interval is scaled by the gradient accumulation). The data
    module deals out each rank's share itself (``StreamSampler``), so Lightning's sampler swap is off.
    """
    t = cfg.trainer
    checkpoint = ModelCheckpoint(
        dirpath=folder / "checkpoints", filename="step{step:07d}", auto_insert_metric_name=False,
        every_n_train_steps=t.ckpt_every_n_steps, save_last="link", save_top_k=1,  # last.ckpt links the newest
    )
    callbacks = [checkpoint, ImageGridLogger()] + ([BatchTrace(folder / "trace")] if t.trace else [])
    return Trainer(
        accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, precision=t.precision,
        max_steps=t.max_steps, log_every_n_steps=t.log_every_n_steps,
        val_check_interval=t.val_every_n_steps * t.accumulate_grad_batches, check_val_every_n_epoch=None,
        gradient_clip_val=t.gradient_clip_val, accumulate_grad_batches=t.accumulate_grad_batches,
        logger=TensorBoardLogger(save_dir=str(folder), name="tb", version="", default_hp_metric=False),
        callbacks=callbacks, default_root_dir=str(folder), use_distributed_sampler=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )


RESUME_MODES = ("auto", "force", "never")


def resume_path(cfg: DictConfig, folder: Path) -> str | None:
    """Checkpoint to resume from: ``auto``/``force`` pick the newest a previous run left (``latest_checkpoint``).

    ``force`` also skips the check that the checkpoint was trained under this config's training hash.
    """
    mode = cfg.trainer.resume
    if mode == "never":
        return None
    if mode in ("auto", "force"):
        return latest_checkpoint(folder / "checkpoints")
    if not Path(mode).is_file():
        raise FileNotFoundError(f"trainer.resume={mode}: no such checkpoint file (or use one of {RESUME_MODES})")
    return mode


def latest_checkpoint(folder: Path) -> str | None:
    """``last.ckpt`` (a link to the newest checkpoint), or the newest ``step*.ckpt`` when a kill came between
    Lightning removing the old link and making the new one."""
    last = folder / "last.ckpt"
    if last.is_file():
        return str(last)
    steps = sorted(folder.glob("step*.ckpt"))
    return str(steps[-1]) if steps else None


def reduced_metrics(trainer: Trainer) -> dict[str, float]:
    """The last logged value of every metric, averaged over DDP ranks (a collective: every rank calls it)."""
    metrics = {}
    for name in sorted(trainer.callback_metrics):
        value = trainer.callback_metrics[name].detach().float().to(trainer.strategy.root_device)
        metrics[name] = float(trainer.strategy.reduce(value, reduce_op="mean"))
    return metrics


def train(cfg: DictConfig) -> Path:
    """Train the task ``cfg.model.name`` (resuming if possible), export it, and return the export folder.

    Under DDP every rank runs this function; only global rank zero writes the run's config, export and
    manifest (after every rank finished training), and the manifest's metrics are averaged over ranks.
    """
    seed_everything(cfg.seed, workers=True)
    folder = run_dir(cfg)
    module: TaskModule = TASKS.get(cfg.model.name).module_class(cfg)
    datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=module.needs_lr)
    trainer = build_trainer(cfg, folder)
    if trainer.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    ckpt = resume_path(cfg, folder)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    metrics = reduced_metrics(trainer)
    trainer.strategy.barrier("export")
    export = folder / "export"
    if trainer.is_global_zero:
        module.export(export)
        atomic_write_text(export / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_manifest(export, cfg, config_hash(cfg), trainer, metrics, time.perf_counter() - started, ckpt)
        print(json.dumps({"run": str(folder), "export": str(export), "step": trainer.global_step}))
    trainer.strategy.barrier("exported")
    return export
