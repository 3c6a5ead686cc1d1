"""One worker's objective: the checkpoint loaded once, every image's conditions computed once, knobs per trial.

Each trial samples every image with a fresh generator seeded by the sweep seed (as ``evaluate`` does),
so trials differ only by their knobs; the whole metric vector is stored as user attributes and the
objectives are (fidelity, perception) means in the registry's directions.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import replace
from pathlib import Path

import optuna
import torch

from spasemsr.config.compose import ConfigError
from spasemsr.config.knobs import KNOBS, knob_overrides
from spasemsr.evaluation.protocol import DEFAULT_METRICS
from spasemsr.evaluation.records import write_hparams
from spasemsr.metrics.registry import compute, lower_better, usable
from spasemsr.sweep.spec import Dimension, SweepSpec


def objective_metrics(spec: SweepSpec, size: tuple[int, int] | None = None, scale: int = 4) -> tuple[str, str]:
    """(fidelity, perception): the perception metric is the first of ``spec.perception`` usable here.

    ``size`` is the smallest image of the set (H, W): an objective that cannot score it is refused before
    anything runs, naming the size it needs.
    """
    ready, reason = usable(spec.fidelity, size, scale)
    if not ready:
        raise ConfigError(f"fidelity objective {spec.fidelity!r} cannot be used: {reason}; raise eval.crop or "
                          "choose another fidelity metric")
    for name in spec.perception:
        if usable(name, size, scale)[0]:
            return spec.fidelity, name
    reasons = "; ".join(usable(name, size, scale)[1] for name in spec.perception)
    raise ConfigError(f"none of the perception objectives {spec.perception} can be used: {reasons}; raise "
                      "eval.crop or list another perception metric")


def directions(metrics: tuple[str, ...]) -> list[str]:
    """Optuna directions of ``metrics`` from the registry."""
    return ["minimize" if lower_better(name) else "maximize" for name in metrics]


def suggest(trial: optuna.Trial, name: str, dim: Dimension) -> object:
    """One knob value; integer knobs (by their type in the knob table) get integer ranges."""
    if dim.choices:
        return trial.suggest_categorical(name, list(dim.choices))
    if KNOBS[name].kind is int:
        return trial.suggest_int(name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)


class SweepObjective:
    """Callable objective for ``study.optimize``; everything knob-independent happens in ``__init__``."""

    def __init__(self, spec: SweepSpec, device: str = "cpu", tensorboard: Path | None = None) -> None:
        from spasemsr.weights.exports import load_pipeline, read_export

        self.spec, self.device, self.tensorboard = spec, device, tensorboard
        scale = read_export(spec.model).data.scale
        dataset = spec.eval.dataset(scale)
        self.objectives = objective_metrics(spec, dataset.smallest, scale)  # refused before any model loads
        wanted = list(spec.eval.metrics or DEFAULT_METRICS) + list(self.objectives)
        self.metrics = [name for name in dict.fromkeys(wanted) if usable(name, dataset.smallest, scale)[0]]
        self.pipeline = load_pipeline(spec.model, device=device)
        self.base = replace(self.pipeline.sampler, **knob_overrides(spec.eval.knobs))
        self.images = [(image, self.pipeline.prepare(image.lr[None].to(device), known=image.known))
                       for image in dataset]
        self.worker = {"host": socket.gethostname(), "pid": os.getpid()}

    def knobs(self, trial: optuna.Trial) -> dict[str, object]:
        """The trial's knob values (suggested in the file's order)."""
        return {name: suggest(trial, name, dim) for name, dim in self.spec.space.items()}

    def score(self, knobs: dict[str, object], seed: int) -> dict[str, float]:
        """Every metric's mean over the images sampled with ``knobs`` under sampler seed ``seed``."""
        settings = replace(self.base, **knob_overrides(knobs), seed=seed)
        totals = dict.fromkeys(self.metrics, 0.0)
        for image, prepared in self.images:
            generator = torch.Generator(self.device).manual_seed(seed)
            sr = self.pipeline.sample(prepared, generator, settings).cpu()
            for name in self.metrics:
                totals[name] += float(compute(name, sr, hr=image.hr[None], lr=prepared.lr.cpu(),
                                              scale=self.pipeline.scale)[0])
        return {name: total / len(self.images) for name, total in totals.items()}

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("worker", self.worker)  # lets a restarted worker on this host spot a dead trial
        knobs = self.knobs(trial)
        means = self.score(knobs, self.spec.seed)
        trial.set_user_attr("metrics", means)
        if self.tensorboard is not None:
            write_hparams(self.tensorboard / f"trial_{trial.number:05d}", self.spec.model, knobs, means)
        values = tuple(means[name] for name in self.objectives)
        if not all(math.isfinite(v) for v in values):
            raise optuna.TrialPruned(f"non-finite objectives {values}")
        return values
