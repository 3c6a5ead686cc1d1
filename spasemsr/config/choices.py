"""The valid values of every enumerated config field, checked when a config is composed (before any model loads).

Tuples here are the single declaration where the implementing module has no registry of its own (it imports
them from here); registries keyed by name (grounders, describers, teachers, text encoders, distances,
optimisers) keep their own keys and ``tests/test_config.py`` checks that they agree with these, so a new
backend cannot be registered without being accepted by the config, or the reverse.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

GROUNDER_NAMES = ("annotations", "auto", "grounding_dino", "owlv2", "none")
DESCRIBER_NAMES = ("params", "estimator", "vlm", "none")

CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("bundled", "hr_folder", "paired"),
    "profile.text_encoder.name": ("minilm", "clip"),
    "sampler.name": ("ddim",),
    "sampler.color_fix": ("none", "adain", "wavelet"),
    "trainer.optimizer": ("adamw", "adamw_fused", "adamw8bit"),
    "trainer.frozen_dtype": ("float32", "bfloat16", "float16"),
    "model.fusion": ("spasem", "sum", "concat"),
    "model.text.spatial": ("none", "tags", "tags_boxes"),
    "model.text.box_encoder": ("sinusoidal", "linear"),
    "model.text.train_grounder": GROUNDER_NAMES,
    "model.text.infer_grounder": GROUNDER_NAMES,
    "model.text.train_describer": DESCRIBER_NAMES,
    "model.text.infer_describer": DESCRIBER_NAMES,
    "model.visual.teacher": ("mobilenet_v2", "sam", "none"),
    "model.visual.distance": ("l1", "l2", "cosine"),
}
"""Dotted key -> valid values; a key a task does not have (e.g. ``model.fusion`` of the DRM) is not checked."""


def bad_choices(cfg: DictConfig) -> list[str]:
    """One line per enumerated field whose value is not one of its choices."""
    problems = []
    for key, valid in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in valid:
            problems.append(f"{key}={value!r} is not one of {list(valid)}")
    return problems
