"""`make ablate`: the smoke budget end to end, resume by skipping complete variants, and spec validation."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from spasemsr.ablation.runner import paired_changes, run_ablation, variant_config
from spasemsr.ablation.spec import load_spec
from spasemsr.config import ConfigError, config_hash
from spasemsr.utils.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "ablation.yaml"
PAPER_VARIANTS = ["full", "wo_spatial", "wo_box_encoder", "wo_text", "wo_deg_text", "wo_img", "wo_sem", "wo_l_vae",
                  "wo_l_sem", "fusion_sum", "fusion_concat", "baseline"]


@pytest.fixture(scope="module")  # `make test` distributes by file (--dist loadfile): built once
def smoke(tmp_path_factory) -> tuple[Path, Path]:
    """`make ablate ABLATE_BUDGET=smoke` into a temporary results and runs folder (the real command)."""
    root = tmp_path_factory.mktemp("ablate")
    out, runs = root / "results", root / "runs"
    # the subprocess computes with this process's thread count, so an in-process re-evaluation gives the same bits
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(["make", "-s", "ablate", "ABLATE_BUDGET=smoke", f"ABLATE_OUT={out}", f"ABLATE_RUNS={runs}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, runs


@pytest.mark.slow
def test_smoke_ablation_trains_and_tabulates_every_variant(smoke):
    out, runs = smoke
    spec = load_spec(EXPERIMENT)
    assert list(spec.variants) == PAPER_VARIANTS
    labels = [variant.label for variant in spec.variants.values()]
    with (out / "ablation_smoke.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["method"] for row in rows] == labels
    assert all(float(row["psnr_y"]) > 5 and row["ckpt"] and row["config"] and row["dataset_hash"] for row in rows)
    assert len({row["ckpt"] for row in rows}) == len(rows)  # twelve different trained models
    markdown = (out / "ablation_smoke.md").read_text()
    assert "psnr_y ↑" in markdown and "**" in markdown and all(f"| {label} |" in markdown for label in labels)
    tex = (out / "ablation_smoke.tex").read_text()
    assert "\\toprule" in tex and "$\\uparrow$" in tex and "\\textbf{" in tex and "w/o E\\_img" in tex
    for name in PAPER_VARIANTS:
        record = json.loads((out / "ablation_smoke" / f"{name}.json").read_text())
        assert record["ablation"]["steps"] == 2 and record["record"]["knobs"]["backproject"] == 0
        assert (runs / "smoke" / name / "tb").is_dir() and (runs / "smoke" / name / "eval" / "tb").is_dir()
    # each variant's config differs from the full model's exactly by its overrides
    full = variant_config(spec, "full", "smoke", runs)
    for name in ("wo_spatial", "wo_img", "fusion_concat"):
        cfg = variant_config(spec, name, "smoke", runs)
        for override in spec.variants[name].overrides:
            key, value = override.split("=")
            assert str(OmegaConf.select(cfg, key)).lower() == value and OmegaConf.select(full, key) != value


@pytest.mark.slow  # shares the smoke ablation (about 90 s on 2 cores)
def test_a_rerun_skips_complete_variants_and_redoes_a_lost_one(smoke, capsys):
    out, runs = smoke
    record = out / "ablation_smoke" / "wo_sem.json"
    kept = (out / "ablation_smoke" / "full.json").stat().st_mtime_ns
    record.unlink()  # as if the run had been killed before wo_sem's evaluation finished
    rows = run_ablation(EXPERIMENT, "smoke", out, runs, only=["full", "wo_sem"])
    printed = capsys.readouterr().out
    assert "full is complete" in printed and "training wo_sem" in printed
    assert (out / "ablation_smoke" / "full.json").stat().st_mtime_ns == kept and record.is_file()
    assert [row["ablation"]["variant"] for row in rows] == ["full", "wo_sem"]


@pytest.mark.slow  # shares the smoke ablation (about 90 s on 2 cores)
def test_a_record_made_with_another_frozen_prior_is_not_complete(smoke, monkeypatch):
    from spasemsr.ablation import runner
    from spasemsr.evaluation.identity import weights_sha256
    from spasemsr.weights.paths import local_path

    out, runs = smoke
    spec, record = load_spec(EXPERIMENT), out / "ablation_smoke" / "full.json"
    cfg, identity = runner.variant_identity(spec, "full", "smoke", runs, 0)
    assert identity["backbone"] == weights_sha256(local_path(cfg.profile.backbone_path))
    assert runner._is_complete(record, identity)
    monkeypatch.setattr(runner, "prior_sha256", lambda path: "0" * 64)  # another VAE or UNet under the same path
    assert not runner._is_complete(record, runner.variant_identity(spec, "full", "smoke", runs, 0)[1])


@pytest.mark.slow  # shares the smoke ablation (about 90 s on 2 cores)
def test_resample_evaluates_a_complete_variant_again_without_training(smoke, capsys):
    out, runs = smoke
    record = out / "ablation_smoke" / "full.json"
    before = json.loads(record.read_text())
    checkpoint = next((runs / "smoke" / "full" / "checkpoints").glob("*.ckpt"))
    trained = checkpoint.stat().st_mtime_ns
    sampled = {path: path.stat().st_mtime_ns for path in (runs / "smoke" / "full" / "eval").rglob("*.png")}
    run_ablation(EXPERIMENT, "smoke", out, runs, only=["full"], reevaluate="resample")
    assert "training full" not in capsys.readouterr().out and checkpoint.stat().st_mtime_ns == trained
    assert sampled and all(path.stat().st_mtime_ns > mtime for path, mtime in sampled.items())  # sampled again
    after = json.loads(record.read_text())
    assert after["ablation"] == before["ablation"]
    assert after["means"] == before["means"]  # same weights, seeds and sampler: the same numbers again
    with pytest.raises(ValueError, match="valid: rescore, resample"):
        run_ablation(EXPERIMENT, "smoke", out, runs, only=["full"], reevaluate="retrain")


@pytest.mark.slow  # shares the smoke ablation (about 90 s on 2 cores)
def test_a_changed_variant_is_not_resumed_from_the_old_run(smoke, tmp_path):
    out, runs = smoke
    changed = tmp_path / "ablation.yaml"
    text = EXPERIMENT.read_text().replace("overrides: [model.visual.use_img=false]",
                                          "overrides: [model.visual.use_img=false, model.visual.width=16]")
    changed.write_text(text)
    assert config_hash(variant_config(load_spec(changed), "wo_img", "smoke", runs)) != config_hash(
        variant_config(load_spec(EXPERIMENT), "wo_img", "smoke", runs))
    with pytest.raises(ConfigError, match="holds a run of another config.*--rerun wo_img"):
        run_ablation(changed, "smoke", out, runs, only=["wo_img"])


@pytest.mark.slow  # shares the smoke ablation (about 90 s on 2 cores)
def test_sample_seeds_average_a_models_samples_and_show_their_spread(smoke, tmp_path):
    out, runs = smoke
    record = out / "ablation_smoke" / "full.json"
    one_seed = json.loads(record.read_text())
    seeded = tmp_path / "ablation.yaml"
    seeded.write_text(EXPERIMENT.read_text().replace("knobs: {steps: 2, color_fix: none, backproject: 0}}",
                                                     "knobs: {steps: 2, color_fix: none, backproject: 0}}\n"
                                                     "    sample_seeds: [0, 1]", 1))
    try:
        [row] = run_ablation(seeded, "smoke", out, runs, only=["full"])
    finally:  # the shared smoke results as they were: the one-seed record
        atomic_write_text(record, json.dumps(one_seed, indent=2))
    assert row["ablation"]["sample_seeds"] == [0, 1] and row["ablation"]["steps"] == 2  # the same model, not retrained
    per_seed = row["per_sample_seed"]
    assert per_seed["0"] == one_seed["means"]  # seed 0 is the one-seed evaluation, resumed from its images
    assert per_seed["1"]["psnr_y"] != per_seed["0"]["psnr_y"]  # another sampler seed samples another image
    assert row["means"]["psnr_y"] == pytest.approx((per_seed["0"]["psnr_y"] + per_seed["1"]["psnr_y"]) / 2)
    assert row["spread"]["psnr_y"] == pytest.approx(abs(per_seed["0"]["psnr_y"] - per_seed["1"]["psnr_y"]) / 2 ** 0.5)
    assert (runs / "smoke" / "full" / "eval" / "seed1" / "metrics.json").is_file()


def test_the_photo_ablation_trains_spasemsr_as_shipped_and_samples_each_model_three_times(tmp_path):
    spec = load_spec(EXPERIMENT)
    assert spec.budgets["full"].sample_seeds == [0, 1, 2]
    assert variant_config(spec, "full", "full", tmp_path).model.text.train_grounding == "drm_lr_photo"
    assert variant_config(spec, "wo_img", "full", tmp_path).model.text.train_grounding == "drm_lr_photo"
    assert "text" not in variant_config(spec, "baseline", "full", tmp_path).model  # train_base: not its config


@pytest.mark.parametrize("experiment", ["ablation", "probe"])
def test_the_committed_ablation_records_are_complete_under_this_code(experiment, monkeypatch):
    """`make ablate` retrains every variant whose record is incomplete: a new config key must not do that to the
    committed records silently (give it a HASH_NEUTRAL value in config/compose.py), a real change must re-run them."""
    from spasemsr.ablation.runner import _is_complete, record_path, variant_identity
    from spasemsr.ablation.spec import seeds_of

    monkeypatch.chdir(REPO)  # the Makefile's relative ABLATE_RUNS and backbone paths
    spec = load_spec(REPO / "experiments" / f"{experiment}.yaml")
    stale = [name for name in spec.variants for seed in seeds_of(spec)
             if not _is_complete(record_path(spec, name, "full", REPO / "experiments" / "results", seed),
                                 variant_identity(spec, name, "full", Path("runs") / spec.name, seed)[1])]
    assert not stale


def test_paired_changes_take_each_seed_against_the_same_seed_of_the_full_model():
    def row(name, psnr):
        return {"name": name, "per_sample_seed": {str(s): {"psnr_y": v, "niqe": 5.0} for s, v in enumerate(psnr)}}

    full, variant = row("full", [20.0, 21.0, 19.0]), row("w/o x", [20.1, 21.2, 19.3])  # seeds move both alike
    [line] = paired_changes([full, variant, {"name": "one seed", "means": {}}])
    assert line == "w/o x - full, paired over sampler seeds 0,1,2: psnr_y +0.200 ± 0.100, niqe +0.000 ± 0.000"
    assert paired_changes([{"name": "full", "means": {}}, variant]) == []  # no seeds on the reference row


def test_the_experiment_file_is_validated(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXPERIMENT.read_text().replace("  wo_img: {label:", "  wo_img: {lable:"))
    valid = "\\['config', 'knobs', 'label', 'overrides', 'train_as'\\]"
    with pytest.raises(ConfigError, match=f"lable.*valid keys here: {valid}"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="unknown budget 'huge'; valid: \\['full', 'smoke'\\]"):
        run_ablation(EXPERIMENT, "huge", tmp_path, tmp_path)
    with pytest.raises(ConfigError, match="unknown variant\\(s\\) \\['wo_magic'\\]"):
        run_ablation(EXPERIMENT, "smoke", tmp_path, tmp_path, only=["wo_magic"])
