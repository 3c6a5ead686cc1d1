"""Run sweep workers against one study, export its Pareto front and presets, compare models by hypervolume.

A study is a plain Optuna study in the storage a URL names (``storage.py``): workers anywhere that reach
it share its trials. ``n_trials`` is the study's total of complete trials; a worker stops once the study
holds that many (workers finishing together may add up to K-1 more), so rerunning a killed sweep
tops it up: complete trials are kept and the killed one is re-run with the same knobs.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from dataclasses import asdict, replace
from pathlib import Path

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from spasemsr.config.compose import ConfigError
from spasemsr.evaluation.identity import backbone_sha256, weights_sha256
from spasemsr.evaluation.table import mean_std
from spasemsr.sweep.front import front_rows, hypervolume_2d, presets
from spasemsr.sweep.objective import SweepObjective, directions
from spasemsr.sweep.spec import SweepSpec, load_sweep_spec
from spasemsr.sweep.storage import open_storage, requeue_dead_local_trials
from spasemsr.utils.atomic import atomic_path, atomic_write_text
from spasemsr.utils.cores import threads_per_worker, use_threads
from spasemsr.utils.seeding import stream_seed


def make_sampler(spec: SweepSpec, worker_index: int = 0, history: int = 0) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the file names (NSGA-II by default), seeded by the study's state.

    A fresh study (``history`` = 0 trials) seeds with ``sampler.seed + worker_index``; a study that already
    holds ``history`` trials seeds with a hash of (seed, worker, history). A rerun, a top-up or a resumed
    worker therefore continues the search instead of replaying the proposals of the first run from the same
    random state (which re-proposed the settings the study already had). Workers sharing a study need
    different indices: equal seeds at equal history propose equal knobs.
    """
    s = spec.sampler
    seed = s.seed + worker_index if history == 0 else stream_seed(s.seed, "worker", worker_index, history) % 2**32
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=s.population_size, seed=seed)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def study_identity(spec: SweepSpec, objectives: tuple[str, str], model: str) -> dict:
    """What a study's trials are comparable under: objectives, checkpoint, search space, images, crop, seeds."""
    return {"objectives": list(objectives), "ckpt": weights_sha256(Path(model)),
            "backbone": backbone_sha256(Path(model)), "model": model,
            "space": {name: asdict(dim) for name, dim in sorted(spec.space.items())},
            "eval": {"data": spec.eval.data, "lr": spec.eval.lr, "images": spec.eval.images, "crop": spec.eval.crop,
                     "knobs": dict(sorted(spec.eval.knobs.items()))},
            "seed": spec.seed}


def open_study(spec: SweepSpec, storage: str, name: str, objectives: tuple[str, str], model: str,
               worker_index: int = 0) -> optuna.Study:
    """Create or load the study; a loaded one must have been created for the same ``study_identity``."""
    study = optuna.create_study(storage=open_storage(storage, spec.liveness), study_name=name,
                                directions=directions(objectives), load_if_exists=True)
    study.sampler = make_sampler(spec, worker_index, len(study.get_trials(deepcopy=False)))
    differences = []
    for key, value in study_identity(spec, objectives, model).items():
        known = study.user_attrs.get(key)
        if known is None:
            study.set_user_attr(key, value)
        elif known != value:
            differences.append(f"{key}: study {known!r}, this sweep {value!r}")
    if differences:
        raise ConfigError(f"study {name!r} in {storage} was created for another sweep ({'; '.join(differences)}); "
                          "its trials are not comparable with this one's: start another with --study NEW")
    return study


def completed(study: optuna.Study) -> int:
    """Number of complete trials."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_worker(experiment: str, storage: str, name: str, n_trials: int, model: str | None = None,
               device: str = "cpu", tensorboard: str | None = None, worker_index: int = 0) -> int:
    """One worker: load the model and conditions once, then run trials until the study has ``n_trials``."""
    spec = load_sweep_spec(experiment)
    if model:
        spec.model = model
    open_storage(storage, spec.liveness)  # a bad URL or a damaged database fails before the model loads
    objective = SweepObjective(spec, device, Path(tensorboard) if tensorboard else None)
    return _run_trials(spec, storage, name, n_trials, objective, worker_index)


def _run_trials(spec: SweepSpec, storage: str, name: str, n_trials: int, objective: SweepObjective,
                worker_index: int = 0) -> int:
    """Top the study up to ``n_trials`` complete trials with an objective already loaded; its complete count."""
    study = open_study(spec, storage, name, objective.objectives, spec.model, worker_index)
    requeued = requeue_dead_local_trials(study, spec.liveness)
    if requeued:
        print(f"sweep {name}: trials {requeued} of dead workers failed and queued again")
    if completed(study) < n_trials:
        study.optimize(objective, callbacks=[MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE,))])
    return completed(study)


def _worker_process(threads: int, *args) -> None:
    """A spawned worker: its share of the cores, then ``run_worker``."""
    use_threads(threads)
    run_worker(*args)


def run_sweep(experiment: str, storage: str, name: str, n_trials: int, workers: int = 1, model: str | None = None,
              device: str = "cpu", tensorboard: str | None = None, first_index: int = 0) -> int:
    """``workers`` processes (spawned; 1 runs here) against one study; returns its number of complete trials.

    Worker ``i`` seeds its sampler with ``sampler.seed + first_index + i``; give workers on other machines
    other ``first_index`` values (``--worker-index``).
    """
    args = (experiment, storage, name, n_trials, model, device, tensorboard)
    if workers <= 1:
        return run_worker(*args, first_index)
    liveness = load_sweep_spec(experiment).liveness
    open_storage(storage, liveness)  # create the tables once, before workers race
    context = multiprocessing.get_context("spawn")
    threads = threads_per_worker(workers)
    processes = [context.Process(target=_worker_process, args=(threads, *args, first_index + i))
                 for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RuntimeError(f"sweep {name}: {len(failed)} of {workers} workers exited with {failed}")
    return completed(optuna.load_study(study_name=name, storage=open_storage(storage, liveness)))


def export_front(storage: str, name: str, out: str | Path, experiment: str) -> dict:
    """Write ``<out>/<study>_front.csv`` and ``.json`` (front, presets, study identity); return the JSON."""
    spec = load_sweep_spec(experiment)
    study = optuna.load_study(study_name=name, storage=open_storage(storage, spec.liveness))
    objectives = study.user_attrs["objectives"]
    rows = front_rows(study)
    if not rows:
        raise ValueError(f"study {name!r} has no complete trial to export")
    record = {"study": name, "storage": storage, "model": study.user_attrs["model"],
              "ckpt": study.user_attrs["ckpt"], "backbone": study.user_attrs.get("backbone"),
              "objectives": objectives, "complete_trials": completed(study),
              "front": rows, "presets": presets(rows, objectives)}
    out = Path(out)
    atomic_write_text(out / f"{name}_front.json", json.dumps(record, indent=2))
    knobs = sorted({k for row in rows for k in row["knobs"]})
    metrics = sorted({k for row in rows for k in row["metrics"]})
    with atomic_path(out / f"{name}_front.csv") as tmp, tmp.open("w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["trial", *knobs, *metrics])
        for row in rows:
            writer.writerow([row["trial"], *(row["knobs"].get(k, "") for k in knobs),
                             *(repr(row["metrics"][k]) if k in row["metrics"] else "" for k in metrics)])
    return record


def compare_models(experiment: str, storage: str, name: str, n_trials: int, out: str | Path,
                   device: str = "cpu") -> dict:
    """The same sweep (same trials budget, seed, set) on every ``compare`` model; hypervolumes into a summary.

    With ``compare_seeds`` each model's front is also re-scored under those sampler seeds: ``hypervolume_seeds``
    holds its hypervolume per seed (the sweep's first), ``hypervolume_mean`` and ``hypervolume_std`` (n - 1) over them.
    """
    spec = load_sweep_spec(experiment)
    if not spec.compare:
        raise ConfigError(f"{experiment}: `compare` names no models")
    reference = tuple(spec.hv_reference)
    summary: dict = {"trials_per_model": n_trials, "reference_point": list(reference), "hypervolume": {},
                     "models": {}}
    open_storage(storage, spec.liveness)  # a bad URL or a damaged database fails before any model loads
    for key, model in spec.compare.items():
        study_name, model_spec = f"{name}-{key}", replace(spec, model=model)
        objective = SweepObjective(model_spec, device)  # loaded once: for the trials and the re-scoring
        _run_trials(model_spec, storage, study_name, n_trials, objective)
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage, spec.liveness))
        rows = front_rows(study)
        objectives = study.user_attrs["objectives"]
        summary["objectives"] = objectives
        summary["hypervolume"][key] = hypervolume_2d(rows, objectives, reference)
        if spec.compare_seeds:
            volumes = [summary["hypervolume"][key]]
            for seed in spec.compare_seeds:
                metrics = [objective.score(row["knobs"], seed) for row in rows]
                volumes.append(hypervolume_2d([{"values": [m[metric] for metric in objectives]} for m in metrics],
                                              objectives, reference))
                print(f"compare {key}: front of {len(rows)} re-scored under seed {seed}: hypervolume {volumes[-1]:.4g}")
            summary.setdefault("hypervolume_seeds", {})[key] = volumes
            summary.setdefault("hypervolume_mean", {})[key], summary.setdefault("hypervolume_std", {})[key] = (
                mean_std(volumes))
        summary["models"][key] = {"model": model, "ckpt": study.user_attrs["ckpt"], "study": study_name,
                                  "complete_trials": completed(study), "front_size": len(rows)}
    summary["eval"] = {"data": spec.eval.data, "lr": spec.eval.lr, "images": spec.eval.images, "crop": spec.eval.crop,
                       "fixed_knobs": spec.eval.knobs, "space": sorted(spec.space), "seed": spec.seed,
                       "seeds": [spec.seed, *spec.compare_seeds], "sampler": spec.sampler.name}
    atomic_write_text(Path(out) / "sweep_summary.json", json.dumps(summary, indent=2))
    return summary
