"""The ablation experiment file: a base config, budget presets, and variants as overrides of the full model.

Validated like every config: an unknown key is an error listing the valid ones. Adding a variant is one
entry under ``variants`` (a label plus dotted overrides, or another base config for a baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from spasemsr.config.compose import ConfigError, typed_merge
from spasemsr.evaluation.spec import EvalSpec


@dataclass
class Budget:
    """One preset: training overrides applied to every variant, and the evaluation."""

    train: list[str] = field(default_factory=list)
    # training overrides of the experiment's base config only (not of a variant with its own ``config``), e.g. a
    # SpaSemSR option the ControlNet-SR baseline does not have
    train_base: list[str] = field(default_factory=list)
    eval: EvalSpec = field(default_factory=EvalSpec)
    # sampler seeds each trained model is evaluated under (its row: mean ± std over them, the sampling noise beside
    # every comparison); empty = the training seed only
    sample_seeds: list[int] = field(default_factory=list)


@dataclass
class Variant:
    """One row: a label, its base config (default: the experiment's), and its overrides."""

    label: str = ""
    config: str = ""  # a config under configs/ or a path; empty = the experiment's base
    overrides: list[str] = field(default_factory=list)
    # an inference-knob row: evaluate the model another variant trained (no training of its own) under ``knobs``
    train_as: str = ""
    knobs: dict = field(default_factory=dict)  # sampler knobs over the budget's eval knobs, e.g. {w_spa: 0.0}


@dataclass
class AblationSpec:
    """The whole experiment."""

    name: str = "ablation"
    base: str = "spasemsr.yaml"
    seed: int = 0
    # several seeds: every variant is trained and evaluated once per seed (runs and records named <variant>_seed<s>),
    # the tables show mean ± std over seeds and <table>/summary.json every per-seed value
    seeds: list[int] = field(default_factory=list)
    budgets: dict[str, Budget] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)


def seeds_of(spec: AblationSpec) -> list[int]:
    """The seeds every variant runs under: ``seeds``, or the single ``seed``."""
    return list(spec.seeds) or [spec.seed]


def load_spec(path: str | Path) -> AblationSpec:
    """Read and validate an ablation file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    spec: AblationSpec = OmegaConf.to_object(typed_merge(AblationSpec, OmegaConf.load(path), ""))
    if not spec.variants or not spec.budgets:
        raise ConfigError(f"{path}: needs at least one entry under `variants` and one under `budgets`")
    for name, variant in spec.variants.items():
        if not name.isidentifier():
            raise ConfigError(f"{path}: variant name {name!r} must be a plain identifier (it names folders)")
        variant.label = variant.label or name
        if variant.train_as and (variant.train_as not in spec.variants or spec.variants[variant.train_as].train_as
                                 or variant.config or variant.overrides):
            raise ConfigError(f"{path}: variant {name!r}: train_as must name a variant that trains (one of "
                              f"{[n for n, v in spec.variants.items() if not v.train_as]}), without config/overrides")
    return spec
