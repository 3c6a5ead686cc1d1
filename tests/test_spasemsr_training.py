"""SpaSemSR end to end on the tiny profile: a training step, resume-safe export, and upscaling from the export."""

from __future__ import annotations

import json

import pytest
import torch

from spasemsr.data.datamodule import SRDataModule
from spasemsr.data.images import read_image, write_image
from spasemsr.models.spasemsr import SpaSemSRModule
from spasemsr.training.run import train
from spasemsr.weights.exports import load_pipeline
from tests.conftest import fast_config, overfit


@pytest.fixture
def spasem_cfg(tmp_path, prior_dir):
    return fast_config("spasemsr.yaml", tmp_path, prior_dir, 2, "model.text.infer_describer=none",
                       "model.drm=none", "model.visual.channels=8", "model.visual.width=8")


def _module_and_batch(cfg):
    torch.manual_seed(0)
    module = SpaSemSRModule(cfg)
    datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=True)
    datamodule.setup()
    return module, next(iter(datamodule.val_dataloader()))


def test_loss_combines_diffusion_and_constraints_and_learns(spasem_cfg):
    module, batch = _module_and_batch(spasem_cfg)
    assert "view" in batch and "degradation" in batch
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)

    def fixed_loss():
        return module.loss(batch, torch.Generator().manual_seed(0))

    before, after = overfit(fixed_loss, optimizer, 6)
    assert after < 0.9 * before, (before, after)
    assert module.teacher is not None and not any(p.requires_grad for p in module.teacher.parameters())


def test_train_export_and_upscale_from_the_export(spasem_cfg, tmp_path):
    export = train(spasem_cfg)
    assert (export / "guidance.safetensors").is_file() and (export / "controlnet" / "config.json").is_file()
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["task"] == "spasemsr" and manifest["steps"] == 2
    assert {"train/loss", "val/loss"} <= set(manifest["final_metrics"])

    pipeline = load_pipeline(export, steps=2)
    lr = torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(0))
    sr = pipeline(lr, torch.Generator().manual_seed(0))
    assert sr.shape == (1, 3, 40, 52) and 0 <= sr.min() and sr.max() <= 1
    write_image(lr[0], tmp_path / "lr.png")
    from spasemsr.cli import main

    assert main(["upscale", str(tmp_path / "lr.png"), "--out", str(tmp_path / "sr"), "--ckpt", str(export),
                 "--steps", "2"]) == 0
    assert read_image(tmp_path / "sr" / "lr.png").shape == (3, 40, 52)


def test_a_training_step_runs_the_visual_encoders_and_the_hr_vae_encoder_once(spasem_cfg):
    module, batch = _module_and_batch(spasem_cfg)
    calls = {"img": 0, "sem": 0, "vae encoder": 0}
    for name, part in (("img", module.net.visual.img), ("sem", module.net.visual.sem),
                       ("vae encoder", module.vae.encoder)):
        part.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    module.loss(batch, torch.Generator().manual_seed(0))
    assert calls == {"img": 1, "sem": 1, "vae encoder": 1}


@pytest.mark.parametrize("drm", ["none", "tiny"])
def test_the_training_grounder_sees_the_hr_crop_or_drm_lr_as_inference_does(spasem_cfg, drm):
    """train_grounding=drm_lr: the grounder gets the DRM(LR) that inference's conditioner would hand it."""
    from omegaconf import OmegaConf

    from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner
    from spasemsr.weights.exports import load_drm

    seen = []
    for where in ("hr", "drm_lr"):
        cfg = OmegaConf.merge(spasem_cfg, {"model": {"drm": drm, "text": {"train_grounding": where}}})
        module, batch = _module_and_batch(cfg)
        grounder, _ = module.text_backends()
        module._backends = (module.device, lambda images, g=grounder, **_: seen.append(images) or g(images), None)
        module._conditions(batch, torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], batch["hr"])
    restorer = load_drm(spasem_cfg.run.root, drm, 4, "cpu")
    expected = SpaSemSRConditioner(module.net, 4, None, None, restorer).cleaned(batch["lr"])
    assert seen[1].shape == batch["hr"].shape and torch.equal(seen[1], expected)
    assert not torch.allclose(seen[1], batch["hr"])


def test_drm_lr_photo_grounds_each_whole_photo_once_per_draw_as_inference_sizes_it(spasem_cfg):
    """train_grounding=drm_lr_photo: the grounder sees DRM(LR) of whole photos (at most grounding_side), never crops."""
    from omegaconf import OmegaConf

    from spasemsr.data.images import image_size

    cfg = OmegaConf.merge(spasem_cfg, {"model": {"drm": "tiny", "text": {
        "train_grounding": "drm_lr_photo", "train_grounding_draws": 2, "grounding_side": 256}}})
    module, batch = _module_and_batch(cfg)
    grounder, _ = module.text_backends()
    seen = []
    module._backends = (module.device, lambda images, g=grounder, **_: seen.append(images.shape) or g(images), None)
    module._conditions(batch, torch.Generator().manual_seed(0))
    module._conditions(batch, torch.Generator().manual_seed(1))
    photos = sorted(set(batch["path"]))
    assert len(seen) == 2 * len(photos)  # two draws per photo, then served from the cache
    for shape, path in zip(seen, [p for p in photos for _ in range(2)], strict=True):
        width, height = image_size(path)
        assert shape[0] == 1 and max(shape[-2:]) <= 256 and abs(shape[-1] / shape[-2] - width / height) < 0.05
