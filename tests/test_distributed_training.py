"""Training at scale: DDP that is correct (not just running), exact resume, lean checkpoints, memory options.

The 2-process runs use the gloo backend on CPU: the same Lightning code path as NCCL on GPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, seed_everything
from omegaconf import OmegaConf

from spasemsr.ablation.runner import variant_config
from spasemsr.ablation.spec import load_spec
from spasemsr.config import load_config, validate
from spasemsr.data.datamodule import SRDataModule
from spasemsr.models.spasemsr import SpaSemSRModule
from spasemsr.registries import TASKS
from spasemsr.training.run import build_trainer, resume_path, run_dir, train
from tests.conftest import REPO, fast_config

SPASEM_FAST = ("model.text.infer_describer=none", "model.drm=none", "model.visual.channels=8",
               "model.visual.width=8")


def _merge(cfg, *dotted: str):
    return validate(OmegaConf.merge(OmegaConf.to_container(cfg), OmegaConf.from_dotlist(list(dotted))))


def _trace(folder: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (folder / "trace" / f"rank{rank}.jsonl").read_text().splitlines()]


def _steps(records: list[dict]) -> dict[int, dict]:
    return {r["step"]: r for r in records if "loss" in r}


def _val_batch(cfg) -> dict:
    datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=True)
    datamodule.setup()
    return next(iter(datamodule.val_dataloader()))


def _woken(module):
    """Random weights in the zero-initialised (no-op) guidance, as training gives them, so that knobs could matter."""
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    return module


# --- every trainable parameter takes part in every step (what DDP requires), for every ablation variant ---

ABLATION = load_spec(REPO / "experiments" / "ablation.yaml")


@pytest.mark.parametrize("variant", sorted(ABLATION.variants))
def test_every_trainable_parameter_gets_a_gradient_even_without_detections(variant, prior_dir, tmp_path):
    cfg = _merge(variant_config(ABLATION, variant, "smoke", tmp_path), f"profile.backbone_path={prior_dir}",
                 *([] if variant == "baseline" else SPASEM_FAST))
    batch = _val_batch(cfg)
    # dropout 1: every condition dropped, so no image of the batch has a box or a caption
    for changes in ([],) if variant == "baseline" else (["model.cond_dropout=0"], ["model.cond_dropout=1"]):
        module = TASKS.get(cfg.model.name).module_class(_merge(cfg, *changes))
        module.loss(batch, torch.Generator().manual_seed(0)).backward()
        missing = [name for name, p in module.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, (variant, changes, missing[:5])


# --- two ranks on CPU (gloo) through the CLI, as a user launches it ---

def _ddp_launch(config: str, root: Path, prior_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = [f"run.root={root}", f"profile.backbone_path={prior_dir}", "data.crop_size=64", "data.batch_size=2",
            "data.val_images=2", "data.repeat=1", "sampler.steps=2", "trainer.max_steps=4",
            "trainer.val_every_n_steps=2", "trainer.ckpt_every_n_steps=2", "trainer.log_every_n_steps=1",
            "trainer.strategy=ddp", "trainer.devices=2", "trainer.trace=true", *overrides]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "spasemsr", "train", "--config", str(REPO / "configs" / config),
                           *args], env=env, capture_output=True, text=True, timeout=600)


def _ddp_run(config: str, root: Path, prior_dir: Path, *overrides: str) -> tuple[Path, str]:
    done = _ddp_launch(config, root, prior_dir, *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / load_config(REPO / "configs" / config).run.name, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("config", "overrides"), [("controlnet_sr.yaml", ()), ("spasemsr.yaml", SPASEM_FAST)])
def test_two_ddp_ranks_draw_different_streams_and_export_once(config, overrides, prior_dir, tmp_path):
    folder, stdout = _ddp_run(config, tmp_path / "runs", prior_dir, *overrides)
    ranks = [_trace(folder, rank) for rank in (0, 1)]
    steps = [_steps(records) for records in ranks]
    assert sorted(steps[0]) == sorted(steps[1]) == [1, 2, 3, 4]
    assert all(r["world_size"] == 2 for records in ranks for r in records)
    for step in steps[0]:
        a, b = steps[0][step], steps[1][step]
        assert a["batch_number"] == b["batch_number"] == step - 1
        assert a["timesteps"] != b["timesteps"], step
        assert a["degradation"]["noise1_level"] != b["degradation"]["noise1_level"], step
    items = [{(path, tuple(crop)) for s in rank.values() for path, crop in
              zip(s["path"], [s["crop"][i:i + 4] for i in range(0, len(s["crop"]), 4)], strict=True)}
             for rank in steps]
    assert not items[0] & items[1]  # no crop was seen by both ranks

    validations = [[r for r in records if "val_logged" in r] for records in ranks]
    assert [len(v) for v in validations] == [2, 2]
    for first, second in zip(*validations, strict=True):
        local = [sum(v["val_local_losses"]) / len(v["val_local_losses"]) for v in (first, second)]
        assert local[0] != local[1]  # each rank validated its own share...
        for logged in (first["val_logged"]["val/loss"], second["val_logged"]["val/loss"]):
            assert logged == pytest.approx(sum(local) / 2, rel=1e-5)  # ...and both logged the mean

    exports = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"run"')]
    assert len(exports) == 1 and exports[0]["step"] == 4  # only rank zero exported
    manifest = json.loads((folder / "export" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["steps"] == 4
    assert manifest["final_metrics"]["val/loss"] == pytest.approx(validations[0][-1]["val_logged"]["val/loss"])


# --- exact resume ---

class _Crash(Callback):
    """Dies at the start of step ``at`` (after the checkpoint of the step before), like a killed process."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at - 1:
            raise RuntimeError("simulated kill")


def test_killed_and_resumed_run_computes_the_same_losses_as_an_uninterrupted_one(prior_dir, tmp_path):
    def config(name: str, steps: int):
        # 11 training items, 2 per batch: 5 batches an epoch, so the resumed steps cross an epoch boundary
        return fast_config("spasemsr.yaml", tmp_path, prior_dir, steps, *SPASEM_FAST, f"run.name={name}",
                           "trainer.trace=true", "trainer.val_every_n_steps=100")

    straight = train(config("straight", 7)).parent
    crashed = config("crashed", 7)
    seed_everything(crashed.seed)  # as train() does before building the module
    module = SpaSemSRModule(crashed)
    trainer = build_trainer(crashed, run_dir(crashed))
    trainer.callbacks.append(_Crash(at=6))
    with pytest.raises(RuntimeError, match="simulated kill"):
        trainer.fit(module, datamodule=SRDataModule(crashed.data, crashed.degradation, crashed.seed, True))
    assert torch.load(run_dir(crashed) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = train(crashed).parent

    expected, got = _steps(_trace(straight, 0)), _steps(_trace(resumed, 0))
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4, 5, 6, 7]
    for step in (5, 6, 7):
        for key in ("batch_number", "path", "crop", "timesteps", "degradation", "loss"):
            assert got[step][key] == expected[step][key], (step, key)
    for name in ("controlnet/diffusion_pytorch_model.safetensors", "guidance.safetensors"):
        from safetensors.torch import load_file

        a, b = load_file(straight / "export" / name), load_file(resumed / "export" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resuming_under_a_config_that_trains_differently_is_refused(sr_cfg):
    train(sr_cfg)
    changed = _merge(sr_cfg, "model.lr=0.01", "trainer.max_steps=6")
    with pytest.raises(ValueError, match="training hash .* this config has"):
        train(changed)
    longer = train(_merge(sr_cfg, "trainer.max_steps=6"))  # a longer run or other hardware is the same training
    assert json.loads((longer / "manifest.json").read_text())["steps"] == 6
    forced = train(_merge(changed, "trainer.resume=force", "trainer.max_steps=8"))
    assert json.loads((forced / "manifest.json").read_text())["steps"] == 8


def _change_first_tensor(weights: Path) -> None:
    """Add 0.01 to the first tensor of a safetensors file in place, as a retrained prior overwritten would."""
    from safetensors.torch import load_file, save_file

    state = load_file(weights)
    save_file({key: value + 0.01 if i == 0 else value for i, (key, value) in enumerate(state.items())}, weights)


def test_resuming_after_the_frozen_prior_changed_under_its_path_is_refused(prior_dir, tmp_path):
    prior = tmp_path / "prior"
    shutil.copytree(prior_dir, prior)
    cfg = fast_config("controlnet_sr.yaml", tmp_path, prior, 2)
    train(cfg)
    _change_first_tensor(next((prior / "vae").glob("*.safetensors")))
    with pytest.raises(ValueError, match="other frozen weights than profile.backbone_path"):
        train(_merge(cfg, "trainer.max_steps=4"))
    forced = train(_merge(cfg, "trainer.max_steps=4", "trainer.resume=force"))
    assert json.loads((forced / "manifest.json").read_text())["steps"] == 4


@pytest.mark.slow
def test_two_ddp_ranks_refuse_to_resume_after_the_frozen_prior_changed(prior_dir, tmp_path):
    prior = tmp_path / "prior"
    shutil.copytree(prior_dir, prior)
    _ddp_run("controlnet_sr.yaml", tmp_path / "runs", prior, "trainer.max_steps=2")
    _change_first_tensor(next((prior / "vae").glob("*.safetensors")))
    refused = _ddp_launch("controlnet_sr.yaml", tmp_path / "runs", prior)
    assert refused.returncode != 0 and "other frozen weights than profile.backbone_path" in refused.stderr


def test_training_ignores_the_inference_knobs(prior_dir, tmp_path):
    cfg = fast_config("spasemsr.yaml", tmp_path, prior_dir, 2, *SPASEM_FAST)
    batch = _val_batch(cfg)
    losses = []
    for knobs in ((), ("sampler.w_spa=0", "sampler.w_sem=0", "sampler.w_deg=0", "sampler.control_scale=0.5")):
        torch.manual_seed(0)
        module = _woken(SpaSemSRModule(_merge(cfg, *knobs)))
        losses.append(module.loss(batch, torch.Generator().manual_seed(0)))
    assert torch.equal(losses[0], losses[1])


# --- real data, lean checkpoints, memory options ---

@pytest.fixture
def unseen_photos(tmp_path) -> Path:
    """Photos that ship with installed packages but are in neither the bundled set nor kodak5."""
    import matplotlib.cbook
    import skimage

    from spasemsr.data.images import read_image, write_image

    folder = tmp_path / "photos"
    sources = [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
               Path(skimage.__file__).parent / "data" / "retina.jpg"]
    for source in sources:
        write_image(read_image(source), folder / f"{source.stem}.png")
    return folder


@pytest.mark.parametrize("grounder", ["auto", "owlv2"])
def test_spasemsr_trains_on_an_unannotated_hr_folder(grounder, unseen_photos, prior_dir, tmp_path):
    options = []
    if grounder == "owlv2":
        from tests.tiny_models import write_owlv2

        owlv2 = write_owlv2(tmp_path / "owlv2")
        options = [f"model.text.grounder_options={{owlv2: {{path: {owlv2}, box_threshold: 0.0}}}}"]
    cfg = fast_config("spasemsr.yaml", tmp_path, prior_dir, 2, *SPASEM_FAST, "data=hr_folder",
                      f"data.train_hr={unseen_photos}", f"data.val_hr={unseen_photos}", "data.num_workers=0",
                      f"model.text.train_grounder={grounder}", *options)
    export = train(cfg)
    assert json.loads((export / "manifest.json").read_text())["steps"] == 2


def test_checkpoints_hold_only_trainable_weights_at_sd2_shapes():
    from benchmarks.models import sd2_training_module

    cfg = load_config(REPO / "configs" / "spasemsr.yaml", ["profile=sd2", "model.visual.teacher=sam"])
    with torch.device("meta"):  # shapes only: SD-2 sizes without allocating a byte
        module = sd2_training_module(cfg)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    saved = set(checkpoint["state_dict"])
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable <= saved
    assert not saved - trainable - {n for n, _ in module.named_buffers()}
    assert not any(key.startswith(("net.unet.", "vae.", "teacher.", "net.text_encoder.")) for key in saved)
    assert not any(".text_encoder." in key or ".model.text_model." in key for key in saved)
    frozen = sum(p.numel() for name, p in module.named_parameters() if not p.requires_grad)
    kept = sum(checkpoint["state_dict"][key].numel() for key in saved)
    assert frozen > 1.3e9 and 3.6e8 < kept < 5.5e8  # ControlNet (364 M) + added guidance, never the frozen 1.4 B


def test_gradient_checkpointing_gives_the_same_gradients(prior_dir, tmp_path):
    cfg = fast_config("spasemsr.yaml", tmp_path, prior_dir, 2, *SPASEM_FAST)
    batch = _val_batch(cfg)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        module = _woken(SpaSemSRModule(_merge(cfg, f"trainer.gradient_checkpointing={checkpointing}")))
        module.configure_model()
        module.train()
        assert module.net.unet.is_gradient_checkpointing == checkpointing
        module.loss(batch, torch.Generator().manual_seed(0)).backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


TASK_CONFIGS = ("tiny_vae.yaml", "tiny_prior.yaml", "tiny_drm.yaml", "tiny_estimator.yaml", "controlnet_sr.yaml",
                "spasemsr.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("config", TASK_CONFIGS)
def test_bf16_mixed_precision_trains_every_task(config, prior_dir, tmp_path):
    extra = SPASEM_FAST if config == "spasemsr.yaml" else ()
    frozen = ("trainer.frozen_dtype=bfloat16",) if config in ("controlnet_sr.yaml", "spasemsr.yaml") else ()
    cfg = fast_config(config, tmp_path, prior_dir, 1, "trainer.precision=bf16-mixed", *frozen, *extra)
    export = train(cfg)
    metrics = json.loads((export / "manifest.json").read_text())["final_metrics"]
    assert metrics and all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics


def test_optimizer_choices_and_their_state_survive_a_weights_only_checkpoint(sr_cfg):
    export = train(_merge(sr_cfg, "trainer.optimizer=adamw8bit"))
    saved = torch.load(export.parent / "checkpoints" / "last.ckpt", weights_only=True)

    def tensors(tree):
        if torch.is_tensor(tree):
            yield tree
        elif isinstance(tree, dict):
            for value in tree.values():
                yield from tensors(value)

    assert any(t.dtype == torch.uint8 for t in tensors(saved["optimizer_states"][0]["state"]))  # 8-bit moments
    resumed = train(_merge(sr_cfg, "trainer.optimizer=adamw8bit", "trainer.max_steps=6"))
    assert json.loads((resumed / "manifest.json").read_text())["resumed_from"].endswith("last.ckpt")
    with pytest.raises(ValueError, match="trainer.optimizer='sgd' is not one of"):
        TASKS.get("controlnet_sr").module_class(_merge(sr_cfg, "trainer.optimizer=sgd")).configure_optimizers()
    fused = _merge(sr_cfg, "trainer.optimizer=adamw_fused", "run.name=fused")
    assert json.loads((train(fused) / "manifest.json").read_text())["steps"] == 4
    with pytest.raises(ValueError, match="cannot clip gradients under precision=bf16-mixed"):
        TASKS.get("controlnet_sr").module_class(_merge(fused, "trainer.precision=bf16-mixed")).configure_optimizers()


def test_resume_path_modes(sr_cfg):
    folder = run_dir(sr_cfg)
    assert resume_path(_merge(sr_cfg, "trainer.resume=force"), folder) is None  # nothing to resume yet
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        resume_path(_merge(sr_cfg, "trainer.resume=/no/such.ckpt"), folder)


def test_frozen_dtype_stores_only_the_frozen_parts_in_half_precision(prior_dir, tmp_path):
    cfg = fast_config("spasemsr.yaml", tmp_path, prior_dir, 2, *SPASEM_FAST, "trainer.precision=bf16-mixed",
                      "trainer.frozen_dtype=bfloat16")
    module = SpaSemSRModule(cfg)
    module.configure_model()
    dtypes = {(p.requires_grad, p.dtype) for p in module.parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}
    assert module.teacher.features[1].conv[0][1].running_mean.dtype == torch.bfloat16  # BN stats follow their layer
    with pytest.raises(ValueError, match="needs a mixed precision"):
        SpaSemSRModule(_merge(cfg, "trainer.precision=32-true")).configure_model()


def test_validation_interval_counts_optimiser_steps_under_accumulation(sr_cfg):
    cfg = _merge(sr_cfg, "trainer.accumulate_grad_batches=2", "trainer.max_steps=2", "trainer.val_every_n_steps=1",
                 "trainer.trace=true")
    assert build_trainer(cfg, run_dir(cfg)).val_check_interval == 2  # batches
    train(cfg)
    records = _trace(run_dir(cfg), 0)
    assert [r["step"] for r in records if "val_logged" in r] == [1, 2]
    assert [r["batch_number"] for r in records if "loss" in r] == [0, 1, 2, 3]


def test_backends_run_where_they_are_asked_to():
    from spasemsr.config.tasks import TextGuidance
    from spasemsr.guidance.backends import text_backends
    from spasemsr.guidance.grounding import load_grounder

    assert load_grounder("auto", device="meta").device.type == "meta"
    assert load_grounder("annotations", device="meta") is not None  # a lookup backend takes no device
    text = TextGuidance(train_grounder="auto", train_describer="params", grounder_options={"auto": {"device": "cpu"}})
    grounder, describer = text_backends(text, "train", "meta")
    assert grounder.device.type == "cpu" and describer is not None  # a configured device option wins
    grounder, _ = text_backends(TextGuidance(infer_grounder="auto", infer_describer="none"), "infer", "meta")
    assert grounder.device.type == "meta"


def test_one_checkpoint_copy_on_disk_and_resume_survives_a_missing_link(sr_cfg):
    train(sr_cfg)
    folder = run_dir(sr_cfg) / "checkpoints"
    assert (folder / "last.ckpt").is_symlink() and (folder / "last.ckpt").resolve() == folder / "step0000004.ckpt"
    (folder / "last.ckpt").unlink()  # killed between Lightning removing the old link and making the new one
    assert resume_path(sr_cfg, run_dir(sr_cfg)) == str(folder / "step0000004.ckpt")
