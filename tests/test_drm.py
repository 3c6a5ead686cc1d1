"""The DRM: RRDBNet shapes and save/load, L1 training that learns, export, and the restorer registry."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from spasemsr.config import load_config
from spasemsr.data.datamodule import SRDataModule
from spasemsr.models.drm import DRMModule
from spasemsr.restore.baselines import RESTORERS, bicubic_upscale, load_restorer
from spasemsr.restore.drm import RRDBNet
from spasemsr.training.run import train
from tests.conftest import REPO, overfit

TINY = {"num_features": 16, "num_blocks": 1, "growth": 8}


@pytest.fixture
def drm_cfg(tmp_path):
    """A fast tiny-DRM run config writing under ``tmp_path``."""
    return load_config(REPO / "configs" / "tiny_drm.yaml", [
        f"run.root={tmp_path / 'runs'}", "data.crop_size=64", "data.batch_size=2", "data.val_images=2",
        "data.repeat=1", "trainer.max_steps=2", "trainer.ckpt_every_n_steps=2", "trainer.val_every_n_steps=2",
        "trainer.log_every_n_steps=1",
    ])


@pytest.mark.parametrize("scale", [2, 4])
def test_output_is_exactly_scale_times_the_input(scale):
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 9, 13)
    assert RRDBNet(**TINY, scale=scale)(lr).shape == (2, 3, 9 * scale, 13 * scale)


def test_unsupported_scale_and_input_are_named():
    with pytest.raises(ValueError, match=r"scale in \(2, 4\), got 3"):
        RRDBNet(**TINY, scale=3)
    with pytest.raises(ValueError, match=r"expects LR of shape \(B, 3, h, w\), got \(1, 1, 8, 8\)"):
        RRDBNet(**TINY)(torch.rand(1, 1, 8, 8))


def test_save_pretrained_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = RRDBNet(**TINY).eval()
    model.save_pretrained(tmp_path / "drm")
    loaded = RRDBNet.from_pretrained(tmp_path / "drm", local_files_only=True).eval()
    assert loaded.config.num_features == 16 and loaded.config.scale == 4
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(lr), loaded(lr))


def test_a_few_adamw_steps_lower_the_l1_on_a_fixed_batch(drm_cfg):
    torch.manual_seed(0)
    module = DRMModule(OmegaConf.merge(drm_cfg, {"model": {"lr": 1e-3}}))
    assert {name.split(".")[0] for name, p in module.named_parameters() if p.requires_grad} == {"drm"}
    datamodule = SRDataModule(drm_cfg.data, drm_cfg.degradation, drm_cfg.seed, degrade=True)
    datamodule.setup()
    batch = next(iter(datamodule.val_dataloader()))
    optimizer = module.configure_optimizers()["optimizer"]
    before, after = overfit(lambda: module.loss(batch), optimizer, 6)
    assert after < 0.8 * before, (before, after)


def test_scale_comes_from_data_not_arch(drm_cfg):
    with pytest.raises(ValueError, match="model.arch.scale=2 must not be set"):
        DRMModule(OmegaConf.merge(drm_cfg, {"model": {"arch": {"scale": 2}}}))


def test_training_exports_a_drm_that_loads_and_restores(drm_cfg):
    export = train(drm_cfg)
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["task"] == "drm" and manifest["steps"] == 2
    assert list(manifest["weights_sha256"]) == ["drm/diffusion_pytorch_model.safetensors"]
    assert {"train/loss", "val/loss", "val/psnr"} <= set(manifest["final_metrics"])

    model = RRDBNet.from_pretrained(export / "drm", local_files_only=True)
    assert model.config.num_blocks == drm_cfg.model.arch.num_blocks
    restore = load_restorer("drm", export / "drm")
    lr = torch.rand(1, 3, 10, 12)
    sr = restore(lr)
    assert sr.shape == (1, 3, 40, 48) and 0 <= sr.min() and sr.max() <= 1
    with torch.no_grad():
        assert torch.equal(sr, model(lr).clamp(0, 1))
    with pytest.raises(ValueError, match="is x4, but x2 was asked for"):
        load_restorer("drm", export / "drm", scale=2)


def test_bicubic_is_torch_bicubic_clamped():
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 7, 5)
    sr = bicubic_upscale(lr, 4)
    reference = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert sr.shape == (2, 3, 28, 20) and sr.min() >= 0 and sr.max() <= 1
    assert reference.min() < 0 or reference.max() > 1  # bicubic overshoots, so the clamp is exercised
    assert torch.equal(sr, reference.clamp(0, 1))
    assert torch.equal(load_restorer("bicubic", scale=2)(lr), bicubic_upscale(lr, 2))


def test_restorer_errors_name_what_is_valid(tmp_path):
    with pytest.raises(ValueError, match=r"unknown restorer 'esrgan'; valid: \['bicubic', 'drm', 'realesrgan_x4plus', "
                                         r"'realsr_df2k'\]"):
        load_restorer("esrgan")
    assert sorted(RESTORERS) == ["bicubic", "drm", "realesrgan_x4plus", "realsr_df2k"]
    with pytest.raises(FileNotFoundError, match="restorer 'drm' needs path="):
        load_restorer("drm", tmp_path)
    with pytest.raises(ValueError, match="has no weights"):
        load_restorer("bicubic", tmp_path)


def test_tiled_drm_matches_the_whole_image_closely():
    from spasemsr.evaluation.datasets import bundled_set
    from spasemsr.metrics.fidelity import psnr_y
    from spasemsr.restore.baselines import tiled

    drm = load_restorer("drm", REPO / "weights" / "tiny" / "drm" / "drm")
    lr = next(iter(bundled_set("kodak5", "realesrgan").head(1, 256))).lr[None]  # 64x64 LR
    whole = drm(lr)
    assert torch.equal(tiled(drm, lr, 4, tile=64, overlap=8), whole)  # one tile covers it: the whole path
    parts = tiled(drm, lr, 4, tile=32, overlap=12)
    assert parts.shape == whole.shape and not torch.equal(parts, whole)
    assert psnr_y(parts, whole).item() > 40  # differences only near tile borders, faded by the blend
