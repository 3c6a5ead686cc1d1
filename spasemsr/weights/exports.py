"""Rebuild an inference pipeline from a run's ``export/`` folder, whatever task produced it.

An export holds the resolved ``config.yaml``, the ControlNet (``controlnet/``, diffusers layout) and,
for SpaSemSR, ``guidance.safetensors`` with the added modules. The frozen prior and text encoder are
loaded from the paths the config names, exactly as in training. Nothing is unpickled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from diffusers import ControlNetModel
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from spasemsr.config import validate
from spasemsr.diffusion.backbone import load_backbone
from spasemsr.guidance.text.encoder import text_encoder_for
from spasemsr.models.sr_net import build_sr_net, sr_task_names
from spasemsr.pipeline import Conditioner, SRPipeline, sampler_settings
from spasemsr.registries import TASKS
from spasemsr.restore.baselines import Restorer
from spasemsr.weights import local_path
from spasemsr.weights.table import WEIGHTS


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
    if not TASKS.get(cfg.model.name).is_sr:
        raise ValueError(f"{export} holds a {cfg.model.name!r} model; upscaling needs one of {sr_task_names()}")
    return cfg


def load_pipeline(export: str | Path, device: str | torch.device = "cpu", steps: int | None = None,
                  drm: str | None = None) -> SRPipeline:
    """The inference pipeline of an exported ControlNet-SR or SpaSemSR model; ``drm`` replaces SpaSemSR's
    ``model.drm`` (what cleans the LR its grounder sees: none, tiny, realesrgan_x4plus, realsr_df2k or a path)."""
    export = Path(export)
    cfg = read_export(export)
    if drm is not None:
        if cfg.model.name != "spasemsr":
            raise ValueError(f"{export} is a {cfg.model.name} model: only SpaSemSR has a DRM to choose")
        cfg.model.drm = drm
    backbone = load_backbone(cfg.profile.backbone_path).freeze()
    controlnet = ControlNetModel.from_pretrained(export / "controlnet", local_files_only=True).eval()
    text_encoder = text_encoder_for(cfg)
    conditioner: Conditioner | None = None
    if cfg.model.name == "spasemsr":
        net, conditioner = _spasemsr(cfg, export, backbone, controlnet, text_encoder, device)
    else:
        net = build_sr_net(cfg, backbone, text_encoder, controlnet)
    net.to(device).eval()
    backbone.vae.to(device)
    return SRPipeline(backbone, net, cfg.data.scale, sampler_settings(cfg.sampler, steps=steps), conditioner)


def _spasemsr(cfg: DictConfig, export: Path, backbone, controlnet, text_encoder, device):
    from spasemsr.guidance.backends import text_backends
    from spasemsr.guidance.denoiser import GUIDANCE_MODULES
    from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner

    state = load_file(export / "guidance.safetensors")
    sem_head = state.get("visual.sem_head.weight")
    task = OmegaConf.to_object(cfg.model)
    net = build_sr_net(cfg, backbone, text_encoder, controlnet, sem_head.shape[0] if sem_head is not None else 0)
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(GUIDANCE_MODULES)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{export}/guidance.safetensors does not match its config: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    grounder, describer = text_backends(task.text, "infer", device)
    drm = load_drm(export, task.drm, cfg.data.scale, str(device))
    return net, SpaSemSRConditioner(net, cfg.data.scale, grounder, describer, drm, task.text.grounding_side)


def load_drm(export: Path, drm: str, scale: int, device: str) -> Restorer | None:
    """The restorer ``model.drm`` names (None for ``none``): the shipped tiny DRM, a pretrained restorer or a DRM
    folder."""
    from spasemsr.registries import RESTORERS
    from spasemsr.restore.baselines import load_restorer

    if drm == "none":
        return None
    if drm in RESTORERS and drm not in ("drm", "bicubic"):
        return load_restorer(drm, None, scale, device)
    path = WEIGHTS["tiny_drm"].default if drm == "tiny" else drm
    return load_restorer("drm", _drm_folder(export, path), scale, device)


def _drm_folder(export: Path, drm_path: str) -> Path:
    """The DRM folder an export's config names; exports made before paths named the folder holding config.json
    name the DRM's export folder instead, whose ``drm/`` is read (with a warning) so they keep loading."""
    folder = local_path(drm_path)
    if not (folder / "config.json").is_file() and (folder / "drm" / "config.json").is_file():
        print(f"warning: {export}/config.yaml: model.drm={drm_path} names a DRM export folder; reading "
              f"{folder / 'drm'} (paths now name the folder holding config.json)", file=sys.stderr)
        return folder / "drm"
    return folder
