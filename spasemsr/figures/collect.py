"""Figure data: the small files the figures render from, made once with the shipped models (``make figure-data``).

The renderer never runs a model, so everything image-based or re-scored is produced here and committed:

- ``<study>_trials.csv``: every trial of the exported PD sweep, read from its Optuna storage (the front
  files keep only the Pareto-optimal ones), beside its front;
- ``figure_data/pd_reference.json``: the kodak5 suite's methods scored under the sweep's own protocol
  (256-pixel cuts, experiments/pd_sweep.yaml), so they can share the sweep's PD plane;
- ``figure_data/knob_grid/``: crops of one image sampled by the swept model over ``w_spa`` x ``w_sem``,
  with each full sample's PSNR-Y, NIQE and mean change from the neutral setting, over 3 sampler seeds (mean,
  std, and what another seed alone changes: the noise a knob's change is read against);
- ``figure_data/comparison/``: one crop box through LR, bicubic, DRM, ControlNet-SR, SpaSemSR and HR.

The probe study (``study="probe"``) makes only its trials and ``figure_data/probe_knob_grid/``: one probe
image, whole, sampled by the probe sweep's model (texture accuracy recorded too).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.config.knobs import NEUTRAL_KNOBS, knob_overrides
from spasemsr.data.images import read_image, write_image
from spasemsr.evaluation.datasets import EvalImage, bundled_set, load_eval_set
from spasemsr.evaluation.identity import export_config_hash, weights_sha256
from spasemsr.evaluation.methods import load_method
from spasemsr.evaluation.suite import METHODS, RAW, SuiteMethod, run_suite, suite_method
from spasemsr.evaluation.table import mean_std
from spasemsr.figures.inputs import FIGURE_DATA_DIR, FRONT, SWEEP, read_json
from spasemsr.figures.studies import PHOTO, Study, find_study
from spasemsr.metrics.color import quantize_8bit
from spasemsr.metrics.registry import compute
from spasemsr.sweep.front import refuse_other_weights
from spasemsr.utils.atomic import atomic_write_text
from spasemsr.weights.table import TINY

IMAGE = PHOTO.knob.image  # kodim08, houses: roof tiles, shutters and window frames (knob grid and comparison)
SEED = 0
SCORES = ("psnr_y", "niqe")  # the PD plane's two axes, per full image
KNOB_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0)  # the sweep's range of both knobs, neutral 1.0 in the middle
COMPARE_BOX = (240, 112, 400, 272)  # HR pixels: dormer, roof tiles, green and yellow facades
COMPARE_ZOOM = (264, 128, 312, 176)  # HR pixels inside COMPARE_BOX, its upper left: the dormer, drawn magnified
COMPARE_METHODS = ("bicubic", "drm", "realesrgan_x4plus", "realsr_df2k", "controlnet_sr", "spasemsr")  # suite rows


def _image(name: str, data: str = "kodak5") -> EvalImage:
    """One pair of an evaluation set with the evaluation's own LR (kodak5: seeded Real-ESRGAN degradation) and
    what it knows of the image (the probe's keys and true degradation, which guidance must be handed)."""
    for image in load_eval_set(data):
        if image.name == name:
            return image
    raise ValueError(f"{data} has no image {name!r}")


def _crop(image: Tensor, box: tuple[int, int, int, int], scale: int = 1) -> Tensor:
    """(3, H, W) cut to ``box`` given in HR pixels (divided by ``scale`` for an LR image)."""
    x0, y0, x1, y1 = (v // scale for v in box)
    return image[:, y0:y1, x0:x1]


def _scores(sr: Tensor, image: EvalImage, scale: int, names: tuple[str, ...] = SCORES) -> dict[str, float]:
    """``names`` (default PSNR-Y and NIQE) of one full 8-bit SR image under the protocol's variants."""
    return {name: float(compute(name, sr[None].float(), hr=image.hr[None], lr=image.lr[None], scale=scale)[0])
            for name in names}


def _mean_std(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Each score's mean over the seeds, and with several seeds its std (n - 1) as ``<score>_std``."""
    if len(per_seed) == 1:
        return dict(per_seed[0])
    out = {}
    for name in per_seed[0]:
        out[name], out[f"{name}_std"] = mean_std([scores[name] for scores in per_seed])
    return out


def _write_json(path: Path, record: dict) -> Path:
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def export_trials(results: Path, study: Study = PHOTO) -> Path:
    """The study's trials CSV from the storage its exported front names; refused if that front is stale."""
    import optuna

    from spasemsr.sweep.front import trial_rows, write_trials_csv
    from spasemsr.sweep.spec import Liveness
    from spasemsr.sweep.storage import open_storage

    front_file = study.front.path(results)
    front = read_json(results, study.front)
    url, name = front["storage"], front["study"]
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(f"{url.removeprefix('sqlite:///')}: no sweep storage (the study {name!r} that "
                                f"{front_file} was exported from); run `{study.front.producer}` first")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = trial_rows(optuna.load_study(study_name=name, storage=open_storage(url, Liveness())))
    complete = sum(row["state"] == "COMPLETE" for row in rows)
    if complete != front["complete_trials"]:
        raise ValueError(f"study {name!r} in {url} has {complete} complete trials, but {front_file} was "
                         f"exported at {front['complete_trials']}; export it again: spasemsr sweep --export")
    path = study.trials.path(results)
    write_trials_csv(rows, path)
    return path


def reference_points(results: Path, experiment: str | Path, weights: Path = TINY, device: str = "cpu") -> Path:
    """Every kodak5 suite method scored on the sweep's evaluation set and seed, means into pd_reference.json."""
    from spasemsr.sweep.spec import load_sweep_spec

    spec = load_sweep_spec(experiment)
    front = read_json(results, FRONT)
    refuse_other_weights(front, FRONT.path(results), Path(spec.model),
                         f"sweep it again (`{SWEEP}`) before collecting figure data")
    if spec.eval.knobs and knob_overrides(spec.eval.knobs) != RAW:
        raise ValueError(f"{experiment}: eval.knobs {spec.eval.knobs} are not the suite's raw knobs {RAW}; the "
                         "reference rows would not share the sweep's sampler")
    dataset = spec.eval.dataset(scale=4)
    with tempfile.TemporaryDirectory() as tmp:  # sr/ and tb/ of this side run are not kept
        rows = run_suite(tmp, weights=weights, sets={"pd_sweep_eval": dataset}, device=device)["pd_sweep_eval"]
    keep = ("method", "ckpt", "config", "knobs", "dataset", "seed")
    record = {"about": f"kodak5 suite methods under the evaluation of {experiment} (the PD sweep's set, crop and "
                       "seed); the sweep fixes the raw sampler, so its trials compare with the (raw) rows",
              "sweep": {"study": front["study"], "ckpt": front["ckpt"], "eval": asdict(spec.eval)},
              "rows": [{"name": row["name"], "means": row["means"], "record": {k: row["record"][k] for k in keep}}
                       for row in rows]}
    return _write_json(results / FIGURE_DATA_DIR / "pd_reference.json", record)


def knob_grid(results: Path, experiment: str | Path, device: str = "cpu", study: Study = PHOTO) -> Path:
    """Samples of the study's image over ``w_spa`` x ``w_sem`` by the sweep's model; crops, scores, changes to JSON.

    Under the sweep's own sampler (its ``eval.knobs`` and seed: raw, no colour fix nor back-projection, for the
    photo sweep) because that is the sampler the PD sweep varies these knobs under, and because both
    corrections pull every sample towards the LR and hide most of the change.
    """
    from spasemsr.sweep.spec import load_sweep_spec
    from spasemsr.weights.exports import load_pipeline

    spec = load_sweep_spec(experiment)
    model, box, scores = Path(spec.model), study.knob.box, study.knob.scores
    pipeline = load_pipeline(model, device=device)
    image = _image(study.knob.image, study.knob.data)
    prepared = pipeline.prepare(image.lr[None].to(device), known=image.known)
    seeds = study.knob.seeds
    base = replace(pipeline.sampler, **knob_overrides(spec.eval.knobs), seed=seeds[0])
    crops = study.crops()
    samples: dict[tuple[float, float, int], Tensor] = {}
    cells = []
    for w_spa in KNOB_VALUES:
        for w_sem in KNOB_VALUES:
            for seed in seeds:
                knobs = replace(base, w_spa=w_spa, w_sem=w_sem, seed=seed)
                sr = pipeline.sample(prepared, torch.Generator(device).manual_seed(seed), knobs)
                samples[w_spa, w_sem, seed] = quantize_8bit(sr[0].cpu())
            file = f"{crops}/spa{w_spa:.2f}_sem{w_sem:.2f}.png"
            write_image(_crop(samples[w_spa, w_sem, seeds[0]], box).float(), results / FIGURE_DATA_DIR / file)
            per_seed = [_scores(samples[w_spa, w_sem, seed], image, pipeline.scale, scores) for seed in seeds]
            cells.append({"w_spa": w_spa, "w_sem": w_sem, "file": file, **_mean_std(per_seed)})
            print(f"knob grid: w_spa={w_spa} w_sem={w_sem}: " + ", ".join(f"{k}={cells[-1][k]:.4g}" for k in scores))
    neutral = NEUTRAL_KNOBS["w_spa"], NEUTRAL_KNOBS["w_sem"]

    def change(a: Tensor, b: Tensor) -> float:
        return float((a - b).abs().mean() * 255)

    for cell in cells:  # each seed against the neutral sample of the same seed: the knob's change, not the seed's
        cell["mean_abs_change"] = sum(change(samples[cell["w_spa"], cell["w_sem"], seed], samples[(*neutral, seed)])
                                      for seed in seeds) / len(seeds)
    seed_change = [change(samples[(*neutral, seed)], samples[(*neutral, seeds[0])]) for seed in seeds[1:]]
    write_image(_crop(image.hr, box), results / FIGURE_DATA_DIR / crops / "hr.png")
    record = {"image": image.name, "dataset": load_eval_set(study.knob.data).record(), "box": list(box),
              "model": str(model), "ckpt": weights_sha256(model), "config": export_config_hash(model),
              "seed": seeds[0], "seeds": list(seeds), "knobs": asdict(base), "w_spa": list(KNOB_VALUES),
              "w_sem": list(KNOB_VALUES), "hr": f"{crops}/hr.png",
              "seed_change": sum(seed_change) / len(seed_change) if seed_change else None,
              "scores": f"{', '.join(scores)}: each full 8-bit sample under the protocol, mean over the seeds (<score>"
                        "_std: their std); mean_abs_change: mean |sample - sample at w_spa=w_sem=1| of the same seed "
                        "over the full image, in 8-bit levels, mean over the seeds; seed_change: the same mean between "
                        "the neutral samples of another seed and of the first (what the seed alone changes)",
              "cells": cells}
    return _write_json(study.knob_grid.path(results), record)


def _suite_sr(entry: SuiteMethod, results: Path, image: EvalImage, weights: Path, device: str) -> tuple[Tensor, dict]:
    """The method's SR of ``image``: the eval's saved image when it is this checkpoint's, else sampled afresh."""
    path = weights / entry.weights if entry.weights else None
    method = suite_method(entry.folder, entry.kind, path)
    runner = load_method(method, 4, entry.knobs, SEED, device)
    ckpt = runner.ckpt
    run = results / "kodak5_realesrgan" / entry.folder
    saved = run / "sr" / f"{image.name}.png"
    if saved.is_file() and (run / "metrics.json").is_file():
        record = json.loads((run / "metrics.json").read_text())["record"]
        if record["ckpt"] == ckpt and record["dataset"]["hash"] == bundled_set("kodak5", "realesrgan").hash:
            return read_image(saved).double(), {"source": str(saved), "ckpt": ckpt, "knobs": record["knobs"]}
    with torch.no_grad():
        sr = runner.upscale(image.lr[None].to(device), image.known)[0].cpu()
    return quantize_8bit(sr), {"source": f"sampled by `make figure-data` ({method})", "ckpt": ckpt,
                               "knobs": runner.knobs}


def comparison(results: Path, weights: Path = TINY, device: str = "cpu") -> Path:
    """``COMPARE_BOX`` of ``IMAGE`` from LR, each shipped method and HR, with each full image's scores."""
    image = _image(IMAGE)
    folder = results / FIGURE_DATA_DIR / "comparison"
    write_image(_crop(image.lr, COMPARE_BOX, 4), folder / "lr.png")
    write_image(_crop(image.hr, COMPARE_BOX), folder / "hr.png")
    panels = [{"key": "lr", "label": "LR", "file": "comparison/lr.png", "scale": 4}]
    for entry in (m for key in COMPARE_METHODS for m in METHODS if m.folder == key):
        sr, source = _suite_sr(entry, results, image, weights, device)
        write_image(_crop(sr, COMPARE_BOX).float(), folder / f"{entry.folder}.png")
        panels.append({"key": entry.folder, "label": entry.label, "file": f"comparison/{entry.folder}.png", "scale": 1,
                       **_scores(sr, image, 4), **source})
    panels.append({"key": "hr", "label": "HR", "file": "comparison/hr.png", "scale": 1})
    record = {"image": IMAGE, "dataset": bundled_set("kodak5", "realesrgan").record(), "box": list(COMPARE_BOX),
              "zoom": list(COMPARE_ZOOM), "seed": SEED,
              "scores": "psnr_y, niqe of each method's full 8-bit SR of the image under the protocol",
              "panels": panels}
    return _write_json(results / FIGURE_DATA_DIR / "comparison.json", record)


def collect(results: str | Path, experiment: str | Path | None = None, weights: str | Path = TINY,
            device: str = "cpu", study: str | Study = "photo") -> list[Path]:
    """Every figure-data file of the study, in order of cost (``experiment``: default the study's sweep file)."""
    study = find_study(study)
    results, weights, experiment = Path(results), Path(weights), experiment or study.sweep
    written = [export_trials(results, study)]
    if "comparison" in study.figures:
        written.append(comparison(results, weights, device))
    if study.reference is not None:
        written.append(reference_points(results, experiment, weights, device))
    written.append(knob_grid(results, experiment, device, study))
    return written
