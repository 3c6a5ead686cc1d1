"""The valid values of every enumerated config field, checked when a config is composed (before any model loads).

Families with members (grounders, describers, text encoders, teachers, distances, fusion modes, samplers,
optimisers) are checked against their live registry in ``spasemsr.registries``, so registering a member is
all it takes for configs to accept it. Fixed vocabularies with no registry are declared here once (the
implementing modules import them).
"""

from __future__ import annotations

from collections.abc import Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf

from spasemsr import registries as R

DATA_SOURCES = ("bundled", "hr_folder", "paired", "probe", "sampled_latents")
COLOR_FIXES = ("none", "adain", "wavelet")
START_IMAGES = ("lr", "drm")
DEGRADATION_QUANTITIES = ("blur", "noise", "jpeg")  # what degradation captions can state (describer/template.py)
FROZEN_DTYPE_NAMES = ("float32", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "constant_with_warmup", "cosine", "linear")  # diffusers.optimization.get_scheduler names
SPATIAL_MODES = ("none", "tags", "tags_boxes")
BOX_ENCODERS = ("sinusoidal", "linear")
# what the training grounder sees: the HR crop, DRM(LR) of the crop, or DRM(LR) of the crop's whole photo (as inference)
TRAIN_GROUNDING_INPUTS = ("hr", "drm_lr", "drm_lr_photo")
RECON_LOSSES = ("l1", "mse")  # the VAE's reconstruction loss

CHOICES: dict[str, Iterable[str]] = {
    "data.source": DATA_SOURCES,
    "profile.text_encoder.name": R.TEXT_ENCODERS,
    "sampler.name": R.SAMPLERS,
    "sampler.color_fix": COLOR_FIXES,
    "sampler.start_image": START_IMAGES,
    "trainer.optimizer": R.OPTIMIZERS,
    "trainer.frozen_dtype": FROZEN_DTYPE_NAMES,
    "trainer.lr_schedule": LR_SCHEDULES,
    "model.fusion": R.FUSIONS,
    "model.recon_loss": RECON_LOSSES,
    "model.text.spatial": SPATIAL_MODES,
    "model.text.box_encoder": BOX_ENCODERS,
    "model.text.train_grounder": R.GROUNDERS,
    "model.text.train_grounding": TRAIN_GROUNDING_INPUTS,
    "model.text.infer_grounder": R.GROUNDERS,
    "model.text.train_describer": R.DESCRIBERS,
    "model.text.infer_describer": R.DESCRIBERS,
    "model.text.caption_fields": DEGRADATION_QUANTITIES,  # a list: each entry is checked
    "model.visual.teacher": R.TEACHERS,
    "model.visual.distance": R.DISTANCES,
}
"""Dotted key -> valid values; a key a task does not have (e.g. ``model.fusion`` of the DRM) is not checked."""


def bad_choices(cfg: DictConfig) -> list[str]:
    """One line per enumerated field whose value is not one of its choices."""
    problems = []
    for key, valid in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, ListConfig | list):
            problems += [f"{key}={list(value)!r}: {item!r} is not one of {list(valid)}" for item in value
                         if item not in valid]
        elif value is not None and value not in valid:
            problems.append(f"{key}={value!r} is not one of {list(valid)}")
    return problems
