"""The benchmark scripts run at toy settings and write the records their README describes (no speed is asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # the scripts name weights/, configs/ and experiments/ relative to the repo


def test_interleaving_alternates_the_order_and_ratios_pair_neighbours():
    from benchmarks.common import interleaved, paired_ratio

    calls = []
    seconds = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, torch.device("cpu"),
                          repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {name: len(values) for name, values in seconds.items()} == {"a": 3, "b": 3}
    assert paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0


def test_cpu_peak_memory_sees_a_large_allocation():
    from benchmarks.common import PeakMemory

    with PeakMemory(torch.device("cpu")) as probe:
        block = torch.ones(64, 2**20)  # 256 MiB, touched
        del block
    if probe.peak_mib is None:
        pytest.skip("no /proc/self/statm here")
    assert probe.peak_mib > 128


def test_guidance_overhead_finds_no_per_step_encoding(tmp_path):
    from benchmarks.guidance_overhead import main

    out = tmp_path / "overhead.json"
    main(["--cases", "tiny", "--tiny-repeats", "1", "--steps", "2", "--tiny-lr", "16", "--device", "cpu",
          "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["ratio"] > 0 and record["ratio_case"] == "tiny"
    case = record["cases"][0]
    assert set(case["median_s"]) == {"spasemsr", "plain"} and len(case["seconds"]["plain"]) == 1
    calls = record["encoding_calls"]
    assert calls["prepare"]["text_encoder"] >= 1 and calls["prepare"]["E_img"] == calls["prepare"]["E_sem"] == 1
    assert calls["sample"]["denoiser"] == 2 and calls["per_step_encoding"] is False
    assert not any(calls["sample"].get(k) for k in ("text_encoder", "E_img", "E_sem", "grounder", "describer"))


def test_component_cost_records_every_component(tmp_path, capsys):
    from benchmarks.component_cost import main

    main(["--child", "tiny", "--repeats", "1", "--tiny-lr", "16", "--device", "cpu"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["profile"] == "tiny" and record["hr"] == [64, 64]
    assert {"drm", "grounder", "describer", "text_encoder", "visual_encoders", "prepare", "vae_encode", "step",
            "vae_decode", "post"} <= set(record["components"])
    assert all(row["median_s"] > 0 for row in record["components"].values())
    assert record["per_image_estimate_s"] > record["components"]["step"]["median_s"] * record["steps"]
    assert record["end_to_end"]["median_s"] > 0 and record["environment"]["torch_threads"] == 2


def test_training_throughput_times_real_steps(capsys):
    from benchmarks.training_throughput import main

    main(["--child", "drm", "--repeats", "2", "--warmup", "0", "--device", "cpu"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["task"] == "drm" and record["steps"] == 2 and len(record["step_s"]) == 2
    assert record["images_per_s"] > 0 and record["peak_rss_mib"] > 0


def test_sweep_throughput_compares_trials_with_plain_passes(tmp_path):
    from benchmarks.sweep_throughput import main

    out = tmp_path / "sweep.json"
    main(["--images", "1", "--steps", "1", "--repeats", "1", "--device", "cpu", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["images"] == 1 and record["knobs"]["steps"] == 1 and record["ratio"] > 0
    assert set(record["median_s"]) == {"trial", "plain_pass"}
    assert record["stage_seconds"]["plain_pass"]["prepare (conditions)"] > 0
    assert "prepare (conditions)" not in record["stage_seconds"]["trial"]  # a trial never recomputes conditions


def test_upscale_memory_reports_each_case_of_its_own_process(capsys):
    from benchmarks.upscale_memory import main

    main(["--child", "256", "128", "--steps", "1", "--device", "cpu"])  # what each fresh interpreter runs
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["output"] == [256, 256] and record["seconds"] > 0
    assert record["peak_rss_mib"] >= record["rss_before_mib"] > 0


def test_gpu_check_dry_run_on_cpu_skips_every_section_with_the_reason(tmp_path, capsys):
    from benchmarks.gpu_check import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: gpu-check would run for real (make gpu-check)")
    assert main(["--results", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(record["sections"]) == {"cuda-tests", "tiny-training", "sd2-sample", "upscale", "bench"}
    assert all(s["status"].startswith("skipped: no CUDA device") for s in record["sections"].values())
    assert "gpu-check" in capsys.readouterr().out


def test_training_memory_accounts_a_small_training_step(tmp_path):
    from benchmarks.training_memory import CASES, child, estimate

    assert "gc+bf16+frozen_bf16+8bit" in CASES
    plain = child("none", 64, 1, "account", torch.device("cpu"), tiny=True)
    checkpointed = child("gc", 64, 1, "account", torch.device("cpu"), tiny=True)
    assert 0 < checkpointed["activations"]["total"] < plain["activations"]["total"]  # recomputed, not saved
    assert plain["static"]["optimizer"] == 2 * plain["static"]["gradients"]  # two fp32 moments per fp32 gradient
    assert estimate(plain["static"], plain["activations"]["total"]) > 0


def test_upscale_stages_times_every_stage_of_one_call(tmp_path):
    from benchmarks.upscale_stages import main

    main(["--lr", "96", "64", "--tile", "128", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "s.json")])
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["output"] == [384, 256] and record["grounding_side"] == 1024
    assert {"DRM (per LR tile)", "grounder", "describer", "text + visual encoders", "LR-start latent (VAE encode)",
            "denoiser (all tiles, all steps)", "VAE decode (per tile)", "colour fix",
            "back-projection"} == set(record["stages"])
    assert sum(s["seconds"] for s in record["stages"].values()) <= record["total_seconds"] + 0.1


def test_vae_quality_scores_a_vae_folder_and_a_training_checkpoint_alike(tmp_path, prior_dir, tiny_cfg):
    from omegaconf import OmegaConf

    from benchmarks.vae_quality import load_vae, score_bicubic, score_vae

    folder = str(prior_dir / "vae")
    state = {f"vae.{key}": value for key, value in load_vae(folder).state_dict().items()}
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    OmegaConf.save(tiny_cfg, tmp_path / "run" / "config.yaml")
    torch.save({"state_dict": state}, tmp_path / "run" / "checkpoints" / "last.ckpt")
    from_checkpoint = load_vae(str(tmp_path / "run" / "checkpoints" / "last.ckpt")).state_dict()
    assert all(torch.equal(value, from_checkpoint[key.removeprefix("vae.")]) for key, value in state.items())
    scored = score_vae(folder, "unseen", limit=1)
    assert set(scored["images"]) == {"camera"}
    assert {"psnr_rgb", "psnr_y", "colour_pass", "dark_dots", "new_dark_dots", "hr_dark_dots"} == set(scored["mean"])
    reference = score_bicubic("unseen", limit=1)["mean"]
    assert reference["psnr_rgb"] > 20 and reference["hr_dark_dots"] == scored["mean"]["hr_dark_dots"]
