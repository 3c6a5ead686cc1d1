"""An SR model's sampled latents as decoder training data: what the pipeline decodes, reproducible, resumable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from spasemsr.config import load_config
from spasemsr.data.sampled_latents import SampledLatents, make_pairs, shard_path
from tests.conftest import REPO


def _read(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_the_pipelines_latents_decode_to_its_raw_sample(export_dir):
    from spasemsr.diffusion.latents import decode
    from spasemsr.pipeline import sampler_settings
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline(export_dir)
    knobs = sampler_settings(pipeline.sampler, color_fix="none", backproject=0, steps=2)
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    prepared = pipeline.prepare(lr, knobs)
    latents = pipeline.latents(prepared, torch.Generator().manual_seed(3), knobs)
    sr = pipeline.sample(prepared, torch.Generator().manual_seed(3), knobs)
    assert torch.allclose(decode(pipeline.backbone.vae, latents), sr, atol=1e-6)


def test_pairs_are_a_function_of_seed_and_batch_and_a_stopped_run_resumes_them(export_dir, tmp_path):
    out = tmp_path / "pairs"
    assert make_pairs(export_dir, out, 2, seed=0, variants=["default"]) == 2
    first = [_read(shard_path(out, b)) for b in range(2)]
    shard_path(out, 1).unlink()  # as a kill between shards leaves it
    assert make_pairs(export_dir, out, 2, seed=0, variants=["default"]) == 1
    assert all(_same(_read(shard_path(out, b)), first[b]) for b in range(2))
    assert make_pairs(export_dir, out, 2, seed=0, variants=["default"]) == 0

    pairs = SampledLatents(out)
    assert len(pairs) == 4  # 2 shards of data.batch_size=2
    item = pairs[(1, 99)]  # the training stream's (index, seed) keys
    assert item["hr"].shape == (3, 64, 64) and 0 <= item["hr"].min() and item["hr"].max() <= 1
    assert item["latents"].shape == (4, 16, 16)
    assert make_pairs(export_dir, tmp_path / "other", 1, seed=1, variants=["default"]) == 1
    assert not _same(_read(shard_path(tmp_path / "other", 0)), first[0])  # another seed: other crops and noise
    with pytest.raises(ValueError, match="unknown variants"):
        make_pairs(export_dir, tmp_path / "x", 1, variants=["sharpest"])


def test_a_decoder_fits_sampled_latents_and_leaves_the_encoder(export_dir, prior_dir, tmp_path):
    from diffusers import AutoencoderKL

    from spasemsr.training.run import train

    make_pairs(export_dir, tmp_path / "pairs", 2, variants=["default"])
    init = prior_dir / "vae"
    overrides = [f"run.root={tmp_path}", f"model.init_from={init}", f"data.latents_dir={tmp_path / 'pairs'}",
                 "data.crop_size=32", "data.batch_size=2", "data.val_images=2", "trainer.max_steps=2",
                 "trainer.val_every_n_steps=2", "trainer.ckpt_every_n_steps=2"]
    export = train(load_config(REPO / "configs" / "tiny_vae_sr_decoder.yaml", overrides))
    before, after = (AutoencoderKL.from_pretrained(folder) for folder in (init, export / "vae"))
    assert after.config.scaling_factor == before.config.scaling_factor
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[key], new[key]) for key in old if key.startswith(("encoder.", "quant_conv.")))
    assert not all(torch.equal(old[key], new[key]) for key in old if key.startswith("decoder."))

    with pytest.raises(ValueError, match="train_encoder=false"):
        train(load_config(REPO / "configs" / "tiny_vae_sr_decoder.yaml", [*overrides, "model.train_encoder=true"]))


def test_the_spectrum_term_prices_blur_not_place(export_dir, prior_dir, tmp_path):
    import torch.nn.functional as F

    from spasemsr.models.autoencoder import AutoencoderModule, log_spectrum_l1

    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    shifted = image.roll((5, 3), dims=(-2, -1))
    blurred = F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    assert log_spectrum_l1(shifted, image) < 1e-4 < log_spectrum_l1(blurred, image)  # phase free; blur costs
    assert F.mse_loss(shifted, image) > F.mse_loss(blurred, image)  # where MSE prefers the blur

    make_pairs(export_dir, tmp_path / "pairs", 1, variants=["default"])
    config = load_config(REPO / "configs" / "tiny_vae_sr_decoder.yaml",
                         [f"model.init_from={prior_dir / 'vae'}", "model.spectrum_weight=0.5"])
    module = AutoencoderModule(config)
    logged = {}
    module.log_dict = lambda values, **_: logged.update(values)
    batch = SampledLatents(tmp_path / "pairs")[(0, 0)]
    loss = module.training_step({key: value[None] for key, value in batch.items()}, 0)
    assert set(logged) == {"train/loss", "train/mse", "train/spectrum"}
    assert torch.isclose(loss, logged["train/mse"] + 0.5 * logged["train/spectrum"])


def test_a_swapped_vae_lands_in_a_copy_whose_exports_read_it(tmp_path, prior_dir):
    from omegaconf import OmegaConf

    from spasemsr.evaluation.vae_swap import candidate_weights, compare

    shipped = tmp_path / "shipped"
    shutil.copytree(prior_dir, shipped / "prior")
    (shipped / "sr" / "controlnet").mkdir(parents=True)
    (shipped / "sr" / "config.yaml").write_text("profile:\n  backbone_path: weights/tiny/prior\n")
    vae = tmp_path / "cand"
    shutil.copytree(prior_dir / "vae", vae)
    (vae / "marker").write_text("candidate")
    root = candidate_weights(vae, tmp_path / "copy", shipped)
    assert (root / "prior" / "vae" / "marker").is_file() and not (shipped / "prior" / "vae" / "marker").exists()
    assert Path(OmegaConf.load(root / "sr" / "config.yaml").profile.backbone_path) == (root / "prior").resolve()
    with pytest.raises(FileNotFoundError, match="not a VAE folder"):
        candidate_weights(tmp_path, tmp_path / "copy2", shipped)

    for where, value in ((tmp_path / "a", 20.0), (tmp_path / "b", 20.5)):
        (where / "k_lr" / "row").mkdir(parents=True)
        (where / "k_lr" / "row" / "metrics.json").write_text(json.dumps({"means": {"psnr_y": value}}))
    rows = compare(tmp_path / "b", tmp_path / "a", "k_lr", ["row", "missing"], [0])
    assert rows == {"k_lr/row": {"seeds": 1, "psnr_y": {"shipped": 20.0, "candidate": 20.5, "change": 0.5}}}
    for where, value in ((tmp_path / "a", 21.0), (tmp_path / "b", 20.5)):
        (where / "k_lr" / "row" / "seed1").mkdir()
        (where / "k_lr" / "row" / "seed1" / "metrics.json").write_text(json.dumps({"means": {"psnr_y": value}}))
    two = compare(tmp_path / "b", tmp_path / "a", "k_lr", ["row"], [0, 1])["k_lr/row"]
    assert two["seeds"] == 2 and two["psnr_y"] == pytest.approx(
        {"shipped": 20.5, "shipped_std": 0.5 ** 0.5, "candidate": 20.5, "candidate_std": 0.0, "change": 0.0})
