"""Shared fixtures: a tiny random prior written with save_pretrained, the real MiniLM, small configs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# converted pretrained restorers go to a throwaway cache, never the user's ~/.cache/spasemsr
os.environ.setdefault("SPASEMSR_CACHE", tempfile.mkdtemp(prefix="spasemsr-cache-"))
# one thread per xdist worker (`make test-fast` runs two): more would oversubscribe the 2 cores
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_cfg():
    """The tiny profile's composed ControlNet-SR config (no overrides)."""
    from spasemsr.config import load_config

    return load_config(REPO / "configs" / "controlnet_sr.yaml")


@pytest.fixture(scope="session")
def prior_dir(tmp_path_factory, tiny_cfg) -> Path:
    """A randomly initialised tiny prior in diffusers layout, written through ``save_pretrained``."""
    from spasemsr.config import to_container
    from spasemsr.diffusion.backbone import Backbone, build_scheduler, build_unet, build_vae, save_backbone

    torch.manual_seed(0)
    profile = tiny_cfg.profile
    backbone = Backbone(
        build_vae(to_container(profile.vae_arch)),
        build_unet(to_container(profile.unet_arch)),
        build_scheduler(to_container(profile.scheduler)),
    )
    return save_backbone(backbone, tmp_path_factory.mktemp("prior"))


def fast_config(name: str, root: Path, prior: Path, steps: int, *overrides: str):
    """A shipped top-level config shrunk to test size: small crops and batches, ``steps`` training steps."""
    from spasemsr.config import load_config

    return load_config(REPO / "configs" / name, [
        f"run.root={root / 'runs'}", f"profile.backbone_path={prior}",
        "data.crop_size=64", "data.batch_size=2", "data.val_images=2", "data.repeat=1",
        "sampler.steps=2", f"trainer.max_steps={steps}", "trainer.ckpt_every_n_steps=2",
        f"trainer.val_every_n_steps={steps}", "trainer.log_every_n_steps=1", *overrides,
    ])


@pytest.fixture
def sr_cfg(tmp_path, prior_dir):
    """A fast ControlNet-SR run config writing under ``tmp_path``."""
    return fast_config("controlnet_sr.yaml", tmp_path, prior_dir, 4)


@pytest.fixture
def export_dir(sr_cfg, tmp_path):
    """An exported, untrained ControlNet-SR model: the files a training run leaves, minus the manifest."""
    from omegaconf import OmegaConf

    from spasemsr.models.controlnet_sr import ControlNetSRModule

    folder = tmp_path / "export"
    ControlNetSRModule(sr_cfg).export(folder)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(sr_cfg))
    return folder


def overfit(loss, optimizer: torch.optim.Optimizer, steps: int) -> tuple[float, float]:
    """(before, after) of a zero-argument ``loss`` on a fixed batch, with ``steps`` optimiser steps between."""
    before = loss().item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    return before, loss().item()
