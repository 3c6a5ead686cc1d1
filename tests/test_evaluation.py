"""``spasemsr evaluate``, the evaluation sets, result tables, the kodak5 suite and ``spasemsr doctor``."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest
import torch

from spasemsr.cli import main
from spasemsr.data.images import read_image, write_image
from spasemsr.data.resize import bicubic_down
from spasemsr.evaluation.datasets import bundled_set, hr_folder_set, paired_set
from spasemsr.evaluation.evaluate import evaluate
from spasemsr.evaluation.identity import weights_sha256
from spasemsr.evaluation.suite import run_suite
from spasemsr.evaluation.table import results_table
from spasemsr.metrics.registry import compute
from spasemsr.restore.baselines import bicubic_upscale
from spasemsr.restore.drm import RRDBNet

LEARNED = ("lpips", "dists", "musiq", "maniqa", "clipiqa", "pi")


def _image(seed: int, height: int, width: int) -> torch.Tensor:
    """A smooth random image (noise would make no-reference metrics meaningless but still computable)."""
    coarse = torch.rand(1, 3, height // 8 + 1, width // 8 + 1, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0]


@pytest.fixture
def pairs(tmp_path):
    """Two real-style pairs: one exact (96x128 HR), one whose HR is 5x2 pixels too large and must be cropped."""
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    for name, (height, width) in {"a": (96, 128), "b": (101, 130)}.items():
        hr = _image(ord(name), height, width)
        write_image(hr, hr_dir / f"{name}_HR.png")
        write_image(bicubic_down(hr[None, :, :96, :128], 4)[0], lr_dir / f"{name}_LR4.png")
    return hr_dir, lr_dir


def _lr_bytes(dataset) -> list[bytes]:
    return [(image.lr * 255).round().to(torch.uint8).numpy().tobytes() for image in dataset]


def test_kodak5_lr_is_deterministic_and_the_hash_follows_the_recipe():
    for recipe in ("realesrgan", "bicubic"):
        first, second = bundled_set("kodak5", recipe), bundled_set("kodak5", recipe)
        assert first.hash == second.hash and len(first) == 5
        images = list(first)
        assert _lr_bytes(images) == _lr_bytes(second)
        for image in images:
            assert image.lr.shape[-2:] == (image.hr.shape[-2] // 4, image.hr.shape[-1] // 4)
            assert torch.equal(image.lr, (image.lr * 255).round() / 255)  # 8-bit LR
    assert bundled_set("kodak5", "realesrgan").hash != bundled_set("kodak5", "bicubic").hash


def test_hr_folder_crops_to_the_scale_and_names_its_seeds(tmp_path):
    write_image(_image(1, 35, 42), tmp_path / "x.png")
    dataset = hr_folder_set(tmp_path, "realesrgan")
    (image,) = dataset
    assert image.hr.shape == (3, 32, 40) and image.lr.shape == (3, 8, 10)
    assert "cropped" in dataset.notes[0] and dataset.record()["lr"] == "realesrgan"
    with pytest.raises(ValueError, match="unknown LR recipe"):
        hr_folder_set(tmp_path, "nearest")


def test_evaluate_bicubic_writes_the_record_and_the_numbers_of_compute(pairs, tmp_path):
    out = tmp_path / "out"
    metrics = ["psnr_y", "ssim_y", "psnr_rgb", "ms_ssim", "lr_consistency", "niqe", "piqe", *LEARNED]
    dataset = paired_set(*pairs)
    result = evaluate("bicubic", dataset, metrics, out, seed=3)

    assert any("b: HR 130x101 cropped" in note for note in result["protocol"]["notes"])
    with (out / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    scored = ["psnr_y", "ssim_y", "psnr_rgb", "lr_consistency", "niqe", "piqe"]
    assert list(rows[0]) == ["image", *scored] and [row["image"] for row in rows] == ["a", "b"]
    saved = json.loads((out / "metrics.json").read_text())
    record = saved["record"]
    assert {"ckpt", "config", "knobs", "dataset", "seed", "versions", "wall_seconds"} <= set(record)
    assert record["ckpt"] == "bicubic" and record["seed"] == 3 and "torch" in record["versions"]
    assert record["dataset"] == {"name": "paired:hr", "lr": "paired", "hash": dataset.hash, "images": 2}
    assert all("variant" in spec and "direction" in spec for spec in saved["protocol"]["metrics"].values())
    for name in LEARNED:
        assert "weights not in the cache" in saved["unavailable"][name]
    assert "needs SR images of at least 184 pixels a side" in saved["unavailable"]["ms_ssim"]  # named up front
    assert "the smallest here is 96x128" in saved["unavailable"]["ms_ssim"]

    for image, row in zip(dataset, rows, strict=True):
        sr = read_image(out / "sr" / f"{image.name}.png")[None]  # scores are of the saved 8-bit PNG
        assert (sr - bicubic_upscale(image.lr[None])).abs().max() <= 0.5 / 255 + 1e-6
        for name in scored:
            direct = float(compute(name, sr, hr=image.hr[None], lr=image.lr[None], scale=4)[0])
            assert float(row[name]) == direct == saved["per_image"][image.name][name]


def test_evaluate_a_diffusion_export_through_the_cli_with_knobs(export_dir, tmp_path, capsys):
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr = _image(5, 32, 32)
    write_image(hr, hr_dir / "p.png")
    write_image(bicubic_down(hr[None], 4)[0], lr_dir / "p.png")
    out = tmp_path / "out"
    argv = ["evaluate", "--hr", str(hr_dir), "--lr", str(lr_dir), "--out", str(out), "--ckpt", str(export_dir),
            "--steps", "1", "--seed", "7", "--metrics", "psnr_y,lr_consistency", "color_fix=wavelet",
            "control_scale=0.5"]
    assert main(argv) == 0
    record = json.loads((out / "metrics.json").read_text())["record"]
    assert record["knobs"]["color_fix"] == "wavelet" and record["knobs"]["control_scale"] == 0.5
    assert record["knobs"]["steps"] == 1 and record["knobs"]["seed"] == 7 == record["seed"]
    assert re.fullmatch(r"[0-9a-f]{64}", record["ckpt"]) and re.fullmatch(r"[0-9a-f]{16}", record["config"])
    assert read_image(out / "sr" / "p.png").shape == (3, 32, 32)
    assert "psnr_y=" in capsys.readouterr().out

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = EventAccumulator(str(out / "tb")).Reload().PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert hparams["color_fix"].string_value == "wavelet" and hparams["control_scale"].number_value == 0.5


def test_rescore_scores_the_saved_sr_of_the_same_run_only(pairs, tmp_path):
    dataset, out = paired_set(*pairs), tmp_path / "out"
    first = evaluate("bicubic", dataset, ["psnr_y"], out, seed=3)
    assert evaluate("bicubic", dataset, ["psnr_y"], out, seed=3, rescore=True)["means"] == first["means"]
    write_image(torch.zeros(3, 96, 128), out / "sr" / "a.png")  # a changed file is what gets scored
    rescored = evaluate("bicubic", dataset, ["psnr_y"], out, seed=3, rescore=True)
    assert rescored["record"]["rescored"] and rescored["means"]["psnr_y"] < first["means"]["psnr_y"] - 5
    # another seed is another run: its images are sampled afresh, not borrowed
    fresh = evaluate("bicubic", dataset, ["psnr_y"], out, seed=4, rescore=True)
    assert not fresh["record"]["rescored"] and fresh["means"] == first["means"]


def test_a_diffusion_models_results_are_tied_to_its_frozen_prior_not_only_its_own_weights(export_dir, tmp_path):
    import shutil

    from diffusers import AutoencoderKL
    from omegaconf import OmegaConf

    from spasemsr.evaluation.identity import backbone_sha256

    cfg = OmegaConf.load(export_dir / "config.yaml")
    prior, export = tmp_path / "prior_copy", tmp_path / "export_copy"
    shutil.copytree(cfg.profile.backbone_path, prior)
    shutil.copytree(export_dir, export)
    cfg.profile.backbone_path = str(prior)
    (export / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    hr = _image(5, 32, 32)
    write_image(hr, tmp_path / "hr" / "p.png")
    write_image(bicubic_down(hr[None], 4)[0], tmp_path / "lr" / "p.png")
    dataset, out = paired_set(tmp_path / "hr", tmp_path / "lr"), tmp_path / "out"
    first = evaluate(str(export), dataset, ["psnr_y"], out, {"steps": 1}, seed=0)
    assert first["record"]["backbone"] == weights_sha256(prior) == backbone_sha256(export)
    assert evaluate(str(export), dataset, ["psnr_y"], out, {"steps": 1}, seed=0, rescore=True)["record"]["rescored"]
    vae = AutoencoderKL.from_pretrained(prior / "vae")  # a new decoder under the same path, the export untouched
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(0.5)
    vae.save_pretrained(prior / "vae")
    again = evaluate(str(export), dataset, ["psnr_y"], out, {"steps": 1}, seed=0, rescore=True)
    assert again["record"]["ckpt"] == first["record"]["ckpt"]
    assert again["record"]["backbone"] == weights_sha256(prior) != first["record"]["backbone"]
    assert not again["record"]["rescored"] and again["means"] != first["means"]  # sampled again, with the new VAE


def test_unknown_or_mistyped_knobs_are_refused_with_the_valid_ones(pairs, tmp_path, capsys):
    hr_dir, lr_dir = pairs
    base = ["evaluate", "--hr", str(hr_dir), "--lr", str(lr_dir), "--out", str(tmp_path / "o")]
    for knob, message in (("w_spatial=0.5", "unknown knob 'w_spatial'.*valid knobs: .*w_spa.*color_fix"),
                          ("cfg_scale=high", "knob cfg_scale expects a float, got 'high'"),
                          ("w_spa=0.5", "apply to diffusion models only")):
        assert main([*base, knob]) == 2  # a user error: one line, no traceback
        assert re.search(message, capsys.readouterr().err), knob


def _row(name: str, **means: float) -> dict:
    return {"name": name, "means": means, "record": {"method": name}}


def test_results_table_bolds_the_best_by_each_metric_direction():
    table = results_table([_row("bicubic", psnr_y=24.0, niqe=9.0), _row("ours", psnr_y=23.5, niqe=4.25, piqe=30.0)])
    header, _, bicubic, ours = table.strip().splitlines()
    assert "psnr_y ↑" in header and "niqe ↓" in header and "piqe ↓" in header
    assert "**24**" in bicubic and "**4.25**" in ours and "| 9 |" in bicubic and "| 23.5 |" in ours
    assert "n/a" in bicubic and "**30**" in ours


def test_suite_runs_what_is_shipped_and_says_what_it_skips(export_dir, tmp_path, capsys):
    weights = tmp_path / "weights"
    RRDBNet(num_features=8, num_blocks=1, growth=4).save_pretrained(weights / "drm" / "drm")
    (weights / "controlnet_sr").symlink_to(export_dir)
    write_image(_image(9, 32, 32), tmp_path / "hr" / "q.png")
    sets = {"tiny_bicubic": hr_folder_set(tmp_path / "hr", "bicubic")}
    out = tmp_path / "results"
    tables = run_suite(out, steps=1, weights=weights, sets=sets)
    names = ["bicubic", "DRM", "Real-ESRGAN x4plus", "RealSR (DF2K)", "ControlNet-SR (raw)", "ControlNet-SR"]
    assert [row["name"] for row in tables["tiny_bicubic"]] == names
    for folder in ("bicubic", "drm", "realesrgan_x4plus", "realsr_df2k", "controlnet_sr_raw", "controlnet_sr"):
        assert (out / "tiny_bicubic" / folder / "metrics.json").is_file()
    shipped, raw = (json.loads((out / "tiny_bicubic" / f / "metrics.json").read_text())["record"]["knobs"]
                    for f in ("controlnet_sr", "controlnet_sr_raw"))
    assert raw["backproject"] == 0 and raw["color_fix"] == "none" and raw["steps"] == shipped["steps"] == 1
    text = (out / "tiny_bicubic.md").read_text()
    assert "| ControlNet-SR |" in text and "SpaSemSR skipped" in text and "psnr_y ↑" in text
    assert "dark_dots ↓" in text and "HR itself: dark_dots " in text
    assert "SpaSemSR skipped" in capsys.readouterr().err
    assert (out / "tiny_bicubic.csv").read_text().startswith("method,psnr_y,")
    again = run_suite(out, steps=1, weights=weights, sets=sets, only=["bicubic"])["tiny_bicubic"]
    assert [row["name"] for row in again] == names  # the other rows kept from the run before, same numbers
    same = json.dumps([row["means"] for row in again]) == json.dumps([row["means"] for row in tables["tiny_bicubic"]])
    assert same  # compared as JSON: a NaN (PIQE of the random DRM's flat output) equals itself there
    seeded = {row["name"]: row for row in run_suite(out, steps=1, weights=weights, sets=sets, seeds=[0, 1],
                                                    only=["controlnet_sr_raw"])["tiny_bicubic"]}
    raw = seeded["ControlNet-SR (raw)"]
    assert (out / "tiny_bicubic" / "controlnet_sr_raw" / "seed1" / "metrics.json").is_file()
    assert raw["record"]["seed"] == "0,1" and set(raw["spread"]) == set(raw["means"])
    assert "spread" not in seeded["bicubic"]  # restorers are deterministic: one run whatever the seeds
    assert seeded["ControlNet-SR"]["record"]["seed"] == 0 and "spread" not in seeded["ControlNet-SR"]  # seed 0 only
    assert "±" in (out / "tiny_bicubic.md").read_text()
    with pytest.raises(ValueError, match="unknown suite methods \\['esrgan'\\]"):
        run_suite(out, weights=weights, sets=sets, only=["esrgan"])


def test_a_preset_row_samples_with_the_knobs_swept_on_these_weights_and_is_skipped_on_others(export_dir, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "spasemsr").symlink_to(export_dir)
    write_image(_image(9, 32, 32), tmp_path / "hr" / "q.png")
    sets = {"tiny_bicubic": hr_folder_set(tmp_path / "hr", "bicubic")}
    front = tmp_path / "front.json"
    swept = {"model": "weights/tiny/spasemsr", "ckpt": weights_sha256(export_dir),
             "presets": {"fidelity": {"knobs": {"start_t": 0.5, "cfg_scale": 1.5, "steps": 2}}}}
    front.write_text(json.dumps(swept))
    out = tmp_path / "results"
    [row] = run_suite(out, weights=weights, sets=sets, only=["spasemsr_fidelity_raw"], presets=front)["tiny_bicubic"]
    knobs = row["record"]["knobs"]
    assert row["name"] == "SpaSemSR, fidelity preset (raw)"
    assert (knobs["start_t"], knobs["cfg_scale"], knobs["steps"], knobs["backproject"]) == (0.5, 1.5, 2, 0)
    front.write_text(json.dumps({**swept, "ckpt": "0" * 64}))  # a front of other weights: its knobs do not apply
    assert run_suite(out / "other", weights=weights, sets=sets, only=["spasemsr_fidelity"], presets=front)[
        "tiny_bicubic"] == []
    assert "SpaSemSR, fidelity preset skipped: " in (out / "other" / "tiny_bicubic.md").read_text()
    assert "was swept on checkpoint 0000000000000000" in (out / "other" / "tiny_bicubic.md").read_text()


def test_doctor_reports_and_exits_zero(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "niqe" in text and "minilm" in text and "profile.backbone_path" in text
    from spasemsr.weights.table import WEIGHTS

    rows = {line.split()[1]: line.split()[2] for line in text.splitlines() if line.startswith("weights ")}
    assert rows == {name: "ok" if row.default else "configure" for name, row in WEIGHTS.items()}


def test_the_weights_table_resolves_shipped_paths_and_says_what_belongs_where(tmp_path):
    from spasemsr.weights.table import WEIGHTS

    assert WEIGHTS["tiny_drm"].resolve().name == "drm"  # the folder holding config.json, not its export
    with pytest.raises(FileNotFoundError, match=r"has no config.json; it should hold the tiny DRM .*make weights-tiny"):
        WEIGHTS["tiny_drm"].resolve(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"sam: no path given; it should hold a SAM checkpoint"):
        WEIGHTS["sam"].resolve()


def test_a_file_with_a_good_header_and_a_broken_body_stops_the_run_before_it_starts(pairs, tmp_path, monkeypatch):
    from spasemsr.data.images import ImageError

    hr_dir, lr_dir = pairs
    broken = lr_dir / "b_LR4.jpg"  # a JPEG's size is read from its header alone
    write_image(read_image(lr_dir / "b_LR4.png"), broken)
    (lr_dir / "b_LR4.png").unlink()
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])  # header intact, body cut
    dataset = paired_set(hr_dir, lr_dir)
    monkeypatch.setattr("spasemsr.evaluation.evaluate.load_method",
                        lambda *a, **k: pytest.fail("the method was loaded before the set was checked"))
    with pytest.raises(ImageError, match="1 image\\(s\\) cannot be decoded.*b_LR4.jpg"):
        evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_evaluation_reuses_the_sr_images_it_wrote(pairs, tmp_path, monkeypatch):
    import spasemsr.evaluation.evaluate as runner
    from spasemsr.evaluation.methods import Method

    dataset = paired_set(*pairs)
    straight = evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "straight")
    load, calls = runner.load_method, []

    def counting(*args, **kwargs):
        method = load(*args, **kwargs)

        def upscale(lr, known=None):
            calls.append(1)
            if len(calls) == 2 and fail[0]:
                raise KeyboardInterrupt  # killed while sampling the second image
            return method.upscale(lr, known)

        return Method(upscale, method.ckpt, method.config, method.knobs)

    fail = [True]
    monkeypatch.setattr(runner, "load_method", counting)
    with pytest.raises(KeyboardInterrupt):
        evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "run")
    fail[0], calls[:] = False, []
    resumed = evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "run")
    assert len(calls) == 1 and resumed["record"]["resumed_images"] == ["a"]  # only the missing image sampled
    assert resumed["per_image"] == straight["per_image"]
    calls[:] = []
    again = evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "run", resume=False)
    assert len(calls) == 2 and again["record"]["resumed_images"] == []
    calls[:] = []
    evaluate("bicubic", dataset, ["psnr_y"], tmp_path / "run", seed=1)  # another identity: nothing is reused
    assert len(calls) == 2


def test_metrics_that_cannot_score_the_set_are_named_before_sampling(tmp_path):
    write_image(_image(3, 40, 48), tmp_path / "small" / "x.png")
    result = evaluate("bicubic", hr_folder_set(tmp_path / "small"), ["psnr_y", "niqe", "ms_ssim"], tmp_path / "out")
    assert set(result["means"]) == {"psnr_y"}
    assert "niqe: needs SR images of at least 96 pixels a side at x4, the smallest here is 40x48" in (
        result["unavailable"]["niqe"])
    assert "at least 184 pixels" in result["unavailable"]["ms_ssim"]


def test_a_pretrained_peer_is_a_method_with_its_weights_hash_as_identity(pairs, tmp_path):
    from spasemsr.restore.pretrained import weights_identity

    dataset = paired_set(*pairs)
    result = evaluate("realsr_df2k", dataset, ["psnr_y"], tmp_path / "realsr")
    assert result["record"]["ckpt"] == weights_identity("realsr_df2k") and result["record"]["knobs"] is None
    assert math.isfinite(result["means"]["psnr_y"])
    with pytest.raises(ValueError, match="knobs .* apply to diffusion models only"):
        evaluate("realsr_df2k", dataset, ["psnr_y"], tmp_path / "x", {"w_spa": 0.5})


def test_the_drm_is_a_choice_and_the_old_drm_path_key_still_composes():
    from spasemsr.config import load_config
    from spasemsr.weights.exports import load_drm
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "spasemsr.yaml")
    assert cfg.model.drm == "tiny"
    assert load_config(REPO / "configs" / "spasemsr.yaml", ["model.drm_path=''"]).model.drm == "none"
    assert load_config(REPO / "configs" / "spasemsr.yaml", ["model.drm_path=/x/drm"]).model.drm == "/x/drm"
    export = REPO / "weights" / "tiny" / "spasemsr"
    assert load_drm(export, "none", 4, "cpu") is None
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    outputs = {name: load_drm(export, name, 4, "cpu")(lr) for name in ("tiny", "realesrgan_x4plus", "realsr_df2k")}
    assert all(sr.shape == (1, 3, 64, 64) for sr in outputs.values())
    assert not torch.allclose(outputs["tiny"], outputs["realesrgan_x4plus"], atol=1e-2)
    assert not torch.allclose(outputs["realsr_df2k"], outputs["realesrgan_x4plus"], atol=1e-2)
