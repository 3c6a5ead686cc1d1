"""Rebuild an inference pipeline from a run's ``export/`` folder, whatever task produced it.

An export holds the resolved ``config.yaml``, the ControlNet (``controlnet/``, diffusers layout) and,
for SpaSemSR, ``guidance.safetensors`` with the added modules. The frozen prior and text encoder are
loaded from the paths the config names, exactly as in training. Nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ControlNetModel
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from spasemsr.config import validate
from spasemsr.diffusion.backbone import load_backbone, vae_downscale
from spasemsr.diffusion.control import ControlledUNet
from spasemsr.guidance.text_encoder import TextEncoder, load_text_encoder
from spasemsr.pipeline import Conditioner, SRPipeline, sampler_settings
from spasemsr.weights import local_path

SR_TASKS = ("controlnet_sr", "spasemsr")


def read_export(export: str | Path) -> DictConfig:
    """The validated config of an exported SR model, or an error saying what the folder lacks."""
    export = Path(export)
    if not (export / "config.yaml").is_file() or not (export / "controlnet" / "config.json").is_file():
        raise FileNotFoundError(
            f"{export} is not an exported SR model: expected config.yaml and controlnet/ "
            "(the export/ folder of a `spasemsr train --config configs/controlnet_sr.yaml` or "
            "`configs/spasemsr.yaml` run)"
        )
    cfg = validate(OmegaConf.load(export / "config.yaml"))
    if cfg.model.name not in SR_TASKS:
        raise ValueError(f"{export} holds a {cfg.model.name!r} model; upscaling needs one of {SR_TASKS}")
    return cfg


def text_encoder_for(cfg: DictConfig) -> TextEncoder:
    """The frozen text encoder a config names."""
    te = cfg.profile.text_encoder
    return load_text_encoder(te.name, te.path, te.max_length, te.subfolder)


def load_pipeline(export: str | Path, device: str | torch.device = "cpu", steps: int | None = None) -> SRPipeline:
    """The inference pipeline of an exported ControlNet-SR or SpaSemSR model."""
    export = Path(export)
    cfg = read_export(export)
    backbone = load_backbone(cfg.profile.backbone_path).freeze()
    controlnet = ControlNetModel.from_pretrained(export / "controlnet", local_files_only=True).eval()
    text_encoder = text_encoder_for(cfg)
    conditioner: Conditioner | None = None
    if cfg.model.name == "controlnet_sr":
        net = ControlledUNet(backbone.unet, controlnet, text_encoder([cfg.model.prompt]))
    else:
        net, conditioner = _spasemsr(cfg, export, backbone, controlnet, text_encoder, device)
    net.to(device).eval()
    backbone.vae.to(device)
    return SRPipeline(backbone, net, cfg.data.scale, sampler_settings(cfg.sampler, steps=steps), conditioner)


def _spasemsr(cfg: DictConfig, export: Path, backbone, controlnet, text_encoder, device):
    from spasemsr.guidance.backends import text_backends
    from spasemsr.guidance.conditioner import SpaSemSRConditioner
    from spasemsr.guidance.network import GUIDANCE_MODULES, SpaSemSRNet
    from spasemsr.restore.baselines import load_restorer

    state = load_file(export / "guidance.safetensors")
    sem_head = state.get("visual.sem_head.weight")
    task = OmegaConf.to_object(cfg.model)
    net = SpaSemSRNet(backbone.unet, controlnet, text_encoder, task, cfg.data.scale, vae_downscale(backbone.vae),
                      sem_head.shape[0] if sem_head is not None else 0)
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(GUIDANCE_MODULES)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{export}/guidance.safetensors does not match its config: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    grounder, describer = text_backends(task.text, "infer", device)
    drm = None
    if task.drm_path:
        drm = load_restorer("drm", local_path(task.drm_path) / "drm", cfg.data.scale, str(device))
    return net, SpaSemSRConditioner(net, cfg.data.scale, grounder, describer, drm, task.text.grounding_side)
