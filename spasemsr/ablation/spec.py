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
    eval: EvalSpec = field(default_factory=EvalSpec)


@dataclass
class Variant:
    """One row: a label, its base config (default: the experiment's), and its overrides."""

    label: str = ""
    config: str = ""  # a config under configs/ or a path; empty = the experiment's base
    overrides: list[str] = field(default_factory=list)


@dataclass
class AblationSpec:
    """The whole experiment."""

    name: str = "ablation"
    base: str = "spasemsr.yaml"
    seed: int = 0
    budgets: dict[str, Budget] = field(default_factory=dict)
    variants: dict[str, Variant] = field(default_factory=dict)


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
    return spec
