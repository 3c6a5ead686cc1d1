"""Training the ControlNet-SR baseline: what trains, that it learns, checkpoints, resume, export, logs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from lightning.pytorch import Callback
from omegaconf import OmegaConf

from spasemsr.config import load_config
from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.data.datamodule import SRDataModule
from spasemsr.models.controlnet_sr import ControlNetSRModule
from spasemsr.training.run import build_trainer, latest_checkpoint, resume_path, run_dir, train
from tests.conftest import REPO, overfit


def _with(cfg, **dotted):
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in dotted.items()]))


def _val_batch(cfg):
    datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=True)
    datamodule.setup()
    return next(iter(datamodule.val_dataloader()))


def test_only_the_controlnet_trains(sr_cfg):
    module = ControlNetSRModule(sr_cfg)
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("model.controlnet.") for name in trainable)
    assert not any(p.requires_grad for p in module.model.unet.parameters())
    assert not any(p.requires_grad for p in module.vae.parameters())
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == {k for k in module.state_dict() if k.startswith("model.controlnet.")}


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(sr_cfg):
    torch.manual_seed(0)
    module = ControlNetSRModule(_with(sr_cfg, **{"model.lr": 1e-3}))
    batch = _val_batch(sr_cfg)
    optimizer = module.configure_optimizers()["optimizer"]

    def fixed_loss():
        return module.loss(batch, torch.Generator().manual_seed(0))

    before, after = overfit(fixed_loss, optimizer, 8)
    assert after < 0.9 * before, (before, after)


class _StateAtStart(Callback):
    def on_train_start(self, trainer, pl_module):
        self.step = trainer.global_step
        self.optimizer = {k: {n: t.clone() for n, t in v.items() if torch.is_tensor(t)}
                          for k, v in trainer.optimizers[0].state_dict()["state"].items()}
        self.weights = {k: v.clone() for k, v in pl_module.model.controlnet.state_dict().items()}


def test_resume_continues_from_saved_step_with_same_optimizer_state(sr_cfg):
    train(sr_cfg)
    folder = run_dir(sr_cfg)
    saved = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"batches": 4, "world_size": 1}]

    longer = _with(sr_cfg, **{"trainer.max_steps": 6})
    module = ControlNetSRModule(longer)
    datamodule = SRDataModule(longer.data, longer.degradation, longer.seed, degrade=True)
    trainer = build_trainer(longer, folder)
    probe = _StateAtStart()
    trainer.callbacks.append(probe)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path(longer, folder), weights_only=True)

    assert probe.step == 4 and trainer.global_step == 6
    saved_state = saved["optimizer_states"][0]["state"]
    assert probe.optimizer.keys() == saved_state.keys()
    for key, tensors in probe.optimizer.items():
        for name, value in tensors.items():
            assert torch.equal(value, saved_state[key][name]), (key, name)
    for name, value in probe.weights.items():
        assert torch.equal(value, saved["state_dict"][f"model.controlnet.{name}"])
    assert datamodule.stream.batches == 6  # the data stream continued, not restarted


def test_a_cosine_schedule_warms_up_decays_and_is_checkpointed(sr_cfg):
    cfg = _with(sr_cfg, **{"trainer.lr_schedule": "cosine", "trainer.warmup_steps": 2, "model.lr": 1e-3})
    train(cfg)
    saved = torch.load(run_dir(cfg) / "checkpoints" / "last.ckpt", weights_only=True)
    (schedule,) = saved["lr_schedulers"]
    assert schedule["last_epoch"] == 4  # stepped once per optimiser step
    progress = (4 - 2) / (4 - 2)  # warm-up over, end of the decay
    assert math.isclose(schedule["_last_lr"][0], 1e-3 * 0.5 * (1 + math.cos(math.pi * progress)), abs_tol=1e-12)
    warm = ControlNetSRModule(cfg).configure_optimizers()["lr_scheduler"]["scheduler"]
    assert warm.get_last_lr() == [0.0]  # starts the warm-up from 0
    with pytest.raises(ValueError, match="trainer.lr_schedule.*cosine"):
        load_config(CONFIGS_ROOT / "controlnet_sr.yaml", ["trainer.lr_schedule=step"])


def test_training_exports_weights_manifest_and_tensorboard(sr_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    export = train(sr_cfg)
    assert (export / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["steps"] == 4 and manifest["task"] == "controlnet_sr"
    assert len(manifest["data"]["hash"]) == 64 and manifest["config_hash"]
    assert len(manifest["weights_sha256"]) == 1 and "train/loss" in manifest["final_metrics"]
    events = EventAccumulator(str(run_dir(sr_cfg) / "tb")).Reload()
    assert {"train/loss", "val/loss", "val/psnr_y", "val/ssim_y", "val/lr_consistency"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == ["val/lr | sr | hr"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(sr_cfg, tmp_path):
    long_run = _with(sr_cfg, **{"trainer.max_steps": 500})
    config = tmp_path / "run.yaml"
    config.write_text(OmegaConf.to_yaml(long_run))
    checkpoints = run_dir(sr_cfg) / "checkpoints"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = tmp_path / "train.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "spasemsr", "train", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.time() + 240
            while latest_checkpoint(checkpoints) is None and time.time() < deadline and proc.poll() is None:
                time.sleep(0.5)
            time.sleep(1.0)  # let it train past the first checkpoint before the kill
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # the kill may land between Lightning removing last.ckpt's link and making the new one: resume then
    # takes the newest step checkpoint (latest_checkpoint), which is what this run must find
    last = latest_checkpoint(checkpoints)
    assert last is not None, f"the run never wrote a checkpoint: {log.read_text()[-2000:]}"
    step = torch.load(last, weights_only=True)["global_step"]
    assert 2 <= step < 500

    export = train(_with(sr_cfg, **{"trainer.max_steps": step + 2}))
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["resumed_from"] == last and manifest["steps"] == step + 2
