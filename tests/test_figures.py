"""Paper figures: rendered from result files alone, every figure as PDF and PNG, inputs checked and named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from matplotlib.legend import Legend
from PIL import Image

from spasemsr.cli import main
from spasemsr.evaluation.datasets import bundled_set
from spasemsr.evaluation.identity import weights_sha256
from spasemsr.evaluation.table import write_tables
from spasemsr.figures import ablation_bars, collect, knob_grid, pd_plane, render
from spasemsr.figures.collect import export_trials
from spasemsr.figures.inputs import MissingInputs
from spasemsr.figures.pd_plane import split_range, staircase
from spasemsr.figures.studies import PHOTO, PROBE
from spasemsr.sweep.front import front_rows, presets, trial_rows, write_trials_csv

REPO = Path(__file__).resolve().parents[1]
STEMS = ("pd_plane", "knob_grid", "comparison", "ablation_bars")
IMAGES = ("a", "b", "c")
SMOKE_TRIALS = 9  # complete trials of the smoke study; one failed trial comes on top


def _row(name: str, psnr: float, niqe: float, variant: str | None = None) -> dict:
    """A metrics.json-shaped result whose per-image values average to (psnr, niqe)."""
    per_image = {image: {"psnr_y": psnr + d, "niqe": niqe - d / 10} for image, d in zip(IMAGES, (-1, 0, 1),
                                                                                          strict=True)}
    row = {"name": name, "means": {"psnr_y": psnr, "niqe": niqe}, "per_image": per_image, "unavailable": {},
           "protocol": {"metrics": {"psnr_y": {"variant": "psnr_y: smoke"}, "niqe": {"variant": "niqe: smoke"}}},
           "record": {"method": name, "ckpt": "0" * 64, "config": None, "knobs": {}, "seed": 0,
                      "dataset": {"name": "smoke", "lr": "realesrgan", "hash": "1" * 64, "images": len(IMAGES)}}}
    if variant:
        row["ablation"] = {"variant": variant}
    return row


def smoke_study(storage: str | None = None, name: str = "smoke") -> optuna.Study:
    """A PD study of SMOKE_TRIALS known points (psnr_y up, niqe down) plus one failed trial, with the sweep's attrs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
    for key, value in {"objectives": ["psnr_y", "niqe"], "ckpt": "c" * 64, "model": "weights/smoke"}.items():
        study.set_user_attr(key, value)
    distributions = {"w_spa": optuna.distributions.FloatDistribution(0.0, 2.0)}
    for i in range(SMOKE_TRIALS):  # a convex trade-off (every even trial) and dominated points above it
        psnr, niqe = 19.0 + 0.25 * i, 6.5 + 0.03 * i * i + (0.4 if i % 2 else 0.0)
        study.add_trial(optuna.trial.create_trial(
            params={"w_spa": i / 4}, distributions=distributions, values=[psnr, niqe],
            user_attrs={"metrics": {"psnr_y": psnr, "niqe": niqe, "ssim_y": 0.5}}))
    study.add_trial(optuna.trial.create_trial(params={"w_spa": 2.0}, distributions=distributions,
                                              state=optuna.trial.TrialState.FAIL))
    return study


def _png(path: Path, size: int | tuple[int, int], seed: int) -> np.ndarray:
    """A random RGB PNG of ``size`` (side, or (height, width)); returns its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (size, size) if isinstance(size, int) else size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def write_smoke_results(root: Path, study: optuna.Study | None = None) -> Path:
    """A results folder shaped like experiments/results, with every file the figures read, from known numbers."""
    study = study or smoke_study()
    root.mkdir(parents=True, exist_ok=True)
    suite = [_row("bicubic", 23.0, 10.8), _row("DRM", 22.8, 10.9), _row("ControlNet-SR (raw)", 17.4, 7.3),
             _row("ControlNet-SR", 22.7, 6.9), _row("SpaSemSR (raw)", 17.9, 7.3), _row("SpaSemSR", 22.7, 6.7)]
    write_tables(suite, root / "kodak5_realesrgan", "smoke")
    write_tables(suite, root / "kodak5_bicubic", "smoke")
    ablation = [_row("SpaSemSR (full)", 17.6, 7.16, "full"), _row("w/o E_sem", 17.0, 7.25, "wo_sem"),
                _row("fusion = sum", 18.1, 7.08, "fusion_sum")]
    write_tables(ablation, root / "ablation", "smoke ablation")
    for row in ablation:
        (root / "ablation").mkdir(exist_ok=True)
        (root / "ablation" / f"{row['ablation']['variant']}.json").write_text(json.dumps(row))
    front = front_rows(study)
    record = {"study": "pd_sweep", "storage": "sqlite:///nowhere.db", "model": "weights/smoke", "ckpt": "c" * 64,
              "objectives": ["psnr_y", "niqe"], "complete_trials": SMOKE_TRIALS, "front": front,
              "presets": presets(front, ["psnr_y", "niqe"])}
    (root / "pd_sweep_front.json").write_text(json.dumps(record))
    write_trials_csv(trial_rows(study), root / "pd_sweep_trials.csv")
    data = root / "figure_data"
    data.mkdir(exist_ok=True)
    (data / "pd_reference.json").write_text(json.dumps({
        "sweep": {"study": "pd_sweep", "ckpt": "c" * 64, "eval": {"crop": 256}},
        "rows": [{"name": r["name"], "means": {"psnr_y": r["means"]["psnr_y"] - 1, "niqe": r["means"]["niqe"]}}
                 for r in suite]}))
    values = [0.0, 1.0]
    cells = [{"w_spa": a, "w_sem": b, "file": f"knob_grid/{a}_{b}.png", "psnr_y": 17.0 + a, "niqe": 7.0 - b,
              "mean_abs_change": a + b} for a in values for b in values]
    for index, cell in enumerate(cells):
        _png(data / cell["file"], 16, index)
    _png(data / "knob_grid" / "hr.png", 16, 99)
    (data / "knob_grid.json").write_text(json.dumps({
        "image": "smoke", "box": [0, 0, 16, 16], "ckpt": "c" * 64, "seed": 0, "w_spa": values, "w_sem": values,
        "knobs": {"steps": 2, "color_fix": "none", "backproject": 0}, "hr": "knob_grid/hr.png", "cells": cells}))
    panels = [{"key": "lr", "label": "LR", "file": "comparison/lr.png", "scale": 4}]
    panels += [{"key": k, "label": k, "file": f"comparison/{k}.png", "scale": 1, "psnr_y": 20.0, "niqe": 7.0}
               for k in ("bicubic", "drm", "controlnet_sr", "spasemsr")]
    panels.append({"key": "hr", "label": "HR", "file": "comparison/hr.png", "scale": 1})
    for index, panel in enumerate(panels):
        _png(data / panel["file"], 8 if panel["key"] == "lr" else 32, index)
    (data / "comparison.json").write_text(json.dumps({"image": "smoke", "box": [100, 100, 132, 132],
                                                      "zoom": [104, 104, 112, 112], "panels": panels}))
    return root


@pytest.fixture
def smoke(tmp_path) -> Path:
    return write_smoke_results(tmp_path / "results")


def test_every_figure_is_written_as_pdf_and_png_and_the_tables_as_booktabs(smoke, tmp_path):
    out = tmp_path / "figures"
    written = render.render(smoke, out)
    for stem in STEMS:
        pdf, png = out / f"{stem}.pdf", out / f"{stem}.png"
        assert pdf in written and png in written
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000
    tables = sorted(p.name for p in (out / "tables").iterdir())
    assert tables == ["ablation.tex", "kodak5_bicubic.tex", "kodak5_realesrgan.tex", "pd_presets.tex"]
    presets_tex = (out / "tables" / "pd_presets.tex").read_text()
    assert r"\toprule" in presets_tex and r"\bottomrule" in presets_tex and "balance (trial" in presets_tex
    assert (out / "tables" / "ablation.tex").read_text() == (smoke / "ablation.tex").read_text()
    assert not [p for p in out.rglob(".*")], "no temporary files left behind"


def test_rendering_twice_gives_identical_files(smoke, tmp_path):
    first = render.render(smoke, tmp_path / "one", only=["pd_plane"])
    second = render.render(smoke, tmp_path / "two", only=["pd_plane"])
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two renders (dates in the file?)"


def _gid(fig, gid: str) -> list:
    return [artist for ax in fig.axes for artist in (*ax.collections, *ax.lines, *ax.texts)
            if artist.get_gid() == gid]


def test_pd_plane_draws_every_complete_trial_and_highlights_the_front(smoke):
    fig = pd_plane.figure(smoke)
    clouds = _gid(fig, "trials")
    assert clouds and all(len(cloud.get_offsets()) == SMOKE_TRIALS for cloud in clouds)  # the failed one is not
    front = [tuple(r["metrics"][m] for m in ("psnr_y", "niqe")) for r in json.loads(
        (smoke / "pd_sweep_front.json").read_text())["front"]]
    assert 2 <= len(front) < SMOKE_TRIALS
    for line in _gid(fig, "front"):
        vertices = set(zip(line.get_xdata(), line.get_ydata(), strict=True))
        assert len(line.get_xdata()) == 2 * len(front) - 1 and set(front) <= vertices
        assert line.get_linewidth() > 1.0 and line.get_label() == f"Pareto front ({len(front)})"
    assert sorted(t.get_text() for t in _gid(fig, "preset label")) == ["balance", "fidelity", "perception"]
    legends = [a for ax in fig.axes for a in (ax.get_legend(), *ax.artists) if isinstance(a, Legend)]
    legend_labels = {t.get_text() for legend in legends for t in legend.get_texts()}
    assert {"bicubic", "DRM", "ControlNet-SR", "SpaSemSR", "ablation variants (3)", "w/o E_sem"} <= legend_labels
    assert any("lower is better" in ax.get_ylabel() for ax in fig.axes)


def test_committed_pd_plane_shows_every_trial_of_the_committed_sweep():
    results = REPO / "experiments" / "results"
    complete = sum(row.split(",")[1] == "COMPLETE" for row in
                   (results / "pd_sweep_trials.csv").read_text().splitlines()[1:])
    fig = pd_plane.figure(results)
    assert complete >= 1 and {len(c.get_offsets()) for c in _gid(fig, "trials")} == {complete}


def test_staircase_steps_through_the_front_in_the_metrics_directions():
    points = [(21.0, 7.5), (20.0, 7.0), (22.0, 8.0)]  # psnr up, niqe down
    assert staircase(points, ["psnr_y", "niqe"]) == [(22.0, 8.0), (21.0, 8.0), (21.0, 7.5), (20.0, 7.5), (20.0, 7.0)]


def test_split_range_breaks_the_axis_only_across_a_wide_gap():
    assert len(split_range([7.0, 7.2, 7.5, 10.4, 10.5])) == 2
    assert len(split_range([7.0, 7.2, 7.5, 7.9])) == 1
    (low, high), = split_range([1.0, 2.0])
    assert low < 1.0 and high > 2.0


def test_ablation_bars_measure_each_variant_against_the_full_model(smoke):
    names, means, images = ablation_bars.deltas(ablation_bars.load_ablation(smoke), "psnr_y")
    assert names == ["w/o E_sem", "fusion = sum"]
    assert means == pytest.approx([-0.6, 0.5])
    assert images == [pytest.approx([-0.6] * 3), pytest.approx([0.5] * 3)]  # paired per image


def test_committed_ablation_bars_pair_each_sampler_seed_of_each_model():
    results = REPO / "experiments" / "results"
    rows = ablation_bars.load_ablation(results)  # one model per variant, each sampled under seeds 0, 1, 2
    assert {row["unit"] for row in rows} == {"sampler seed"}
    names, _, units = ablation_bars.deltas(rows, "psnr_y")
    full = json.loads((results / "ablation" / "full.json").read_text())["per_sample_seed"]
    baseline = json.loads((results / "ablation" / "baseline.json").read_text())
    assert len(full) == 3 and units[names.index(baseline["name"])] == pytest.approx(
        [baseline["per_sample_seed"][seed]["psnr_y"] - full[seed]["psnr_y"] for seed in full])


def test_a_missing_file_is_named_with_its_command_and_nothing_is_written(smoke, tmp_path):
    (smoke / "pd_sweep_trials.csv").unlink()
    out = tmp_path / "figures"
    with pytest.raises(MissingInputs) as info:
        render.render(smoke, out)
    assert str(smoke / "pd_sweep_trials.csv") in str(info.value) and "make figure-data" in str(info.value)
    assert not out.exists()


def test_skip_missing_renders_the_rest_and_says_what_it_skipped(smoke, tmp_path, capsys):
    (smoke / "ablation.csv").unlink()
    out = tmp_path / "figures"
    written = render.render(smoke, out, skip_missing=True)
    assert {p.stem for p in written} == {"knob_grid", "comparison", "kodak5_realesrgan", "kodak5_bicubic",
                                         "ablation", "pd_presets"}  # the tables need only the .tex files
    err = capsys.readouterr().err
    assert "skipped pd_plane" in err and "skipped ablation_bars" in err and "make ablate" in err


def test_a_stale_trials_file_is_refused(smoke):
    front = json.loads((smoke / "pd_sweep_front.json").read_text())
    front["complete_trials"] += 1
    (smoke / "pd_sweep_front.json").write_text(json.dumps(front))
    with pytest.raises(ValueError, match="make figure-data"):
        pd_plane.figure(smoke)


def test_cli_renders_in_process_and_reports_missing_files(smoke, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["figures", "--from", str(smoke), "--out", str(out), "--only", "ablation_bars,tables"]) == 0
    assert (out / "ablation_bars.pdf").is_file() and not (out / "pd_plane.pdf").exists()
    assert str(out / "ablation_bars.png") in capsys.readouterr().out
    (smoke / "figure_data" / "comparison.json").unlink()
    assert main(["figures", "--from", str(smoke), "--out", str(out), "--only", "comparison"]) == 2
    assert "comparison.json" in capsys.readouterr().err
    assert main(["figures", "--from", str(smoke), "--out", str(out), "--only", "histogram"]) == 2


def test_export_trials_writes_every_trial_and_refuses_a_stale_front(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = smoke_study(storage, "pd_sweep")
    results = write_smoke_results(tmp_path / "results", study)
    front = json.loads((results / "pd_sweep_front.json").read_text())
    (results / "pd_sweep_trials.csv").unlink()
    (results / "pd_sweep_front.json").write_text(json.dumps({**front, "storage": storage}))
    rows = (export_trials(results)).read_text().splitlines()
    assert rows[0].split(",")[:3] == ["trial", "state", "w_spa"] and len(rows) == 1 + SMOKE_TRIALS + 1
    assert rows[-1].startswith(f"{SMOKE_TRIALS},FAIL,2.0,") and rows[-1].endswith(",,")
    assert math.isclose(float(rows[1].split(",")[4]), 19.0)  # columns: trial, state, w_spa, niqe, psnr_y, ssim_y
    study.add_trial(study.trials[0])  # the study grew after its front was exported
    with pytest.raises(ValueError, match="export it again"):
        export_trials(results)
    (results / "pd_sweep_front.json").write_text(json.dumps({**front, "storage": "sqlite:///absent/sweep.db"}))
    with pytest.raises(FileNotFoundError, match="absent/sweep.db"):
        export_trials(results)


def test_comparison_crops_the_eval_images_of_the_shipped_checkpoints_and_samples_the_rest(tmp_path):
    results, weights = tmp_path / "results", REPO / "weights" / "tiny"
    dataset_hash = bundled_set("kodak5", "realesrgan").hash
    saved = {}
    for index, (folder, ckpt) in enumerate((("bicubic", "an older run"), ("drm", weights_sha256(weights / "drm/drm")),
                                            ("controlnet_sr", weights_sha256(weights / "controlnet_sr")),
                                            ("spasemsr", weights_sha256(weights / "spasemsr")))):
        run = results / "kodak5_realesrgan" / folder
        saved[folder] = _png(run / "sr" / f"{collect.IMAGE}.png", (384, 512), index)
        (run / "metrics.json").write_text(json.dumps({"record": {"ckpt": ckpt, "knobs": None,
                                                                 "dataset": {"hash": dataset_hash}}}))
    record = json.loads(collect.comparison(results, weights).read_text())
    panels = {panel["key"]: panel for panel in record["panels"]}
    assert list(panels) == ["lr", "bicubic", "drm", "realesrgan_x4plus", "realsr_df2k", "controlnet_sr", "spasemsr",
                            "hr"]
    for key in ("bicubic", "realesrgan_x4plus", "realsr_df2k"):  # a stale saved image, or none
        assert panels[key]["source"].startswith("sampled by `make figure-data`")
    x0, y0, x1, y1 = record["box"]
    for key in ("drm", "controlnet_sr", "spasemsr"):
        assert panels[key]["source"].endswith(f"{key}/sr/{collect.IMAGE}.png")
        crop = np.asarray(Image.open(results / "figure_data" / panels[key]["file"]))
        assert np.array_equal(crop, saved[key][y0:y1, x0:x1])
        assert math.isfinite(panels[key]["psnr_y"]) and math.isfinite(panels[key]["niqe"])
    with Image.open(results / "figure_data" / panels["lr"]["file"]) as lr:
        assert lr.size == ((x1 - x0) // 4, (y1 - y0) // 4)
    x, y, right, bottom = record["zoom"]
    assert x0 <= x < right <= x1 and y0 <= y < bottom <= y1


# The guidance probe (issue #19): its own sweep export, a three-seed ablation table and records, a knob grid.

PROBE_SEEDS = (0, 1, 2)
PROBE_VARIANTS = (("SpaSemSR (full)", "full", 0.80), ("w/o spatial grounding", "wo_spatial", 0.45),
                  ("broken spatial path", "broken_boxes", 0.40))
PROBE_STEMS = ("pd_plane", "knob_grid", "ablation_bars")


def _probe_record(label: str, variant: str, index: int, seed: int, acc: float) -> dict:
    """One seed's record of one probe variant: every metric moves with the seed, by more for later variants."""
    wobble = (seed - 1) * 0.01 * (index + 1)
    row = _row(label, 20.0 - index * 0.2 + 10 * wobble, 7.0 + index * 0.1 + wobble)
    row["means"]["texture_acc"] = acc + wobble
    for scores in row["per_image"].values():
        scores["texture_acc"] = acc + wobble
    row["record"] = {**row["record"], "seed": seed, "ckpt": "c" * 64 if index == 0 and seed == 0 else f"{index}{seed}"
                     * 32, "dataset": {**row["record"]["dataset"], "name": "probe", "lr": "probe"}}
    row["ablation"] = {"variant": variant, "seed": seed}
    return row


def write_probe_results(root: Path) -> Path:
    """The probe's result files as make ablate ABLATE=probe, its sweep export and make figure-data STUDY=probe
    lay them out (the ablation's own seed_mean makes the table), from known numbers."""
    from spasemsr.evaluation.table import seed_mean

    folder = root / "probe"
    folder.mkdir(parents=True, exist_ok=True)
    rows, summary = [], {}
    for index, (label, variant, acc) in enumerate(PROBE_VARIANTS):
        records = [_probe_record(label, variant, index, seed, acc) for seed in PROBE_SEEDS]
        for record in records:
            (folder / f"{variant}_seed{record['ablation']['seed']}.json").write_text(json.dumps(record))
        rows.append(seed_mean(records))
        summary[variant] = {m: [r["means"][m] for r in records] for m in rows[-1]["means"]}
    write_tables(rows, root / "probe", "probe (full budget)")
    (folder / "summary.json").write_text(json.dumps({"seeds": list(PROBE_SEEDS), "variants": summary}))
    study = smoke_study(name="probe_sweep")
    front = front_rows(study)
    (folder / "probe_sweep_front.json").write_text(json.dumps({
        "study": "probe_sweep", "storage": "sqlite:///nowhere.db", "model": "runs/probe/full/full_seed0/export",
        "ckpt": "c" * 64, "objectives": ["psnr_y", "niqe"], "complete_trials": SMOKE_TRIALS, "front": front,
        "presets": presets(front, ["psnr_y", "niqe"])}))
    write_trials_csv(trial_rows(study), folder / "probe_sweep_trials.csv")
    data = root / "figure_data"
    values = [0.0, 1.0]
    cells = [{"w_spa": a, "w_sem": b, "file": f"probe_knob_grid/{a}_{b}.png", "psnr_y": 20.0 + a, "niqe": 7.0 - b,
              "texture_acc": 0.5 + a / 4, "mean_abs_change": a + b} for a in values for b in values]
    for index, cell in enumerate(cells):
        _png(data / cell["file"], 24, index)
    _png(data / "probe_knob_grid" / "hr.png", 24, 99)
    (data / "probe_knob_grid.json").write_text(json.dumps({
        "image": "probe-1001000000", "box": [0, 0, 24, 24], "ckpt": "c" * 64, "seed": 0, "w_spa": values,
        "w_sem": values, "knobs": {"steps": 2, "color_fix": "wavelet", "backproject": 0},
        "hr": "probe_knob_grid/hr.png", "cells": cells}))
    return root


@pytest.fixture
def probe_results(tmp_path) -> Path:
    return write_probe_results(tmp_path / "results")


def test_probe_figures_are_written_beside_the_photo_ones_which_stay_the_same(tmp_path):
    photo_only = render.render(write_smoke_results(tmp_path / "photo"), tmp_path / "photo_figures")
    both = write_probe_results(write_smoke_results(tmp_path / "both"))
    out = tmp_path / "figures"
    probe = render.render(both, out, study="probe")
    for stem in PROBE_STEMS:
        for fmt, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG")):
            path = out / "probe" / f"{stem}.{fmt}"
            assert path in probe and path.read_bytes().startswith(magic) and path.stat().st_size > 1000
    assert sorted(p.name for p in (out / "probe" / "tables").iterdir()) == ["pd_presets.tex", "probe.tex"]
    assert (out / "probe" / "tables" / "probe.tex").read_text() == (both / "probe.tex").read_text()
    assert not list(out.glob("*.pdf")), "the probe writes nothing beside the photo figures' own files"
    photo = render.render(both, out)  # the default study, from a folder that also holds the probe's files
    assert [p.relative_to(out) for p in photo] == [p.relative_to(tmp_path / "photo_figures") for p in photo_only]
    for a, b in zip(photo, photo_only, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: the photo study's output changed"


def test_probe_ablation_bars_show_each_seed_beside_each_bar(probe_results):
    rows = ablation_bars.load_ablation(probe_results, PROBE)
    assert [r["name"] for r in rows] == [label for label, _, _ in PROBE_VARIANTS]
    names, means, seeds = ablation_bars.deltas(rows, "texture_acc")
    assert names == ["w/o spatial grounding", "broken spatial path"] and means == pytest.approx([-0.35, -0.40])
    assert seeds == [pytest.approx([-0.35 - 0.01, -0.35, -0.35 + 0.01]),  # paired: seed s against full's seed s
                     pytest.approx([-0.40 - 0.02, -0.40, -0.40 + 0.02])]
    fig = ablation_bars.figure(probe_results, PROBE)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("texture accuracy,\nhigher is better") and "0.8 ± 0.01" in t for t in titles)
    dots = _gid(fig, "units")
    assert len(dots) == 2 * 3 and all(len(d.get_offsets()) == len(PROBE_SEEDS) for d in dots)  # 3 metrics x 2
    assert "mean over 3 seeds; dots: each seed" in fig.get_suptitle()


def test_probe_pd_plane_puts_the_ablation_means_with_their_std_on_the_sweep_axes(probe_results):
    fig = pd_plane.figure(probe_results, PROBE)
    assert {len(c.get_offsets()) for c in _gid(fig, "trials")} == {SMOKE_TRIALS}
    table = pd_plane.table_rows(probe_results, PROBE.ablation)
    assert all(row["seeds"] == ["0", "1", "2"] and row["spread"]["niqe"] > 0 for row in table)
    bars = _gid(fig, "ablation std")
    assert bars, "no ± std bars"
    segments = [seg for bar in bars for seg in bar.get_segments()]
    widths = sorted(round(float(b[0] - a[0]), 9) for a, b in segments if a[1] == b[1])  # the horizontal ones
    assert widths == sorted(round(2 * row["spread"]["psnr_y"], 9) for row in table for _ in "ab")  # (a), zoom (b)
    assert not [ax for ax in fig.axes if "kodak5" in ax.get_title()], "photo-only panels are dropped"
    legends = [a for ax in fig.axes for a in (ax.get_legend(), *ax.artists) if isinstance(a, Legend)]
    assert "w/o spatial grounding" in {t.get_text() for legend in legends for t in legend.get_texts()}


def test_probe_pd_plane_refuses_a_sweep_of_another_model(probe_results):
    front = probe_results / "probe" / "probe_sweep_front.json"
    front.write_text(json.dumps({**json.loads(front.read_text()), "ckpt": "d" * 64}))
    with pytest.raises(ValueError, match="no row of probe.csv"):
        pd_plane.figure(probe_results, PROBE)


def test_missing_probe_inputs_are_named_with_the_commands_that_make_them(probe_results, tmp_path):
    (probe_results / "probe.csv").unlink()
    (probe_results / "probe" / "probe_sweep_front.json").unlink()
    out = tmp_path / "figures"
    with pytest.raises(MissingInputs) as info:
        render.render(probe_results, out, study="probe")
    text = str(info.value)
    assert "probe.csv (made by `make ablate ABLATE=probe`)" in text
    assert "probe_sweep_front.json (made by `spasemsr sweep --experiment experiments/probe_sweep.yaml" in text
    assert not out.exists()


def test_a_missing_probe_seed_record_is_named(probe_results):
    (probe_results / "probe" / "wo_spatial_seed2.json").unlink()
    with pytest.raises(MissingInputs, match="no record named 'w/o spatial grounding' for seed 2"):
        ablation_bars.load_ablation(probe_results, PROBE)


def test_cli_study_selector(probe_results, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["figures", "--study", "probe", "--from", str(probe_results), "--out", str(out), "--only",
                 "ablation_bars"]) == 0
    assert (out / "probe" / "ablation_bars.png").is_file()
    capsys.readouterr()
    assert main(["figures", "--study", "kodak", "--from", str(probe_results), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown study 'kodak'; valid: photo, probe" in err
    assert main(["figures", "--study", "probe", "--from", str(probe_results), "--out", str(out), "--only",
                 "comparison"]) == 2
    assert "for the probe study" in capsys.readouterr().err


class _Pipeline:
    """Stands in for a loaded probe model: records what ``prepare`` is handed, samples the LR moved by the knobs."""

    scale = 4

    def __init__(self) -> None:
        from spasemsr.config.knobs import SamplerConfig

        self.sampler, self.known = SamplerConfig(color_fix="wavelet"), []

    def prepare(self, lr, known=None):
        self.known.append(known)
        return lr

    def sample(self, lr, generator, knobs):
        import torch.nn.functional as F

        return (F.interpolate(lr, scale_factor=4, mode="nearest") * (1 - 0.1 * knobs.w_spa) + 0.05 * knobs.w_sem)


def _knob_sweep(tmp_path: Path, monkeypatch, data: str, pipeline: _Pipeline) -> Path:
    """A sweep file on ``data`` whose model is ``pipeline``, and a 2 x 2 knob grid."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "unet.safetensors").write_bytes(b"not a real model")
    sweep = tmp_path / f"{data}_sweep.yaml"
    sweep.write_text(f"model: {model}\neval: {{data: {data}, knobs: {{steps: 3}}}}\nseed: 0\n"
                     "space: {w_spa: {low: 0.0, high: 2.0}}\n")
    monkeypatch.setattr("spasemsr.weights.exports.load_pipeline", lambda path, device: pipeline)
    monkeypatch.setattr(collect, "KNOB_VALUES", (0.0, 1.0))
    return sweep


def test_probe_knob_grid_samples_the_fixed_probe_image_with_its_known(tmp_path, monkeypatch):
    pipeline = _Pipeline()
    sweep = _knob_sweep(tmp_path, monkeypatch, "probe", pipeline)
    results = tmp_path / "results"
    record = json.loads(collect.knob_grid(results, sweep, study=PROBE).read_text())
    known, = pipeline.known
    assert record["image"] == PROBE.knob.image and known.keys == [PROBE.knob.image] and known.degradation
    assert record["dataset"]["name"] == "probe" and record["knobs"]["steps"] == 3  # the sweep's sampler
    assert record["knobs"]["color_fix"] == "wavelet" and record["box"] == [0, 0, 96, 96]
    assert all({"psnr_y", "niqe", "texture_acc"} <= set(cell) for cell in record["cells"])
    with Image.open(results / "figure_data" / record["cells"][0]["file"]) as crop:
        assert crop.size == (96, 96)  # the whole probe image
    assert (results / "figure_data" / "probe_knob_grid.json").is_file()
    assert len(knob_grid.figure(results, PROBE).axes) > 8


class _NoisyPipeline(_Pipeline):
    """The stand-in whose samples also move with the sampler seed, as a diffusion model's do."""

    def sample(self, lr, generator, knobs):
        noise = torch.rand(lr.shape[-2:], generator=generator, device=lr.device)
        return super().sample(lr, generator, knobs) + 0.02 * torch.nn.functional.interpolate(
            noise[None, None], scale_factor=4, mode="nearest")


def test_photo_knob_grid_samples_each_cell_under_three_seeds_and_measures_the_seeds_own_change(tmp_path, monkeypatch):
    sweep = _knob_sweep(tmp_path, monkeypatch, "kodak5", _NoisyPipeline())
    monkeypatch.setattr(collect, "_scores", lambda sr, image, scale, names: {"psnr_y": float(sr.mean()), "niqe": 1.0})
    results = tmp_path / "results"
    record = json.loads(collect.knob_grid(results, sweep).read_text())
    assert record["seeds"] == [0, 1, 2] and record["seed"] == 0 and record["knobs"]["seed"] == 0
    cells = {(c["w_spa"], c["w_sem"]): c for c in record["cells"]}
    assert cells[1.0, 1.0]["mean_abs_change"] == 0  # each seed against its own neutral sample
    assert cells[0.0, 0.0]["mean_abs_change"] > 0 and record["seed_change"] > 0  # the knob's change, the seed's
    assert all(c["psnr_y_std"] > 0 and c["niqe_std"] == 0 for c in record["cells"])  # spread over seeds, beside
    notes = knob_grid._notes(record, PHOTO)
    assert "another seed alone" in notes and "seeds 0,1,2" in notes
