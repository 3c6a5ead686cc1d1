"""The describer: summary quantities and captions, the params/estimator/vlm/none backends, estimator training."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F

from spasemsr.config import load_config
from spasemsr.data.datamodule import SRDataModule
from spasemsr.data.degradation import PARAM_KEYS, RESIZE_MODES, DegradationConfig, RealESRGANDegradation
from spasemsr.guidance.describer import DESCRIBERS, load_describer
from spasemsr.guidance.describer.estimator import DegradationEstimator, estimator_metrics, to_targets
from spasemsr.guidance.describer.template import (
    CLEAN_CAPTION,
    POISSON_SIGMA_PER_SCALE,
    RESIZE_SIGMA,
    caption,
    degradation_summary,
    level,
    summarise,
)
from spasemsr.models.estimator import EstimatorModule
from spasemsr.training.run import train
from tests.conftest import REPO, overfit

TINY_ARCH = {"channels": [8, 16], "hidden": 16}


def _params(**changes: float) -> dict[str, torch.Tensor]:
    """One image's params for a clean pipeline (sharp, noiseless, quality 100), with ``changes`` applied."""
    nan = math.nan
    clean = {key: nan for key in PARAM_KEYS}
    clean.update(
        blur1_type=0.0, blur1_size=1.0, blur1_sigma_x=0.2, blur1_sigma_y=0.2,
        resize1_scale=1.0, noise1_type=0.0, noise1_level=0.0, noise1_gray=0.0, jpeg1_quality=100.0,
        blur2_applied=0.0, resize2_scale=1.0, resize2_mode=float(RESIZE_MODES.index("bicubic")),
        noise2_type=0.0, noise2_level=0.0, noise2_gray=0.0, jpeg2_quality=100.0,
        final_order=0.0, final_sinc_applied=0.0,
    )
    clean.update(changes)
    return {key: torch.tensor([value]) for key, value in clean.items()}


def test_levels_and_caption_wording():
    assert caption({"blur": 0.1, "noise": 1.0, "jpeg": 95.0}) == CLEAN_CAPTION
    assert caption({"blur": 0.7, "noise": 20.0, "jpeg": 80.0}) == (
        "a low-resolution photo with moderate blur, heavy noise and slight JPEG compression artifacts")
    assert caption({"blur": 0.1, "noise": 3.0, "jpeg": 95.0}) == "a low-resolution photo with slight noise"
    assert caption({"blur": 1.2, "noise": 0.0, "jpeg": 40.0}) == (
        "a low-resolution photo with heavy blur and heavy JPEG compression artifacts")
    # Edges belong to the worse bin; JPEG quality counts downwards.
    assert [level("blur", v) for v in (0.29, 0.3, 0.6, 1.0)] == [0, 1, 2, 3]
    assert [level("jpeg", q) for q in (90.0, 89.9, 70.0, 44.9)] == [0, 1, 1, 3]
    assert level("noise", torch.tensor([1.0, 5.0, 30.0])).tolist() == [0, 1, 3]
    with pytest.raises(KeyError, match="missing \\['jpeg'\\]"):
        caption({"blur": 0.0, "noise": 0.0})


def test_summary_of_hand_made_params():
    clean = degradation_summary(_params(), 0)
    assert clean == pytest.approx({"blur": 0.0, "noise": 0.0, "jpeg": 100.0}, abs=1e-4)
    # A Gaussian of sigma 4 HR pixels is one LR pixel of blur.
    blurred = degradation_summary(_params(blur1_size=21.0, blur1_sigma_x=4.0, blur1_sigma_y=4.0), 0)
    assert blurred["blur"] == pytest.approx(1.0, abs=0.03)
    # Shrinking to half the LR size first and growing back costs resolution: blur grows, noise at LR stays.
    halved = degradation_summary(_params(resize2_scale=0.5, final_resize_mode=0.0), 0)
    assert halved["blur"] == pytest.approx(RESIZE_SIGMA[RESIZE_MODES.index("bicubic")] * math.sqrt(3), abs=1e-4)
    assert degradation_summary(_params(noise2_level=10.0), 0)["noise"] == pytest.approx(10.0)
    poisson = degradation_summary(_params(noise2_type=1.0, noise2_level=1.0), 0)["noise"]
    assert poisson == pytest.approx(POISSON_SIGMA_PER_SCALE) and 11 < poisson < 12
    # Stage-1 noise at HR resolution is averaged 4x4 by the x4 downscale.
    assert degradation_summary(_params(noise1_level=20.0), 0)["noise"] == pytest.approx(5.0)
    # The first JPEG counts only when its blocks survive at LR scale.
    assert degradation_summary(_params(jpeg1_quality=40.0, jpeg2_quality=80.0), 0)["jpeg"] == 80.0
    coarse = _params(jpeg1_quality=40.0, jpeg2_quality=80.0, resize1_scale=0.25, resize1_mode=0.0)
    assert degradation_summary(coarse, 0)["jpeg"] == 40.0
    partial = {k: v for k, v in _params().items() if k != "jpeg2_quality"}
    with pytest.raises(KeyError, match=r"lack \['jpeg2_quality'\]"):
        summarise(partial)


def test_resize_constants_match_torch_antialiased_kernels():
    size, factor = 64, 8
    impulses = torch.eye(size).reshape(size, 1, 1, size)
    for mode, expected in zip(RESIZE_MODES, RESIZE_SIGMA, strict=True):
        out = F.interpolate(impulses, size=(1, size // factor), mode=mode, antialias=mode != "area")
        weights = out.reshape(size, size // factor)[:, size // factor // 2]  # one output pixel, input units
        energy_2d = (weights.pow(2).sum() * factor) ** 2  # sum k^2 in output pixels, separable kernel
        assert math.sqrt(1 / (4 * math.pi * energy_2d)) == pytest.approx(expected, abs=2e-3), mode


def test_params_describer_on_real_pipeline_params():
    hr = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    lr, params = RealESRGANDegradation(DegradationConfig())(hr, torch.Generator().manual_seed(1))
    summary = summarise(params)
    assert all(torch.isfinite(v).all() for v in summary.values())
    assert (summary["blur"] >= 0).all() and (summary["noise"] > 0).all()
    assert ((summary["jpeg"] >= 30) & (summary["jpeg"] <= 95)).all()
    captions = load_describer("params")(lr, params)
    assert captions == [caption(degradation_summary(params, i)) for i in range(6)]
    assert all(text.startswith("a ") for text in captions)
    with pytest.raises(ValueError, match="needs the degradation parameters.*estimator or vlm"):
        load_describer("params")(lr, None)


def test_registry_names_and_errors(tmp_path):
    assert set(DESCRIBERS) == {"params", "estimator", "vlm", "none"}
    assert load_describer("none")(torch.rand(3, 3, 8, 8)) == ["", "", ""]
    with pytest.raises(ValueError, match=r"unknown describer 'llava'.*\['estimator', 'none', 'params', 'vlm'\]"):
        load_describer("llava")
    with pytest.raises(ValueError, match=r"describer 'estimator' takes options \['path', 'device', 'fields'\]"):
        load_describer("estimator", checkpoint="x")
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(tmp_path / 'missing'))}.*configs/tiny_estimator.yaml"):
        load_describer("estimator", path=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(tmp_path))}.*llava-hf/llava-1.5-7b-hf"):
        load_describer("vlm", path=str(tmp_path))


def test_estimator_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DegradationEstimator(**TINY_ARCH).eval()
    model.save_pretrained(tmp_path / "estimator")
    loaded = DegradationEstimator.from_pretrained(tmp_path / "estimator", local_files_only=True).eval()
    lr = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(lr), loaded(lr))
    assert loaded.summaries(lr) == model.summaries(lr)
    assert load_describer("estimator", path=str(tmp_path / "estimator"))(lr) == [
        caption(s) for s in model.summaries(lr)]
    with pytest.raises(ValueError, match="predicts"):
        DegradationEstimator(quantities=("blur",))


def test_metrics_score_bins_and_natural_units():
    truth = {"blur": torch.tensor([0.5, 1.5]), "noise": torch.tensor([4.0, 20.0]), "jpeg": torch.tensor([50.0, 95.0])}
    perfect = estimator_metrics(to_targets(truth), truth)
    assert all(perfect[f"bin_agreement_{q}"] == 1 for q in truth) and perfect["caption_agreement"] == 1
    off = dict(truth, noise=torch.tensor([4.0, 10.0]))  # second image: heavy -> moderate noise
    metrics = estimator_metrics(to_targets(off), truth)
    assert metrics["mae_noise"] == pytest.approx(5.0, rel=1e-4) and metrics["mae_blur"] < 1e-5
    assert metrics["bin_agreement_noise"] == 0.5 and metrics["caption_agreement"] == 0.5


@pytest.fixture
def est_cfg(tmp_path):
    """The tiny estimator config, shrunk to run in seconds, writing under ``tmp_path``."""
    return load_config(REPO / "configs" / "tiny_estimator.yaml", [
        f"run.root={tmp_path / 'runs'}", "data.crop_size=64", "data.batch_size=4", "data.val_images=2",
        "trainer.max_steps=2", "trainer.val_every_n_steps=2", "trainer.ckpt_every_n_steps=2",
        "trainer.log_every_n_steps=1", "model.arch.channels=[8,16]", "model.arch.hidden=16",
    ])


def test_a_few_adamw_steps_lower_the_loss_on_a_fixed_batch(est_cfg):
    torch.manual_seed(0)
    datamodule = SRDataModule(est_cfg.data, est_cfg.degradation, est_cfg.seed, degrade=True)
    datamodule.setup()
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    est_cfg.model.lr = 1e-2
    est_cfg.trainer.lr_schedule = "constant"  # the shipped recipe warms up from lr 0; this steps the optimiser alone
    module = EstimatorModule(est_cfg)
    optimizer = module.configure_optimizers()["optimizer"]
    before, after = overfit(lambda: module.loss(batch), optimizer, 15)
    assert after < 0.5 * before, (before, after)


def test_training_exports_an_estimator_the_describer_loads(est_cfg):
    export = train(est_cfg)
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["task"] == "estimator" and manifest["steps"] == 2
    assert {"val/loss", "val/mae_blur", "val/bin_agreement_noise", "val/caption_agreement"} <= set(
        manifest["final_metrics"])

    datamodule = SRDataModule(est_cfg.data, est_cfg.degradation, est_cfg.seed, degrade=True)
    datamodule.setup()
    batch = next(iter(datamodule.val_dataloader()))
    assert set(batch["degradation"]) == set(PARAM_KEYS) and batch["degradation"]["jpeg2_quality"].shape == (2,)
    captions = load_describer("estimator", path=str(export / "estimator"))(batch["lr"])
    assert len(captions) == 2 and all(text.startswith("a ") for text in captions)


def _tiny_vlm(folder) -> None:
    """A random LLaVA (tiny CLIP vision tower + tiny Llama) with a word-level tokenizer, saved to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    from spasemsr.guidance.describer.vlm import PROMPT

    words = ["noisy", "blurry", "USER:", "ASSISTANT:", *PROMPT.split(), "<pad>", "<s>", "</s>", "<unk>", "<image>"]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    template = ("{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
                "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %} ASSISTANT:")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=template,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, image_size=28, patch_size=14, projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                                pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"]),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default", image_seq_length=4,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


def test_vlm_describer_generates_greedily_from_a_local_folder(tmp_path):
    _tiny_vlm(tmp_path)
    describer = load_describer("vlm", path=str(tmp_path), max_new_tokens=5)
    lr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    first = describer(lr)
    assert len(first) == 2 and first == describer(lr)  # greedy: repeatable
    assert all(len(text.split()) <= 5 and "ASSISTANT" not in text for text in first)
    # With the final norm zeroed every logit is 0, so greedy decoding picks token 0 ("noisy") every step:
    # the caption is exactly the new tokens, decoded, max_new_tokens long, with no prompt echoed.
    with torch.no_grad():
        describer.model.model.language_model.norm.weight.zero_()
    assert describer(lr) == ["noisy noisy noisy noisy noisy"] * 2


def test_caption_fields_leave_out_what_the_describer_cannot_estimate_in_training_and_inference_alike(tmp_path):
    from spasemsr.config.tasks import TextGuidance
    from spasemsr.guidance.backends import text_backends

    summary = {"blur": 0.8, "noise": 8.0, "jpeg": 50.0}
    assert caption(summary) == "a low-resolution photo with moderate blur, moderate noise and moderate JPEG " \
                               "compression artifacts"
    assert caption(summary, ("noise",)) == "a low-resolution photo with moderate noise"
    assert caption({"noise": 1.0}, ("noise",)) == CLEAN_CAPTION
    with pytest.raises(ValueError, match="subset of \\['blur', 'noise', 'jpeg'\\]"):
        load_describer("params", fields=("haze",))
    folder = tmp_path / "estimator"
    DegradationEstimator().save_pretrained(folder)
    text = TextGuidance(spatial="none", caption_fields=["noise"],
                        describer_options={"estimator": {"path": str(folder)}})
    (_, trains), (_, infers) = (text_backends(text, stage, "cpu") for stage in ("train", "infer"))
    assert trains.fields == infers.fields == ("noise",)
    lr = torch.rand(2, 3, 16, 16)
    params = RealESRGANDegradation(DegradationConfig())(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))[1]
    for describer in (trains, infers):
        assert all(c == CLEAN_CAPTION or ("noise" in c and "blur" not in c and "JPEG" not in c)
                   for c in describer(lr, params))
