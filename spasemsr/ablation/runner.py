"""Train and evaluate every ablation variant under one budget; skip what is complete; write the tables.

Layout: training runs under ``<runs>/<budget>/<variant>/`` (one TensorBoard parent: ``tensorboard
--logdir <runs>/<budget>``, evaluation hparams in each ``<variant>/eval/tb``), one record per variant
in ``<out>/<table>/<variant>.json`` (written last, atomically: it marks the variant complete), and the
tables ``<out>/<table>.{md,csv,tex}`` where ``<table>`` is ``ablation`` for the ``full`` budget and
``ablation_<budget>`` otherwise. A killed ablation rerun resumes the interrupted variant from its
``last.ckpt`` and skips the complete ones; a record whose config or evaluation no longer matches the
experiment file is redone, and ``rerun`` forces named variants from scratch (after a code change).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spasemsr.ablation.spec import AblationSpec, Budget, load_spec
from spasemsr.config import ConfigError, config_hash, load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.evaluation.evaluate import evaluate
from spasemsr.evaluation.table import write_tables
from spasemsr.utils.atomic import atomic_write_text


def table_stem(spec: AblationSpec, budget: str) -> str:
    """``ablation`` for the full budget, ``ablation_<budget>`` for the others."""
    return spec.name if budget == "full" else f"{spec.name}_{budget}"


def variant_config(spec: AblationSpec, name: str, budget: str, runs: Path) -> DictConfig:
    """The full training config of one variant under one budget."""
    variant = spec.variants[name]
    base = Path(variant.config or spec.base)
    path = base if base.is_file() else CONFIGS_ROOT / base
    return load_config(path, [f"run.root={runs / budget}", f"run.name={name}", f"seed={spec.seed}",
                              *spec.budgets[budget].train, *variant.overrides])


def _is_complete(record_path: Path, cfg_hash: str, budget: Budget) -> bool:
    if not record_path.is_file():
        return False
    done = json.loads(record_path.read_text()).get("ablation", {})
    return done.get("config_hash") == cfg_hash and done.get("eval") == asdict(budget.eval)


def _check_run_folder(folder: Path, cfg_hash: str, name: str) -> None:
    """A leftover run of a different config must not be resumed as if it were this one."""
    saved = folder / "config.yaml"
    if saved.is_file() and config_hash(OmegaConf.load(saved)) != cfg_hash:
        raise ConfigError(f"{folder} holds a run of another config for variant {name!r} (its checkpoint would be "
                          f"resumed); rerun with --rerun {name} to start it afresh, or delete the folder")


REEVALUATE = ("rescore", "resample")


def run_variant(spec: AblationSpec, name: str, budget: str, runs: Path, out: Path, rerun: bool = False,
                reevaluate: str | None = None) -> dict:
    """Train (or resume) and evaluate one variant unless its record is complete; return the record.

    ``reevaluate`` redoes a complete variant's evaluation without retraining: ``rescore`` re-scores its
    saved SR images under the current metrics (no sampling); ``resample`` samples them afresh (after a
    sampler change).
    """
    if reevaluate not in (None, *REEVALUATE):
        raise ValueError(f"reevaluate={reevaluate!r}; valid: {', '.join(REEVALUATE)} or None")
    from spasemsr.training.run import run_dir, train

    cfg = variant_config(spec, name, budget, runs)
    cfg_hash, plan = config_hash(cfg), spec.budgets[budget]
    record_path = out / table_stem(spec, budget) / f"{name}.json"
    folder = run_dir(cfg)
    if rerun:
        shutil.rmtree(folder, ignore_errors=True)
        record_path.unlink(missing_ok=True)
    complete = _is_complete(record_path, cfg_hash, plan)
    if complete and not (reevaluate and (folder / "export").is_dir()):
        print(f"ablation: {name} is complete ({record_path}), skipped")
        return json.loads(record_path.read_text())
    if complete:
        export = folder / "export"
    else:
        _check_run_folder(folder, cfg_hash, name)
        print(f"ablation: training {name} ({spec.variants[name].label}) -> {folder}")
        export = train(cfg)
    result = evaluate(str(export), plan.eval.dataset(cfg.data.scale), plan.eval.metrics, folder / "eval",
                      plan.eval.knobs, seed=spec.seed, rescore=reevaluate == "rescore", resume=reevaluate != "resample")
    manifest = json.loads((export / "manifest.json").read_text())
    result = {"name": spec.variants[name].label, **result, "ablation": {
        "variant": name, "budget": budget, "config_hash": cfg_hash, "eval": asdict(plan.eval),
        "overrides": spec.variants[name].overrides, "steps": manifest["steps"],
        "train_wall_seconds": manifest["wall_seconds_this_invocation"], "final_metrics": manifest["final_metrics"],
    }}
    atomic_write_text(record_path, json.dumps(result, indent=2))
    return result


def run_ablation(experiment: str | Path, budget: str, out: str | Path, runs: str | Path,
                 only: Sequence[str] = (), rerun: Sequence[str] = (), reevaluate: str | None = None) -> list[dict]:
    """Every variant (or ``only`` those) under ``budget``, then the tables of all complete ones."""
    spec = load_spec(experiment)
    if budget not in spec.budgets:
        raise ConfigError(f"unknown budget {budget!r}; valid: {sorted(spec.budgets)}")
    unknown = sorted((set(only) | set(rerun)) - {"all"} - set(spec.variants))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; valid: {list(spec.variants)}")
    out, runs = Path(out), Path(runs)
    names = list(only) or list(spec.variants)
    rows = [run_variant(spec, name, budget, runs, out, name in rerun or "all" in rerun, reevaluate)
            for name in names]
    write_ablation_tables(spec, budget, out, runs)
    return rows


def write_ablation_tables(spec: AblationSpec, budget: str, out: Path, runs: Path) -> None:
    """Tables of every complete variant in file order (so parallel ``--only`` runs add up); missing ones named."""
    stem = out / table_stem(spec, budget)
    rows, missing = [], []
    for name in spec.variants:
        record_path = stem / f"{name}.json"
        cfg_hash = config_hash(variant_config(spec, name, budget, runs))
        if _is_complete(record_path, cfg_hash, spec.budgets[budget]):
            rows.append(json.loads(record_path.read_text()))
        else:
            missing.append(f"{spec.variants[name].label} ({name}): not run yet under this budget")
    if rows:
        write_tables(rows, stem, title=f"{spec.name} ({budget} budget)", footer=missing)
        print(f"ablation: tables in {stem}.md, .csv, .tex; TensorBoard: tensorboard --logdir {runs / budget}")
