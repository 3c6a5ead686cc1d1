"""Train and evaluate every ablation variant under one budget; skip what is complete; write the tables.

Layout: training runs under ``<runs>/<budget>/<variant>/`` (one TensorBoard parent: ``tensorboard
--logdir <runs>/<budget>``, evaluation hparams in each ``<variant>/eval/tb``), one record per variant
in ``<out>/<table>/<variant>.json`` (written last, atomically: it marks the variant complete), and the
tables ``<out>/<table>.{md,csv,tex}`` where ``<table>`` is ``ablation`` for the ``full`` budget and
``ablation_<budget>`` otherwise. With several ``seeds`` each variant runs once per seed (``<variant>_seed<s>``
for runs and records), the tables give mean ± std over seeds, and ``<out>/<table>/summary.json`` holds every
per-seed value as ``{"variants": {variant: {metric: [one value per seed]}}}``. A budget's ``sample_seeds``
evaluate each trained model once per sampler seed (seed 0 in ``eval/``, others in ``eval/seed<s>/``): its record
holds their mean, the std beside it (``spread``) and each seed's values (``per_sample_seed``). A killed ablation
rerun resumes the interrupted variant from its ``last.ckpt`` and skips the complete ones; a record whose config or
evaluation no longer matches the experiment file is redone, and ``rerun`` forces named variants from scratch (after
a code change).
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spasemsr.ablation.spec import AblationSpec, load_spec, seeds_of
from spasemsr.config import ConfigError, config_hash, load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.evaluation.evaluate import evaluate, seed_folder
from spasemsr.evaluation.identity import prior_sha256
from spasemsr.evaluation.spec import EvalSpec
from spasemsr.evaluation.table import mean_std, seed_mean, write_tables
from spasemsr.utils.atomic import atomic_write_text
from spasemsr.utils.cores import threads_per_worker, use_threads


def table_stem(spec: AblationSpec, budget: str) -> str:
    """``ablation`` for the full budget, ``ablation_<budget>`` for the others."""
    return spec.name if budget == "full" else f"{spec.name}_{budget}"


def run_name(spec: AblationSpec, name: str, seed: int) -> str:
    """A variant's run and record name: the variant, with ``_seed<s>`` when the spec runs several seeds."""
    return name if len(seeds_of(spec)) == 1 else f"{name}_seed{seed}"


def record_path(spec: AblationSpec, name: str, budget: str, out: Path, seed: int) -> Path:
    """Where one variant's record for one seed lives under the results folder ``out``."""
    return out / table_stem(spec, budget) / f"{run_name(spec, name, seed)}.json"


def variant_config(spec: AblationSpec, name: str, budget: str, runs: Path, seed: int | None = None) -> DictConfig:
    """The full training config of one variant under one budget (and seed: default the spec's first)."""
    variant = spec.variants[name]
    if variant.train_as:
        return variant_config(spec, variant.train_as, budget, runs, seed)
    seed = seeds_of(spec)[0] if seed is None else seed
    base, plan = Path(variant.config or spec.base), spec.budgets[budget]
    path = base if base.is_file() else CONFIGS_ROOT / base
    return load_config(path, [f"run.root={runs / budget}", f"run.name={run_name(spec, name, seed)}", f"seed={seed}",
                              *plan.train, *([] if variant.config else plan.train_base), *variant.overrides])


def variant_eval(spec: AblationSpec, name: str, budget: str) -> EvalSpec:
    """The budget's evaluation with the variant's own knobs over its knobs."""
    plan = spec.budgets[budget].eval
    return replace(plan, knobs={**plan.knobs, **spec.variants[name].knobs})


def sample_seeds_of(spec: AblationSpec, budget: str, seed: int) -> list[int]:
    """The sampler seeds a model trained under ``seed`` is evaluated with: the budget's, or that seed."""
    return list(spec.budgets[budget].sample_seeds) or [seed]


def variant_identity(spec: AblationSpec, name: str, budget: str, runs: Path, seed: int) -> tuple[DictConfig, dict]:
    """A variant's config, and what its record must match to count as complete: the config, the evaluation, the
    sampler seeds and the frozen prior's weights (another VAE or UNet under the same path makes the record stale)."""
    cfg = variant_config(spec, name, budget, runs, seed)
    return cfg, {"config_hash": config_hash(cfg), "eval": asdict(variant_eval(spec, name, budget)),
                 "sample_seeds": sample_seeds_of(spec, budget, seed),
                 "backbone": prior_sha256(cfg.profile.backbone_path)}


def _is_complete(path: Path, identity: dict) -> bool:
    if not path.is_file():
        return False
    done = json.loads(path.read_text()).get("ablation", {})
    done = {**done, "sample_seeds": done.get("sample_seeds", [done.get("seed")])}
    return all(done.get(key) == value for key, value in identity.items())


def _check_run_folder(folder: Path, cfg_hash: str, name: str) -> None:
    """A leftover run of a different config must not be resumed as if it were this one."""
    saved = folder / "config.yaml"
    if saved.is_file() and config_hash(OmegaConf.load(saved)) != cfg_hash:
        raise ConfigError(f"{folder} holds a run of another config for variant {name!r} (its checkpoint would be "
                          f"resumed); rerun with --rerun {name} to start it afresh, or delete the folder")


REEVALUATE = ("rescore", "resample")


def _trained(folder: Path, cfg: DictConfig) -> bool:
    """Whether the run in ``folder`` has exported the model at its full step budget (what a knob row evaluates)."""
    manifest = folder / "export" / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("steps") == cfg.trainer.max_steps


def run_variant(spec: AblationSpec, name: str, budget: str, runs: Path, out: Path, rerun: bool = False,
                reevaluate: str | None = None, seed: int | None = None) -> dict:
    """Train (or resume) and evaluate one variant unless its record is complete; return the record.

    ``reevaluate`` redoes a complete variant's evaluation without retraining: ``rescore`` re-scores its
    saved SR images under the current metrics (no sampling); ``resample`` samples them afresh (after a
    sampler change).
    """
    if reevaluate not in (None, *REEVALUATE):
        raise ValueError(f"reevaluate={reevaluate!r}; valid: {', '.join(REEVALUATE)} or None")
    from spasemsr.training.run import run_dir, train

    seed = seeds_of(spec)[0] if seed is None else seed
    variant = spec.variants[name]
    cfg, identity = variant_identity(spec, name, budget, runs, seed)
    cfg_hash, plan, sample_seeds = identity["config_hash"], variant_eval(spec, name, budget), identity["sample_seeds"]
    record = record_path(spec, name, budget, out, seed)
    folder = run_dir(cfg)
    eval_dir = folder / (f"eval_{name}" if variant.train_as else "eval")
    if rerun:
        shutil.rmtree(eval_dir if variant.train_as else folder, ignore_errors=True)
        record.unlink(missing_ok=True)
    complete = _is_complete(record, identity)
    if complete and not (reevaluate and (folder / "export").is_dir()):
        print(f"ablation: {name} is complete ({record}), skipped")
        return json.loads(record.read_text())
    if complete or (variant.train_as and _trained(folder, cfg)):
        export = folder / "export"
    else:
        _check_run_folder(folder, cfg_hash, name)
        print(f"ablation: training {variant.train_as or name} ({variant.label}) -> {folder}")
        export = train(cfg)
    sampled = [evaluate(str(export), plan.dataset(cfg.data.scale), plan.metrics, seed_folder(eval_dir, sample_seed),
                        plan.knobs, seed=sample_seed, rescore=reevaluate == "rescore",
                        resume=reevaluate != "resample") for sample_seed in sample_seeds]
    result = sampled[0] if len(sampled) == 1 else {**seed_mean(sampled), "per_sample_seed": {
        str(s): one["means"] for s, one in zip(sample_seeds, sampled, strict=True)}}
    manifest = json.loads((export / "manifest.json").read_text())
    result = {"name": variant.label, **result, "ablation": {
        "variant": name, "seed": seed, "budget": budget, **identity,
        "overrides": variant.overrides, "steps": manifest["steps"],
        "train_wall_seconds": manifest["wall_seconds_this_invocation"], "final_metrics": manifest["final_metrics"],
    }}
    atomic_write_text(record, json.dumps(result, indent=2))
    return result


def run_ablation(experiment: str | Path, budget: str, out: str | Path, runs: str | Path,
                 only: Sequence[str] = (), rerun: Sequence[str] = (), reevaluate: str | None = None,
                 jobs: int = 1) -> list[dict]:
    """Every variant (or ``only`` those) under ``budget``, then the tables of all complete ones.

    ``jobs`` > 1 runs that many (variant, seed) runs at once in worker processes sharing the CPU cores (the tiny
    models train as fast on one thread as on two, so two jobs on two cores halve a CPU study's time); knob rows
    run after the trainings they evaluate.
    """
    spec = load_spec(experiment)
    if budget not in spec.budgets:
        raise ConfigError(f"unknown budget {budget!r}; valid: {sorted(spec.budgets)}")
    unknown = sorted((set(only) | set(rerun)) - {"all"} - set(spec.variants))
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; valid: {list(spec.variants)}")
    out, runs = Path(out), Path(runs)
    names = list(only) or list(spec.variants)
    pairs = [(name, seed) for name in names for seed in seeds_of(spec)]
    trained = [[pair] for pair in pairs if not spec.variants[pair[0]].train_as]
    knob_rows: dict[tuple[str, int], list[tuple[str, int]]] = {}  # one job per model: its rows one after another
    for name, seed in pairs:
        if spec.variants[name].train_as:
            knob_rows.setdefault((spec.variants[name].train_as, seed), []).append((name, seed))
    run = partial(_run_pairs, str(experiment), budget, str(runs), str(out), tuple(rerun), reevaluate)
    rows = []
    for phase in (trained, list(knob_rows.values())):
        if jobs > 1 and len(phase) > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context, initializer=use_threads,
                                     initargs=(threads_per_worker(jobs),)) as pool:
                rows += [row for done in pool.map(run, phase) for row in done]
        else:
            rows += [row for job in phase for row in run(job)]
    write_ablation_tables(spec, budget, out, runs)
    return rows


def _run_pairs(experiment: str, budget: str, runs: str, out: str, rerun: tuple[str, ...], reevaluate: str | None,
               pairs: list[tuple[str, int]]) -> list[dict]:
    """One job of ``run_ablation``: its (variant, seed) runs in order (a worker process re-reads the spec)."""
    spec = load_spec(experiment)
    return [run_variant(spec, name, budget, Path(runs), Path(out), name in rerun or "all" in rerun, reevaluate, seed)
            for name, seed in pairs]


PAIRED = ("psnr_y", "niqe")
"""The PD plane's axes: the metrics whose paired change against the first row the table states."""


def paired_changes(rows: list[dict]) -> list[str]:
    """Each row's change against the first (the full model) per sampler seed, mean ± std over the seeds, as table lines.

    The seed moves every model's samples alike, so the change between two models under the same seed is far less
    noisy than either row's own spread; only rows sampled under the same several seeds are compared.
    """
    first = rows[0].get("per_sample_seed")
    if not first or len(first) < 2:
        return []
    lines = []
    for row in rows[1:]:
        seeds = row.get("per_sample_seed")
        if not seeds or seeds.keys() != first.keys():
            continue
        cells = []
        for metric in PAIRED:
            changes = [seeds[s][metric] - first[s][metric] for s in first if metric in seeds[s] and metric in first[s]]
            if len(changes) == len(first):
                mean, spread = mean_std(changes)
                cells.append(f"{metric} {mean:+.3f} ± {spread:.3f}")
        if cells:
            lines.append(f"{row['name']} - {rows[0]['name']}, paired over sampler seeds {','.join(first)}: "
                         + ", ".join(cells))
    return lines


def write_ablation_tables(spec: AblationSpec, budget: str, out: Path, runs: Path) -> None:
    """Tables of every variant complete under all seeds, in file order (so parallel ``--only`` runs add up); missing
    ones named. Several seeds: each row is the mean over seeds with their std beside it, plus ``summary.json``."""
    stem = out / table_stem(spec, budget)
    seeds = seeds_of(spec)
    rows, missing, summary = [], [], {}
    for name in spec.variants:
        records = []
        for seed in seeds:
            record = record_path(spec, name, budget, out, seed)
            if _is_complete(record, variant_identity(spec, name, budget, runs, seed)[1]):
                records.append(json.loads(record.read_text()))
        if len(records) < len(seeds):
            missing.append(f"{spec.variants[name].label} ({name}): {len(seeds) - len(records)} of {len(seeds)} "
                           "seed(s) not run yet under this budget")
            continue
        rows.append(records[0] if len(seeds) == 1 else seed_mean(records))
        summary[name] = {metric: [record["means"][metric] for record in records] for metric in rows[-1]["means"]}
    if rows:
        paired = paired_changes(rows) if len(seeds) == 1 else []  # several training seeds: their spread is the noise
        write_tables(rows, stem, title=f"{spec.name} ({budget} budget)", footer=[*missing, *paired])
        if len(seeds) > 1:
            atomic_write_text(stem / "summary.json", json.dumps({"seeds": seeds, "variants": summary}, indent=2))
        print(f"ablation: tables in {stem}.md, .csv, .tex; TensorBoard: tensorboard --logdir {runs / budget}")
