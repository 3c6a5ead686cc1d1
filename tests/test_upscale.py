"""``spasemsr upscale`` and the CLI surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spasemsr.cli import main
from spasemsr.data.images import read_image, write_image


def _lr_image(path, height, width):
    write_image(torch.rand(3, height, width, generator=torch.Generator().manual_seed(height)), path)
    return path


def test_output_is_exactly_four_times_the_input(export_dir, tmp_path):
    inputs = [_lr_image(tmp_path / "odd.png", 13, 10), _lr_image(tmp_path / "wide.png", 16, 24)]
    out = tmp_path / "sr"
    assert main(["upscale", *map(str, inputs), "--out", str(out), "--ckpt", str(export_dir), "--steps", "2"]) == 0
    assert read_image(out / "odd.png").shape == (3, 52, 40)
    assert read_image(out / "wide.png").shape == (3, 64, 96)


def test_bad_inputs_are_skipped_by_name_and_outputs_kept(export_dir, tmp_path, capsys):
    good = _lr_image(tmp_path / "good.png", 8, 8)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "sr"
    code = main(["upscale", str(bad), str(good), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1"])
    assert code == 1 and (out / "good.png").is_file() and not (out / "broken.png").exists()
    assert "broken.png" in capsys.readouterr().err
    before = (out / "good.png").read_bytes()
    write_image(torch.zeros(3, 4, 4), out / "good.png")
    sentinel = (out / "good.png").read_bytes()
    main(["upscale", str(good), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1"])
    assert (out / "good.png").read_bytes() == sentinel  # not overwritten without --overwrite
    main(["upscale", str(good), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1", "--overwrite"])
    assert (out / "good.png").read_bytes() == before  # same seed, same result


def test_folders_globs_formats_and_name_clashes(export_dir, tmp_path, capsys, monkeypatch):
    _lr_image(tmp_path / "in" / "a.png", 8, 8)
    _lr_image(tmp_path / "in" / "b.jpg", 8, 12)
    _lr_image(tmp_path / "more" / "c.webp", 12, 8)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sr"
    argv = ["upscale", "in", "more/*.webp", "nothing/*.png", "--out", str(out), "--ckpt", str(export_dir),
            "--steps", "1", "--format", "jpg", "--suffix", "_x4"]
    assert main(argv) == 1  # the empty glob is reported; everything else is written
    assert sorted(p.name for p in out.iterdir()) == ["a_x4.jpg", "b_x4.jpg", "c_x4.jpg"]
    assert read_image(out / "c_x4.jpg").shape == (3, 48, 32)
    assert "nothing/*.png matches no image file" in capsys.readouterr().err
    _lr_image(tmp_path / "more" / "a.png", 8, 8)
    assert main(["upscale", "in/a.png", "more/a.png", "--out", str(tmp_path / "clash"), "--ckpt",
                 str(export_dir)]) == 2
    assert "would both be written to" in capsys.readouterr().err and not (tmp_path / "clash").exists()


def test_alpha_and_icc_profile_are_carried_to_the_output(export_dir, tmp_path, capsys):
    from PIL import Image, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = (torch.rand(3, 8, 12, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    alpha = torch.linspace(0, 255, 12).round().to(torch.uint8).expand(1, 8, 12)  # a left-to-right fade
    source = tmp_path / "logo.png"
    Image.fromarray(torch.cat([rgb, alpha]).permute(1, 2, 0).numpy(), mode="RGBA").save(source, icc_profile=icc)
    out = tmp_path / "sr"
    assert main(["upscale", str(source), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1"]) == 0
    with Image.open(out / "logo.png") as result:
        assert result.mode == "RGBA" and result.size == (48, 32) and result.info.get("icc_profile") == icc
        kept = torch.from_numpy(np.asarray(result.getchannel("A"), dtype=np.float32)) / 255
    assert kept[:, :8].mean() < 0.15 and kept[:, -8:].mean() > 0.85  # the fade survives, upscaled
    assert main(["upscale", str(source), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1",
                 "--format", "jpg"]) == 0
    assert "has no alpha channel" in capsys.readouterr().err
    with Image.open(out / "logo.jpg") as result:
        assert result.mode == "RGB" and result.info.get("icc_profile") == icc


def test_device_auto_prefers_a_visible_gpu(monkeypatch):
    from spasemsr.upscale import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu" and pick_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"


def test_precision_auto_is_half_on_cuda_only():
    from spasemsr.upscale import pick_precision

    assert pick_precision("auto", "cuda:0") == torch.float16 and pick_precision("auto", "cpu") == torch.float32
    assert pick_precision("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="valid: auto, fp32, fp16, bf16"):
        pick_precision("fp8", "cpu")


def test_upscale_needs_an_exported_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("spasemsr.cli.DEFAULT_MODEL", str(tmp_path / "no-shipped-weights"))
    assert main(["upscale", "x.png", "--out", str(tmp_path)]) == 2
    assert "--ckpt" in capsys.readouterr().err
    assert main(["upscale", "x.png", "--out", str(tmp_path), "--ckpt", str(tmp_path)]) == 2  # a user error: one line
    err = capsys.readouterr().err
    assert "is not an exported SR model" in err and len(err.strip().splitlines()) == 1


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for verb in ("train", "evaluate", "upscale", "ablate", "sweep", "figures", "doctor"):
        assert verb in text


def _no_model(monkeypatch):
    """Fail the test if upscale gets as far as loading a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr("spasemsr.upscale.load_pipeline", refuse)


def test_bad_output_folders_and_names_are_refused_before_any_compute(export_dir, tmp_path, capsys, monkeypatch):
    image = _lr_image(tmp_path / "in" / "a.png", 8, 8)
    (tmp_path / "file.txt").write_text("x")
    _no_model(monkeypatch)
    cases = {
        str(tmp_path / "file.txt"): "is a file, expected a folder",
        str(tmp_path / "file.txt" / "sub"): "cannot be created",
    }
    for out, message in cases.items():
        assert main(["upscale", str(image), "--out", out, "--ckpt", str(export_dir)]) == 2
        assert message in capsys.readouterr().err
    for suffix in ("/x", "..", "_a/../b"):
        assert main(["upscale", str(image), "--out", str(tmp_path / "sr"), "--ckpt", str(export_dir),
                     "--suffix", suffix]) == 2
        assert "may not hold a path separator" in capsys.readouterr().err
    assert main(["upscale", str(image), "--out", str(tmp_path / "in"), "--ckpt", str(export_dir), "--overwrite"]) == 2
    assert "is an input" in capsys.readouterr().err and read_image(image).shape == (3, 8, 8)


def test_absolute_quoted_globs_work(export_dir, tmp_path):
    for name in ("a", "b"):
        _lr_image(tmp_path / "in" / f"{name}.png", 8, 8)
    out = tmp_path / "sr"
    assert main(["upscale", str(tmp_path / "in" / "*.png"), "--out", str(out), "--ckpt", str(export_dir),
                 "--steps", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_a_failed_write_loses_only_that_image_and_leaves_no_partial_file(export_dir, tmp_path, capsys, monkeypatch):
    import errno

    from PIL import Image

    inputs = [_lr_image(tmp_path / "in" / f"{name}.png", 8, 8) for name in ("a", "b", "c")]
    save = Image.Image.save

    def disk_full_for_b(self, stream, *args, **kwargs):
        if Path(getattr(stream, "name", "")).name.startswith(".b.png"):
            stream.write(b"half an image")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, stream, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", disk_full_for_b)
    out = tmp_path / "sr"
    assert main(["upscale", *map(str, inputs), "--out", str(out), "--ckpt", str(export_dir), "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{inputs[1]}: cannot write {out / 'b.png'}: No space left on device" in err
    assert "2 written, 0 kept (already there), 1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]  # no b.png, no temporary file


def test_ctrl_c_prints_one_line_of_what_was_written(export_dir, tmp_path, capsys, monkeypatch):
    from spasemsr.pipeline import SRPipeline

    inputs = [_lr_image(tmp_path / "in" / f"{name}.png", 8, 8) for name in ("a", "b", "c")]
    calls, call = [], SRPipeline.__call__

    def interrupt_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return call(self, *args, **kwargs)

    monkeypatch.setattr(SRPipeline, "__call__", interrupt_second)
    assert main(["upscale", *map(str, inputs), "--out", str(tmp_path / "sr"), "--ckpt", str(export_dir),
                 "--steps", "1", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 written, 0 kept (already there), 0 failed; 2 not finished" in err
    assert "Traceback" not in err


def test_outputs_honour_the_umask(export_dir, tmp_path):
    import os

    from spasemsr.utils.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        image = _lr_image(tmp_path / "a.png", 8, 8)
        assert main(["upscale", str(image), "--out", str(tmp_path / "sr"), "--ckpt", str(export_dir),
                     "--steps", "1"]) == 0
        atomic_write_text(tmp_path / "metrics.json", "{}")  # metrics, configs, manifests and fronts use this
        for path in (image, tmp_path / "sr" / "a.png", tmp_path / "metrics.json"):
            assert oct(path.stat().st_mode & 0o777) == "0o644", path
        os.umask(0o027)
        atomic_write_text(tmp_path / "private.json", "{}")
        assert oct((tmp_path / "private.json").stat().st_mode & 0o777) == "0o640"
    finally:
        os.umask(old)


def test_user_errors_are_one_line_and_exit_2_for_every_verb(tmp_path, capsys):
    (tmp_path / "damaged.db").write_text("not a database")
    cases = {
        "train": (["train", "--config", "configs/controlnet_sr.yaml", "trainer.max_stepz=3"],
                  "unknown config key 'trainer.max_stepz'"),
        "evaluate": (["evaluate", "--data", f"hr_folder:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "e")],
                     "does not exist"),
        "sweep": (["sweep", "--storage", "nonsense", "--study", "s"], "'nonsense' is not a storage URL"),
        "sweep db": (["sweep", "--storage", f"sqlite:///{tmp_path / 'damaged.db'}", "--study", "s"],
                     "cannot open it as an Optuna study database"),
        "ablate": (["ablate", "--experiment", str(tmp_path / "none.yaml")], "none.yaml"),
        "figures": (["figures", "--from", str(tmp_path / "empty"), "--out", str(tmp_path / "f")], "missing"),
    }
    for case, (argv, message) in cases.items():
        assert main(argv) == 2, case
        err = capsys.readouterr().err.strip()
        assert message in err and "Traceback" not in err, (case, err)
        assert len(err.splitlines()) == 1, (case, err)
    from spasemsr.config import ConfigError

    with pytest.raises(ConfigError):  # --debug: the traceback, for a bug report
        main(["--debug", "train", "--config", "configs/controlnet_sr.yaml", "trainer.max_stepz=3"])


def test_conditioning_reports_its_stages_and_grounds_a_large_photo_at_a_bounded_size():
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline("weights/tiny/spasemsr")
    conditioner = pipeline.conditioner
    assert conditioner.grounding_side == 1024
    seen, stages = {}, []
    drm, grounder = conditioner.drm, conditioner.grounder
    conditioner.drm = lambda lr: seen.setdefault("drm", []).append(tuple(lr.shape[-2:])) or drm(lr)
    conditioner.grounder = lambda image, keys=None: seen.setdefault("grounder", tuple(image.shape[-2:])) and grounder(
        image, keys=keys)
    conditioner.on_stage = stages.append
    lr = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(0))  # x4: 1600 x 1200
    conditioner(lr, tile=512, overlap=64)
    assert seen["grounder"] == (768, 1024)  # DRM(LR) at the grounding side, not 1200 x 1600
    assert all(h <= 192 and w <= 256 for h, w in seen["drm"])  # the DRM ran on the LR shrunk to match (in tiles)
    assert sum(h * w for h, w in seen["drm"]) < 300 * 400
    assert stages == ["DRM tile"] * len(seen["drm"]) + ["grounder", "describer", "encoders"]
    conditioner.on_stage, seen = None, {}
    conditioner(lr[..., :64, :80])  # an LR whose x4 output is within the side: DRM and grounder at full size
    assert seen["drm"] == [(64, 80)] and seen["grounder"] == (256, 320)


def test_an_export_whose_drm_path_names_the_old_export_folder_still_loads(tmp_path, capsys):
    import shutil

    from spasemsr.weights.exports import load_pipeline
    from tests.conftest import REPO

    export = tmp_path / "spasemsr"
    shutil.copytree(REPO / "weights" / "tiny" / "spasemsr", export)
    config = (export / "config.yaml").read_text()
    assert "drm: tiny\n" in config
    old_style = config.replace("drm: tiny\n", "drm_path: weights/tiny/drm\n")  # before model.drm and the convention
    (export / "config.yaml").write_text(old_style)
    assert load_pipeline(export).conditioner.drm is not None
    assert "names a DRM export folder; reading" in capsys.readouterr().err


def test_upscale_with_a_pretrained_restorer_keeps_what_the_cli_keeps_and_tiles(tmp_path, capsys):
    from PIL import Image, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = (torch.rand(3, 20, 28, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    alpha = torch.linspace(0, 255, 28).round().to(torch.uint8).expand(1, 20, 28)
    source = tmp_path / "logo.png"
    Image.fromarray(torch.cat([rgb, alpha]).permute(1, 2, 0).numpy(), mode="RGBA").save(source, icc_profile=icc)
    Image.fromarray(rgb[0].numpy(), mode="L").save(tmp_path / "gray.jpg")
    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    assert main(["upscale", str(source), str(tmp_path / "gray.jpg"), "--out", str(whole), "--method",
                 "realesrgan_x4plus", "--quiet"]) == 0
    with Image.open(whole / "logo.png") as result:
        assert result.mode == "RGBA" and result.size == (112, 80) and result.info.get("icc_profile") == icc
    assert read_image(whole / "gray.png").shape == (3, 80, 112)
    assert main(["upscale", str(source), "--out", str(tiled), "--method", "realesrgan_x4plus", "--tile", "64",
                 "--tile-overlap", "32", "--quiet"]) == 0
    tiled_sr, whole_sr = read_image(tiled / "logo.png"), read_image(whole / "logo.png")
    assert tiled_sr.shape == whole_sr.shape and not torch.equal(tiled_sr, whole_sr)  # 3 x 2 tiles really ran
    assert (tiled_sr - whole_sr).abs().mean() < 0.05  # 16-pixel LR tiles of pure noise: close, not equal
    capsys.readouterr()
    for extra in (["--preset", "balance"], ["--steps", "3"], ["--ckpt", "weights/tiny/spasemsr"]):
        assert main(["upscale", str(source), "--out", str(tmp_path / "x"), "--method", "realesrgan_x4plus",
                     *extra]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
