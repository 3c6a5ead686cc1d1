"""The sweep file (experiments/pd_sweep.yaml): model, evaluation, objectives, Optuna sampler, search space.

Validated like every config (unknown keys are errors listing the valid ones). Search dimensions are
sampler knobs (``SamplerConfig`` fields): a numeric range (``low``/``high``, optional ``step``/``log``)
or ``choices`` — a component toggle at inference is a choice such as ``w_spa: {choices: [0.0, 1.0]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from spasemsr.config.compose import ConfigError, typed_merge
from spasemsr.config.knobs import KNOBS
from spasemsr.evaluation.spec import EvalSpec
from spasemsr.weights.table import default_path

SAMPLERS = ("nsga2", "tpe", "random")


@dataclass
class Dimension:
    """One searched knob: a range or a list of choices."""

    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None


@dataclass
class OptunaSampler:
    """Which Optuna sampler proposes trials (NSGA-II by default), seeded."""

    name: str = "nsga2"
    population_size: int = 8
    seed: int = 0


@dataclass
class Liveness:
    """How a killed worker's trial is found and re-run: RDB heartbeats, plus a pid check on this host."""

    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats (SQLite, PostgreSQL)
    grace_period: int = 30  # a running trial silent this long is failed and re-queued
    max_retry: int = 2  # re-runs of one failed trial


@dataclass
class SweepSpec:
    """The whole sweep."""

    model: str = field(default_factory=lambda: default_path("tiny_spasemsr"))
    eval: EvalSpec = field(default_factory=EvalSpec)
    fidelity: str = "psnr_y"
    perception: list[str] = field(default_factory=lambda: ["lpips", "niqe"])  # the first available is used
    seed: int = 0  # sampler noise of every image (as `evaluate --seed`)
    sampler: OptunaSampler = field(default_factory=OptunaSampler)
    liveness: Liveness = field(default_factory=Liveness)
    space: dict[str, Dimension] = field(default_factory=dict)
    compare: dict[str, str] = field(default_factory=dict)  # name -> export, for the equal-budget hypervolumes
    # each compared model's front re-scored under these sampler seeds too: its hypervolume per seed, mean ± std (the
    # sampling noise a hypervolume difference is read against; the sweep's own seed picked the front, so it is the
    # optimistic one)
    compare_seeds: list[int] = field(default_factory=list)
    hv_reference: list[float] = field(default_factory=lambda: [10.0, 20.0])  # worst (fidelity, perception) counted


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file")
    spec: SweepSpec = OmegaConf.to_object(typed_merge(SweepSpec, OmegaConf.load(path), ""))
    if spec.sampler.name not in SAMPLERS:
        raise ConfigError(f"{path}: sampler.name={spec.sampler.name!r}; valid: {list(SAMPLERS)}")
    if not spec.space:
        raise ConfigError(f"{path}: `space` names no knob to search; valid knobs: {list(KNOBS)}")
    for name, dim in spec.space.items():
        if name not in KNOBS:
            raise ConfigError(f"{path}: space.{name} is not a sampler knob; valid: {list(KNOBS)}")
        ranged = dim.low is not None and dim.high is not None
        if ranged == bool(dim.choices):
            raise ConfigError(f"{path}: space.{name} needs either low and high, or choices (not both)")
        if ranged and dim.low > dim.high:
            raise ConfigError(f"{path}: space.{name} has low {dim.low} > high {dim.high}")
        if ranged and KNOBS[name].choices is not None:
            raise ConfigError(f"{path}: space.{name} is categorical: give choices from {list(KNOBS[name].choices)}")
        for value in (dim.choices or [dim.low, dim.high]):
            try:
                KNOBS[name].convert(value)
            except ValueError as err:
                raise ConfigError(f"{path}: space.{name}: {err}") from None
    return spec
