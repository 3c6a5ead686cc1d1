"""The frozen diffusion prior: VAE, UNet and noise schedule, built in code or loaded from disk.

Profile ``tiny`` builds these at CPU width from the architecture dicts in its config (used once,
to pretrain the tiny prior); every later stage, and profile ``sd2``, loads a diffusers-layout
folder through ``from_pretrained`` so that both profiles share one loading path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from spasemsr.weights import local_path

COMPONENTS = {
    "vae": (AutoencoderKL, "an AutoencoderKL (config.json + diffusion_pytorch_model.safetensors)"),
    "unet": (UNet2DConditionModel, "a UNet2DConditionModel (config.json + diffusion_pytorch_model.safetensors)"),
    "scheduler": (DDPMScheduler, "a noise scheduler config (scheduler_config.json)"),
}


class MissingWeightsError(FileNotFoundError):
    """A configured pretrained component is not on disk."""


@dataclass
class Backbone:
    """The prior's parts; ``train_scheduler`` adds noise in training, samplers derive from its config."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    train_scheduler: DDPMScheduler

    def freeze(self) -> Backbone:
        """Freeze the prior (it is never trained by the SR stages) and return self."""
        for module in (self.vae, self.unet):
            module.requires_grad_(False)
            module.eval()
        return self


def require_component(root: str | Path, name: str) -> Path:
    """Return ``root/name``, or raise naming the missing path and what belongs there."""
    if not str(root):
        raise MissingWeightsError(
            "profile.backbone_path is empty: set it to a local diffusers-layout folder with vae/, unet/ and "
            "scheduler/ (e.g. profile.backbone_path=/models/stable-diffusion-2-base)"
        )
    folder = local_path(root) / name
    marker = "scheduler_config.json" if name == "scheduler" else "config.json"
    if not (folder / marker).is_file():
        raise MissingWeightsError(
            f"missing pretrained {name}: expected {COMPONENTS[name][1]} in {folder}. "
            "Point profile.backbone_path at a diffusers-layout folder (e.g. a local copy of "
            "stable-diffusion-2-base), or build the tiny weights first (make weights-tiny)."
        )
    return folder


def load_component(root: str | Path, name: str) -> Any:
    """Load one component (``vae``, ``unet`` or ``scheduler``) from a local diffusers folder."""
    cls = COMPONENTS[name][0]
    folder = require_component(root, name)
    return cls.from_pretrained(folder, local_files_only=True)


def load_backbone(root: str | Path) -> Backbone:
    """Load VAE, UNet and scheduler from ``root`` (never downloads)."""
    return Backbone(*(load_component(root, name) for name in ("vae", "unet", "scheduler")))


def load_tiny_vae(path: str | Path) -> AutoencoderKL:
    """A trained tiny VAE from its folder (weights table row ``tiny_vae``: the shipped one if ``path`` is empty)."""
    from spasemsr.weights.table import WEIGHTS

    return AutoencoderKL.from_pretrained(WEIGHTS["tiny_vae"].resolve(path), local_files_only=True)


def build_vae(arch: dict[str, Any]) -> AutoencoderKL:
    """A freshly initialised VAE from an architecture dict (tiny profile)."""
    return AutoencoderKL(**arch)


def build_unet(arch: dict[str, Any]) -> UNet2DConditionModel:
    """A freshly initialised text-conditioned UNet from an architecture dict (tiny profile)."""
    return UNet2DConditionModel(**arch)


def build_scheduler(kwargs: dict[str, Any]) -> DDPMScheduler:
    """The training noise schedule from config (SD-2's scaled-linear schedule by default)."""
    return DDPMScheduler(**kwargs)


def save_backbone(backbone: Backbone, root: str | Path) -> Path:
    """Write the backbone as a diffusers-layout folder that ``load_backbone`` reads back."""
    root = Path(root)
    backbone.vae.save_pretrained(root / "vae")
    backbone.unet.save_pretrained(root / "unet")
    backbone.train_scheduler.save_pretrained(root / "scheduler")
    return root


def vae_downscale(vae: AutoencoderKL) -> int:
    """Pixel-to-latent downscale factor of a VAE (8 for SD-2, 4 for the tiny profile)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)
