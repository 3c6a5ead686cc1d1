"""The sd2 profile end to end on SD-2-shaped tiny random models: only paths differ from real weights."""

from __future__ import annotations

from pathlib import Path

import torch

from spasemsr.config import load_config
from spasemsr.training.run import train
from spasemsr.weights.exports import load_pipeline
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
        "model.drm=none",
    ])
    assert cfg.profile.text_encoder.name == "clip" and cfg.profile.text_encoder.path == str(sd2)
    export = train(cfg)
    pipeline = load_pipeline(export, steps=1)
    assert type(pipeline.net.text_encoder.model).__name__ == "CLIPTextModel"
    assert pipeline.multiple == 16  # x8 VAE and a 4-level UNet: LR sides padded to multiples of 16
    lr = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    sr = pipeline(lr, torch.Generator().manual_seed(0))
    assert sr.shape == (1, 3, 48, 80) and torch.isfinite(sr).all()


def _fake_sd2(root: Path, **unet_changes) -> Path:
    """An SD-2 base folder with the real configs and safetensors holding only the tensors the doctor reads."""
    import json

    from safetensors.torch import save_file

    from spasemsr.diffusion.sd2 import SD2_COMPONENTS, SD2_SCHEDULE, SD2_TEXT, SD2_UNET, SD2_VAE

    configs = {"unet": {**SD2_UNET, **unet_changes}, "vae": SD2_VAE, "text_encoder": SD2_TEXT,
               "scheduler": SD2_SCHEDULE, "tokenizer": {"model_max_length": 77}}
    (root / "model_index.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({name: ["x", "y"] for name in configs}))
    for name, (config_file, _, stems, tensors) in SD2_COMPONENTS.items():
        folder = root / name
        folder.mkdir()
        (folder / config_file).write_text(json.dumps(configs[name]))
        if stems:
            shapes = dict(tensors)
            if name == "unet" and "cross_attention_dim" in unet_changes:
                key = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
                shapes[key] = (640, unet_changes["cross_attention_dim"])
            save_file({key: torch.zeros(shape) for key, shape in shapes.items()},
                      folder / f"{stems[0]}.safetensors")
    for file in ("vocab.json", "merges.txt"):
        (root / "tokenizer" / file).write_text("{}")
    return root


def test_doctor_sd2_accepts_a_folder_of_sd2_base_shapes(tmp_path, capsys):
    from spasemsr.cli import main

    assert main(["doctor", "--sd2", str(_fake_sd2(tmp_path / "sd2"))]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out and "ready for profile=sd2" in out


def test_doctor_sd2_names_what_is_missing_or_mismatched(tmp_path, capsys):
    from spasemsr.cli import main

    root = _fake_sd2(tmp_path / "sd15", cross_attention_dim=768)  # an SD-1.5 UNet
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (root / "tokenizer" / "merges.txt").unlink()
    assert main(["doctor", "--sd2", str(root)]) == 1
    out = capsys.readouterr().out
    assert "cross_attention_dim=768 (expected 1024)" in out
    assert "attn2.to_k.weight is [640, 768], expected [640, 1024]" in out
    assert f"no weights in {root / 'vae'}" in out and f"missing {root / 'tokenizer' / 'merges.txt'}" in out
    assert main(["doctor", "--sd2", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().out
