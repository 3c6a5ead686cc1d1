"""The DataModule: online degradation on batches, fixed validation pairs, resumable degradation stream."""

from __future__ import annotations

import torch

from spasemsr.data.datamodule import SRDataModule
from spasemsr.data.degradation import PARAM_KEYS


def _datamodule(cfg, degrade=True):
    datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=degrade)
    datamodule.setup()
    return datamodule


def test_training_batches_gain_lr_and_their_degradation_parameters(sr_cfg):
    datamodule = _datamodule(sr_cfg)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["hr"].shape == (2, 3, 64, 64) and batch["lr"].shape == (2, 3, 16, 16)
    assert set(batch["degradation"]) == set(PARAM_KEYS)
    assert all(v.shape == (2,) for v in batch["degradation"].values())
    assert all(isinstance(c, str) and c for c in batch["caption"])


def test_validation_pairs_are_identical_across_runs(sr_cfg):
    first, second = _datamodule(sr_cfg).val_set, _datamodule(sr_cfg).val_set
    assert len(first) == 2
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])


def test_degradation_and_loss_draws_resume_from_the_stream_position(sr_cfg):
    hr = {"hr": torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    running = _datamodule(sr_cfg)
    running.on_after_batch_transfer(dict(hr), 0)
    expected = running.on_after_batch_transfer(dict(hr), 0)
    assert expected["batch_number"] == 1 and running.stream.batches == 2
    resumed = _datamodule(sr_cfg)
    resumed.stream.load_state_dict(running.stream.state_dict() | {"batches": 1})
    again = resumed.on_after_batch_transfer(dict(hr), 0)
    assert torch.equal(again["lr"], expected["lr"])
    assert torch.equal(torch.randn(4, generator=again["generator"]), torch.randn(4, generator=expected["generator"]))
    fresh = _datamodule(sr_cfg).on_after_batch_transfer(dict(hr), 0)
    assert not torch.equal(fresh["lr"], expected["lr"])


def test_tasks_without_lr_get_hr_only(sr_cfg):
    datamodule = _datamodule(sr_cfg, degrade=False)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert "lr" not in batch and "lr" not in datamodule.val_set[0]
