"""The tiny prior's two pretraining stages produce a backbone the SR stage loads like SD-2."""

from __future__ import annotations

import json

import pytest
import torch

from spasemsr.config import load_config
from spasemsr.diffusion.backbone import load_backbone
from spasemsr.training.run import train
from tests.conftest import REPO

FAST = ["data.batch_size=2", "data.val_images=2", "data.repeat=1", "trainer.max_steps=2",
        "trainer.val_every_n_steps=2", "trainer.ckpt_every_n_steps=2"]


def test_vae_then_prior_then_backbone(tmp_path):
    root = f"run.root={tmp_path}"
    vae = train(load_config(REPO / "configs" / "tiny_vae.yaml", [root, "data.crop_size=32", *FAST]))
    prior = train(load_config(REPO / "configs" / "tiny_prior.yaml", [root, "data.crop_size=64",
                                                                       f"model.vae_path={vae / 'vae'}", *FAST]))
    backbone = load_backbone(prior)
    scaling = backbone.vae.config.scaling_factor
    assert scaling != 1.0 and 0.01 < scaling < 100  # set from the latents, not left at the default
    with torch.no_grad():
        latents = backbone.vae.encode(torch.rand(1, 3, 64, 64) * 2 - 1).latent_dist.mode() * scaling
    assert latents.shape == (1, 4, 16, 16)
    for export in (vae, prior):
        manifest = json.loads((export / "manifest.json").read_text())
        assert manifest["steps"] == 2
        assert all(torch.isfinite(torch.tensor(v)) for v in manifest["final_metrics"].values())


def test_channel_shuffle_permutes_each_image_repeatably():
    from spasemsr.models.autoencoder import shuffle_channels

    images = torch.arange(8 * 3, dtype=torch.float32).view(8, 3, 1, 1).expand(8, 3, 2, 2).contiguous()
    first = shuffle_channels(images, torch.Generator().manual_seed(0))
    again = shuffle_channels(images, torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    orders = {tuple(image[:, 0, 0].tolist()) for image in first - images[:, :1]}
    assert all(sorted(order) == [0.0, 1.0, 2.0] for order in orders)  # a permutation of each image's own channels
    assert len(orders) > 1 and orders != {(0.0, 1.0, 2.0)}  # images get different orders, not the identity


def test_a_decoder_fine_tune_keeps_the_encoder_and_its_scaling_factor(tmp_path, prior_dir):
    from diffusers import AutoencoderKL

    init = prior_dir / "vae"
    export = train(load_config(REPO / "configs" / "tiny_vae_decoder.yaml", [
        f"run.root={tmp_path}", f"model.init_from={init}", "data.crop_size=32", *FAST]))
    before, after = (AutoencoderKL.from_pretrained(folder) for folder in (init, export / "vae"))
    assert after.config.scaling_factor == before.config.scaling_factor  # the prior's latents are unchanged
    old, new = before.state_dict(), after.state_dict()
    frozen = [key for key in old if key.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(old[key], new[key]) for key in frozen)
    assert not all(torch.equal(old[key], new[key]) for key in old if key.startswith("decoder."))


def test_a_decoder_fine_tune_needs_a_vae_to_start_from(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny_vae_decoder.yaml", [f"run.root={tmp_path}", "model.init_from=''", *FAST])
    with pytest.raises(ValueError, match="model.init_from"):
        train(cfg)


def test_saturation_jitter_scales_chroma_and_leaves_greys_and_luma_alone():
    from spasemsr.models.autoencoder import LUMA, jitter_saturation

    torch.manual_seed(0)
    colour = 0.25 + 0.5 * torch.rand(6, 3, 4, 4)  # well inside [0, 1]: strength 0.5 clips nothing
    grey = colour.mean(1, keepdim=True).expand(6, 3, 4, 4)
    out = jitter_saturation(colour, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, jitter_saturation(colour, 0.5, torch.Generator().manual_seed(1)))
    assert torch.allclose(jitter_saturation(grey, 0.5, torch.Generator().manual_seed(1)), grey)

    def luma(x):
        return sum(w * x[:, c] for c, w in enumerate(LUMA))

    assert torch.allclose(luma(out), luma(colour), atol=1e-6)
    ratio = (out - luma(out)[:, None]).flatten(1).norm(dim=1) / (colour - luma(colour)[:, None]).flatten(1).norm(dim=1)
    assert ratio.min() >= 1 and ratio.max() <= 1.5 and ratio.std() > 0.01  # one factor per image, in [1, 1.5]
    assert torch.allclose(jitter_saturation(colour, 0.0, torch.Generator().manual_seed(1)), colour)
