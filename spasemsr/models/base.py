"""What every spasemsr training task shares: config handling, optimiser, lean checkpoints, export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, ModelMixin
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from spasemsr.config import to_container, training_hash, validate
from spasemsr.diffusion.latents import noised
from spasemsr.training.memory import build_optimizer, store_frozen_as


class TaskModule(LightningModule):
    """Base LightningModule; subclasses name their trainable submodules in ``trainable``.

    Checkpoints hold only trainable weights (the frozen prior can be gigabytes and is reloaded
    from its own folder), plus optimiser and loop state, all loadable with ``weights_only=True``.
    """

    trainable: tuple[str, ...] = ()
    needs_lr: bool = False  # whether batches must carry an LR image (degraded online if absent)
    # config keys of the frozen weight folders a step reads; checkpoints record their hashes, as a run resumed after
    # one changed under its path (a new prior VAE, say) would go on as another model
    frozen_paths: tuple[str, ...] = ()

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        super().__init__()
        plain = to_container(config) if isinstance(config, DictConfig) else config
        self.save_hyperparameters({"config": plain})
        self.cfg = validate(plain)  # typed again, so sections convert back to their dataclasses
        self.strict_loading = False  # frozen weights are not in checkpoints; checked in on_load_checkpoint
        self.drawn: dict[str, Tensor] = {}  # the random draws of the last loss (e.g. timesteps), for tracing

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimiser and its per-step learning-rate schedule (saved in checkpoints, so a resume continues it)."""
        from diffusers.optimization import get_scheduler

        t = self.cfg.trainer
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(t.optimizer, params, self.cfg.model.lr, t.precision, t.gradient_clip_val)
        schedule = get_scheduler(t.lr_schedule, optimizer, num_warmup_steps=t.warmup_steps,
                                 num_training_steps=t.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_model(self) -> None:
        """Lightning's hook before the strategy wraps the module: the memory options ``trainer`` asks for."""
        t = self.cfg.trainer
        store_frozen_as(self, t.frozen_dtype, t.precision)
        if not t.gradient_checkpointing:
            return
        models = self.checkpointed_models()
        if not models:
            rank_zero_warn(f"trainer.gradient_checkpointing: task {self.cfg.model.name!r} has no network to checkpoint")
        for model, function in models:
            model.enable_gradient_checkpointing(function)

    def frozen_weights(self) -> dict[str, str]:
        """The folders of frozen weights a training step reads (``frozen_paths`` -> their paths)."""
        return {key: OmegaConf.select(self.cfg, key) for key in self.frozen_paths}

    def _frozen_sha256(self) -> dict[str, str | None]:
        if not hasattr(self, "_frozen_hashes"):  # hashed once per run: SD-2's prior is gigabytes
            from spasemsr.evaluation.identity import prior_sha256

            self._frozen_hashes = {name: prior_sha256(path) for name, path in self.frozen_weights().items()}
        return self._frozen_hashes

    def checkpointed_models(self) -> list[tuple[ModelMixin, Callable[..., Any] | None]]:
        """diffusers models whose blocks recompute in backward, each with its checkpoint function (None: default)."""
        return []

    @property
    def autocast_dtype(self) -> torch.dtype:
        """The dtype ``trainer.precision`` computes in (previews sample in it too, e.g. over bf16 frozen weights)."""
        precision = self.cfg.trainer.precision
        return torch.bfloat16 if precision.startswith("bf16") else torch.float16 if precision.startswith("16") \
            else torch.float32

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """Lightning's ``log``; outside training steps the value is averaged over DDP ranks (``sync_dist``)."""
        kwargs.setdefault("sync_dist", not self.training)
        super().log(name, value, *args, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {
            key: value for key, value in checkpoint["state_dict"].items() if key.startswith(self._prefixes())
        }
        checkpoint["training_hash"] = training_hash(self.cfg)
        checkpoint["frozen_weights"] = self._frozen_sha256()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved, now = checkpoint.get("training_hash"), training_hash(self.cfg)
        force = self.cfg.trainer.resume == "force"
        if saved != now and not force:
            raise ValueError(
                f"the checkpoint was trained under training hash {saved or '(none recorded)'}, this config has {now}: "
                "it changes what is trained (model, data, degradation, seed or optimisation). Start a new run "
                "(run.name=...) or resume anyway with trainer.resume=force"
            )
        frozen, current = checkpoint.get("frozen_weights"), self._frozen_sha256()
        changed = sorted(name for name in (frozen or {}) if frozen[name] != current.get(name))
        if changed and not force:  # checkpoints from before frozen weights were recorded have none to compare
            paths = ", ".join(f"{name} ({self.frozen_weights().get(name)})" for name in changed)
            raise ValueError(f"the checkpoint was trained on other frozen weights than {paths} now hold: resuming "
                             "would go on as another model. Start a new run (run.name=...) or resume anyway with "
                             "trainer.resume=force")
        expected = {key for key in self.state_dict() if key.startswith(self._prefixes())}
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(f"checkpoint lacks {len(missing)} trainable weights, e.g. {missing[:3]}")

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """The training objective on one batch; a seeded ``generator`` makes it repeatable.

        In training the generator is the batch's own (``batch["generator"]``, from the data stream), so each
        DDP rank draws its own noise and timesteps and a resumed run redraws exactly what it would have.
        """
        raise NotImplementedError

    def noised(self, scheduler: DDPMScheduler, latents: Tensor,
               generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """``diffusion.latents.noised`` (z_t, ε, t), with the timesteps kept in ``drawn`` for the step's trace."""
        noisy, noise, timesteps = noised(scheduler, latents, generator)
        self.drawn = {"timesteps": timesteps}
        return noisy, noise, timesteps

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        loss = self.loss(batch, batch.get("generator"))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["hr"]))
        return {"loss": loss, **self.drawn}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        generator = torch.Generator(self.device).manual_seed(batch_idx)
        loss = self.loss(batch, generator)
        self.log("val/loss", loss, batch_size=len(batch["hr"]))
        return loss

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
