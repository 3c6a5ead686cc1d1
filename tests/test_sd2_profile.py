"""The sd2 profile end to end on SD-2-shaped tiny random models: only paths differ from real weights."""

from __future__ import annotations

import torch

from spasemsr.config import load_config
from spasemsr.loading import load_pipeline
from spasemsr.training.run import train
from tests.conftest import REPO
from tests.tiny_models import write_owlv2, write_sam, write_sd2_shaped


def test_spasemsr_trains_exports_and_upscales_on_the_sd2_code_path(tmp_path):
    sd2, sam, owl = write_sd2_shaped(tmp_path / "sd2"), write_sam(tmp_path / "sam"), write_owlv2(tmp_path / "owl")
    cfg = load_config(REPO / "configs" / "spasemsr.yaml", [
        "profile=sd2", f"profile.backbone_path={sd2}", f"run.root={tmp_path / 'runs'}",
        "data.crop_size=64", "data.batch_size=1", "data.val_images=1", "data.repeat=1",
        "trainer.max_steps=1", "trainer.val_every_n_steps=1", "trainer.ckpt_every_n_steps=1", "sampler.steps=1",
        "model.visual.teacher=sam", f"model.visual.teacher_path={sam}", "model.visual.channels=8",
        "model.visual.width=8", "model.text.infer_grounder=owlv2", f"model.text.grounder_options.owlv2.path={owl}",
        "model.text.grounder_options.owlv2.vocabulary=cat,boat", "model.text.infer_describer=none",
        "model.drm_path=''",
    ])
    assert cfg.profile.text_encoder.name == "clip" and cfg.profile.text_encoder.path == str(sd2)
    export = train(cfg)
    pipeline = load_pipeline(export, steps=1)
    assert type(pipeline.net.text_encoder.model).__name__ == "CLIPTextModel"
    assert pipeline.multiple == 16  # x8 VAE and a 4-level UNet: LR sides padded to multiples of 16
    lr = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    sr = pipeline(lr, torch.Generator().manual_seed(0))
    assert sr.shape == (1, 3, 48, 80) and torch.isfinite(sr).all()
