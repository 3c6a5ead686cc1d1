"""The pipelines the benchmarks measure: the shipped tiny models, and SpaSemSR at SD-2 sizes with random weights.

No SD-2 weights can be downloaded here, and cost does not depend on weight values, so the SD-2 case
builds SD-2-base-shaped modules in code (UNet 866 M, ControlNet 364 M, VAE 84 M, CLIP ViT-H text tower
340 M parameters) around the same ``SpaSemSRNet`` / ``SpaSemSRConditioner`` code the ``sd2`` profile runs.
Its grounder, describer and DRM are the shipped ones, which ``configs/model/spasemsr.yaml`` names for
every profile.
"""

from __future__ import annotations

import copy
import itertools
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from spasemsr.diffusion.control import ControlledUNet
from spasemsr.diffusion.sd2 import SD2_SCHEDULE, SD2_TEXT, SD2_UNET, SD2_VAE
from spasemsr.pipeline import SRPipeline
from spasemsr.weights.table import default_path

TINY_SPASEMSR = default_path("tiny_spasemsr")
TINY_CONTROLNET_SR = default_path("tiny_controlnet_sr")

SD2_CONTROL_CHANNELS = [16, 32, 96, 256]  # configs/profile/sd2.yaml
SAM_CHANNELS = 256  # the sd2 teacher's feature width (sizes only the training-time projection head)


class ByteTokenizer:
    """UTF-8 bytes as token ids, padded to ``max_length``: tokenising costs nothing next to a CLIP-H forward."""

    def __call__(self, texts: list[str], padding: str, truncation: bool, max_length: int,
                 return_tensors: str) -> SimpleNamespace:
        ids = torch.full((len(texts), max_length), 49407)
        mask = torch.zeros(len(texts), max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [49406, *list(text.encode())[: max_length - 2], 49407]
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        return SimpleNamespace(input_ids=ids, attention_mask=mask)


def shared_copy(module: nn.Module) -> nn.Module:
    """A second module tree over the same parameter and buffer tensors (no extra weight memory).

    Taken before ``SpaSemSRNet`` attaches its processors and hooks, it is the plain model of the same weights.
    """
    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)


def tiny_pipelines(device: torch.device) -> tuple[SRPipeline, SRPipeline]:
    """The shipped tiny SpaSemSR and the shipped ControlNet-SR baseline (same prior, same ControlNet shape)."""
    from spasemsr.weights.exports import load_pipeline

    return load_pipeline(TINY_SPASEMSR, device), load_pipeline(TINY_CONTROLNET_SR, device)


def sd2_pipeline(tiny: SRPipeline, device: torch.device, seed: int = 0) -> tuple[SRPipeline, ControlledUNet]:
    """SpaSemSR on an SD-2-shaped random prior (conditioner backends taken from ``tiny``), and its plain twin.

    The twin is ``ControlledUNet`` over the very same UNet and ControlNet weights, without the guidance.
    """
    from spasemsr.diffusion.backbone import vae_downscale
    from spasemsr.diffusion.control import controlnet_from_unet
    from spasemsr.guidance.denoiser import SpaSemSRNet
    from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner
    from spasemsr.weights.exports import read_export

    torch.manual_seed(seed)
    task = OmegaConf.to_object(read_export(TINY_SPASEMSR).model)
    backbone, text_encoder, _ = sd2_training_parts(teacher=False)
    unet, factor = backbone.unet, vae_downscale(backbone.vae)
    controlnet = controlnet_from_unet(unet, SD2_CONTROL_CHANNELS, factor)
    plain = ControlledUNet(shared_copy(unet), shared_copy(controlnet), text_encoder([task.prompt]))
    net = SpaSemSRNet(unet, controlnet, text_encoder, task, tiny.scale, factor, SAM_CHANNELS)
    backbone.vae.to(device)
    source = tiny.conditioner
    conditioner = SpaSemSRConditioner(net, tiny.scale, source.grounder, source.describer, source.drm,
                                      source.grounding_side)
    pipeline = SRPipeline(backbone, net.to(device).eval(), tiny.scale, tiny.sampler, conditioner)
    return pipeline, plain.to(device).eval()


def sd2_training_parts(teacher: bool = True) -> tuple:
    """SD-2-shaped frozen parts with random weights: (Backbone, CLIP-H-sized TextEncoder, SAM ViT-B teacher or None).

    Built on the current default device, so ``with torch.device("meta")`` gives the shapes without memory.
    What ``sd2_training_module`` trains at the paper's sizes.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, SamVisionConfig, SamVisionModel

    from spasemsr.diffusion.backbone import Backbone
    from spasemsr.guidance.text.encoder import TextEncoder
    from spasemsr.guidance.visual.teachers import SamTeacher

    backbone = Backbone(AutoencoderKL(**SD2_VAE), UNet2DConditionModel(**SD2_UNET), DDPMScheduler(**SD2_SCHEDULE))
    text_encoder = TextEncoder(ByteTokenizer(), CLIPTextModel(CLIPTextConfig(**SD2_TEXT)), 77)
    sam = SamTeacher(SamVisionModel(SamVisionConfig(output_channels=SAM_CHANNELS))) if teacher else None
    return backbone.freeze(), text_encoder, sam


def sd2_training_module(cfg: Any, teacher: bool = True) -> Any:
    """A SpaSemSRModule over ``sd2_training_parts``: the network built by ``build_sr_net`` as in every run."""
    from spasemsr.models.spasemsr import SpaSemSRModule
    from spasemsr.models.sr_net import build_sr_net

    backbone, text_encoder, sam = sd2_training_parts(teacher)
    net = build_sr_net(cfg, backbone, text_encoder, teacher_channels=sam.out_channels if sam is not None else 0)
    return SpaSemSRModule(cfg, net, backbone, sam)


def parameter_counts(pipeline: SRPipeline) -> dict[str, float]:
    """Millions of parameters per part of a SpaSemSR pipeline (weights dominate resident memory)."""
    net = pipeline.net
    parts: dict[str, nn.Module] = {"unet": pipeline.backbone.unet, "controlnet": net.controlnet,
                                   "vae": pipeline.backbone.vae, "text_encoder": net.text_encoder}
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}
    counts["guidance (trainable additions)"] = sum(t.numel() for t in net.guidance_state().values())
    return {name: round(count / 1e6, 2) for name, count in counts.items()}


def latent_noise(pipeline: SRPipeline, lr: Tensor, generator: torch.Generator) -> Tensor:
    """A z_t of the size the pipeline samples for ``lr`` (on its device)."""
    from spasemsr.diffusion.backbone import vae_downscale

    factor, scale = vae_downscale(pipeline.backbone.vae), pipeline.scale
    shape = (lr.shape[0], pipeline.backbone.unet.config.in_channels, lr.shape[-2] * scale // factor,
             lr.shape[-1] * scale // factor)
    return torch.randn(shape, generator=generator).to(lr.device)
