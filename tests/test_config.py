"""Config composition, overrides and validation errors."""

from __future__ import annotations

import re

import pytest

from spasemsr.cli import main
from spasemsr.config import ConfigError, config_hash, load_config, training_hash
from spasemsr.registries import TASKS
from tests.conftest import REPO

TOP_LEVEL = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_shipped_config_composes(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.model.name in TASKS
    assert cfg.profile.name == "tiny"


def test_dotted_and_group_overrides():
    cfg = load_config(REPO / "configs" / "controlnet_sr.yaml", ["trainer=gpu", "trainer.max_steps=7",
                                                                  "degradation.jpeg1_range=[90,90]"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.max_steps == 7
    assert list(cfg.degradation.jpeg1_range) == [90, 90]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'data.crop'.*'crop_size'"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["data.crop=3"])
    with pytest.raises(ConfigError, match=r"'degradation.blur1.sigma'.*'sigma_range'"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["degradation.blur1.sigma=3"])
    with pytest.raises(ConfigError, match=r"'model.lrate'.*\['init_from', 'lr', 'name', 'prompt'\]"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["model.lrate=3"])


def test_bad_values_and_groups_are_named():
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["trainer.max_steps=many"])
    valid = r"no option 'tpu' for config group 'trainer'; valid: \['cpu', 'ddp', 'ddp_24gb', 'gpu'\]"
    with pytest.raises(ConfigError, match=valid):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["trainer=tpu"])
    with pytest.raises(ConfigError, match="not a task"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["model.name=gan"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(REPO / "configs" / "controlnet_sr.yaml", ["max_steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(REPO / "configs" / "nope.yaml")


def test_degradation_ranges_are_checked_when_used():
    from omegaconf import OmegaConf

    cfg = load_config(REPO / "configs" / "controlnet_sr.yaml", ["degradation.jpeg1_range=[95,30]"])
    with pytest.raises(ValueError, match="jpeg1_range"):
        OmegaConf.to_object(cfg.degradation)


def test_config_hash_tracks_content():
    base = load_config(REPO / "configs" / "controlnet_sr.yaml")
    same = load_config(REPO / "configs" / "controlnet_sr.yaml")
    other = load_config(REPO / "configs" / "controlnet_sr.yaml", ["seed=1"])
    assert config_hash(base) == config_hash(same) != config_hash(other)
    # inference knobs are recorded beside the hash, not in it: the trained model is the same
    knobs = load_config(REPO / "configs" / "controlnet_sr.yaml", ["sampler.backproject=2", "sampler.steps=5"])
    assert config_hash(knobs) == config_hash(base)


def test_a_key_added_at_its_neutral_value_leaves_the_hashes_of_older_configs():
    from omegaconf import OmegaConf

    from spasemsr.config.compose import HASH_NEUTRAL

    base = load_config(REPO / "configs" / "controlnet_sr.yaml")
    tree = OmegaConf.to_container(base)
    del tree["data"]["latents_dir"]  # as a config composed before the key existed
    older = OmegaConf.create(tree)
    for hashed in (config_hash, training_hash):
        assert hashed(older) == hashed(base) != hashed(load_config(REPO / "configs" / "controlnet_sr.yaml",
                                                                   ["data.latents_dir=runs/pairs"]))
    assert HASH_NEUTRAL["data.latents_dir"] == base.data.latents_dir  # the neutral value is the default


def test_training_hash_ignores_where_how_long_and_on_what_a_run_trains():
    def hashed(*overrides):
        return training_hash(load_config(REPO / "configs" / "controlnet_sr.yaml", list(overrides)))

    base = hashed()
    for same in (["trainer.max_steps=9"], ["trainer=ddp_24gb"], ["run.root=/elsewhere"], ["trainer.resume=never"],
                 ["sampler.w_spa=0"], ["trainer.gradient_checkpointing=true"], ["data.num_workers=8"]):
        assert hashed(*same) == base, same
    for other in (["model.lr=0.1"], ["seed=1"], ["data.crop_size=64"], ["trainer.optimizer=adamw8bit"],
                  ["degradation.second_blur_prob=0"], ["trainer.accumulate_grad_batches=2"]):
        assert hashed(*other) != base, other


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "configs" / "trainer").glob("*.yaml")))
def test_every_trainer_preset_composes(preset):
    assert load_config(REPO / "configs" / "spasemsr.yaml", [f"trainer={preset}"]).trainer.max_steps == 3000


def test_sd2_profile_demands_a_backbone_path():
    from spasemsr.diffusion.backbone import MissingWeightsError, load_backbone

    cfg = load_config(REPO / "configs" / "controlnet_sr.yaml", ["profile=sd2"])
    assert cfg.profile.text_encoder.name == "clip"
    assert list(cfg.profile.control_embedding_channels) == [16, 32, 96, 256]
    with pytest.raises(MissingWeightsError, match="profile.backbone_path is empty"):
        load_backbone(cfg.profile.backbone_path)


@pytest.mark.parametrize("override", ["model.fusion=bogus", "model.text.spatial=boxes", "sampler.color_fix=sharp",
                                      "model.visual.distance=l7", "data.source=foo", "trainer.optimizer=sgd",
                                      "model.text.train_grounder=yolo", "profile.text_encoder.name=t5"])
def test_a_bad_enumerated_value_fails_at_composition_in_one_line(override, capsys):
    from spasemsr.cli import main

    key, value = override.split("=")
    with pytest.raises(ConfigError, match=f"{re.escape(key)}='{value}' is not one of \\["):
        load_config(REPO / "configs" / "spasemsr.yaml", [override])
    assert main(["train", "--config", str(REPO / "configs" / "spasemsr.yaml"), "--print-config", override]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{key}='{value}' is not one of" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("override", "message"), [
    ("model.text.grounder_options.owlv2.box_threshold=high", "grounder_options.owlv2.box_threshold: Value 'high'"),
    ("model.text.grounder_options.owlv2.bogus=1", "'model.text.grounder_options.owlv2.bogus'; valid keys here: "
                                                  "['box_threshold', 'device', 'max_detections', 'nms_iou', 'path'"),
    ("model.text.describer_options.vlm.max_new_tokens=many", "describer_options.vlm.max_new_tokens: Value 'many'"),
    ("model.text.grounder_options.auto.stride=wide", "grounder_options.auto.stride: Value 'wide'"),
    ("model.text.grounder_options.yolo.path=x", "'yolo' is not a grounder; valid: ['annotations', 'auto'"),
])
def test_backend_options_are_typed_by_their_backend_and_checked_at_composition(override, message, capsys):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(REPO / "configs" / "spasemsr.yaml", [override])
    assert main(["train", "--config", str(REPO / "configs" / "spasemsr.yaml"), "--print-config", override]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_good_backend_options_pass_and_a_registered_backend_is_typed_from_its_signature():
    from spasemsr.registries import GROUNDERS

    cfg = load_config(REPO / "configs" / "spasemsr.yaml", ["model.text.grounder_options.auto.stride=0.25",
                                                         "model.text.grounder_options.owlv2.vocabulary=[cat,dog]"])
    assert cfg.model.text.grounder_options.auto.stride == 0.25

    def load_toy(threshold: float = 0.5, device: str = "cpu"):
        raise AssertionError("composition must not build the backend")

    GROUNDERS.register("toy", load_toy)
    try:
        load_config(REPO / "configs" / "spasemsr.yaml", ["model.text.grounder_options.toy.threshold=0.9"])
        with pytest.raises(ConfigError, match="grounder_options.toy.threshold: Value 'x'"):
            load_config(REPO / "configs" / "spasemsr.yaml", ["model.text.grounder_options.toy.threshold=x"])
    finally:
        GROUNDERS.unregister("toy")
