"""One builder of the SR network, shared by training (fresh ControlNet) and loading (exported ControlNet).

Each SR task registers its network builder on its ``Task`` (``config/tasks.py``); ``build_sr_net`` looks it
up, so training, ``upscale``, ``evaluate`` and sweeps build the very same network from a config.
"""

from __future__ import annotations

from typing import Any

from diffusers import ControlNetModel

from spasemsr.diffusion.backbone import Backbone, vae_downscale
from spasemsr.diffusion.control import ControlledUNet, controlnet_from_unet
from spasemsr.guidance.text.encoder import TextEncoder
from spasemsr.registries import TASKS
from spasemsr.utils.registry import import_object


def sr_task_names() -> list[str]:
    """The registered tasks whose export is an SR model."""
    return [name for name in TASKS if TASKS.get(name).is_sr]


def build_sr_net(cfg: Any, backbone: Backbone, text_encoder: TextEncoder, controlnet: ControlNetModel | None = None,
                 teacher_channels: int = 0) -> ControlledUNet:
    """The network of SR task ``cfg.model.name`` over the frozen ``backbone``.

    ``controlnet`` None starts a fresh ControlNet from the UNet's encoder (training); an exported one is
    passed when loading. ``teacher_channels`` sizes SpaSemSR's E_sem head (0 = no semantic constraint).
    """
    task = TASKS.get(cfg.model.name)
    if not task.is_sr:
        raise ValueError(f"model.name={cfg.model.name!r} is not an SR task; SR tasks: {sr_task_names()}")
    if controlnet is None:
        controlnet = controlnet_from_unet(backbone.unet, list(cfg.profile.control_embedding_channels),
                                          vae_downscale(backbone.vae))
    return import_object(task.sr_net)(cfg, backbone, text_encoder, controlnet, teacher_channels)


def controlnet_sr_net(cfg: Any, backbone: Backbone, text_encoder: TextEncoder, controlnet: ControlNetModel,
                      teacher_channels: int = 0) -> ControlledUNet:
    """The baseline: the ControlNet steers the frozen UNet, whose text condition is the fixed prompt."""
    return ControlledUNet(backbone.unet, controlnet, text_encoder([cfg.model.prompt]))


def spasemsr_net(cfg: Any, backbone: Backbone, text_encoder: TextEncoder, controlnet: ControlNetModel,
                 teacher_channels: int = 0) -> ControlledUNet:
    """The full method: the baseline plus every guidance component ``cfg.model`` switches on."""
    from spasemsr.guidance.denoiser import SpaSemSRNet

    return SpaSemSRNet(backbone.unet, controlnet, text_encoder, cfg.model, cfg.data.scale,
                       vae_downscale(backbone.vae), teacher_channels)


def initialise_from(net: ControlledUNet, export: str) -> None:
    """Start a training run from an exported SR model (``model.init_from``): its ControlNet (same architecture,
    strictly), and for SpaSemSR its guidance weights whose names and shapes match; what loaded is printed."""
    if not export:
        return
    from safetensors.torch import load_file

    from spasemsr.weights import local_path

    folder = local_path(export)
    if not (folder / "controlnet").is_dir():
        raise FileNotFoundError(f"model.init_from={export}: {folder} has no controlnet/ folder (an SR export has)")
    trained = ControlNetModel.from_pretrained(folder / "controlnet", local_files_only=True)
    net.controlnet.load_state_dict(trained.state_dict())
    loaded, total = 0, 0
    guidance = folder / "guidance.safetensors"
    if hasattr(net, "guidance_state"):
        own = net.guidance_state()
        state = load_file(guidance) if guidance.is_file() else {}
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(usable, strict=False)
        loaded, total = len(usable), len(own)
    print(f"model.init_from={export}: ControlNet loaded" + (f", {loaded} of {total} guidance tensors" if total else ""))
