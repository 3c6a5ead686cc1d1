"""RRDBNet: ESRGAN's residual-in-residual dense network, the DRM's regression x2/x4 restorer.

conv_first → ``num_blocks`` RRDBs (three dense blocks each, residuals scaled by 0.2) → conv_body plus
a long skip → one (x2) or two (x4) stages of nearest x2 upsampling + conv + LeakyReLU → conv_hr →
conv_last. A diffusers ``ModelMixin``, so it saves and loads as ``config.json`` + safetensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

SCALES = (2, 4)
RESIDUAL_SCALE = 0.2  # ESRGAN: scaling residuals keeps a deep un-normalised trunk stable
NEGATIVE_SLOPE = 0.2
DENSE_INIT_GAIN = 0.1  # ESRGAN: dense-block convs start small, so each block starts near identity


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class DenseBlock(nn.Module):
    """Five 3x3 convs, each reading every earlier feature map; the fifth's output is a scaled residual."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _conv(features + i * growth, growth if i < 4 else features) for i in range(5)
        )
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(DENSE_INIT_GAIN)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        seen = [x]
        for conv in self.convs[:-1]:
            seen.append(F.leaky_relu(conv(torch.cat(seen, dim=1)), NEGATIVE_SLOPE))
        return x + RESIDUAL_SCALE * self.convs[-1](torch.cat(seen, dim=1))


class RRDB(nn.Module):
    """Three dense blocks inside one more scaled residual: the repeated unit of the trunk."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.blocks(x)


class RRDBNet(ModelMixin, ConfigMixin):
    """LR (B, C, h, w) in [0, 1] → SR (B, C, scale·h, scale·w), trained to be in [0, 1] but not clamped.

    The output is left unclamped so an L1 loss has gradients everywhere; clamp it for display,
    metrics and downstream use. Defaults are ESRGAN's x4 generator (about 16.7M parameters).
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_features: int = 64,
                 num_blocks: int = 23, growth: int = 32, scale: int = 4) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"RRDBNet supports scale in {SCALES}, got {scale}; set data.scale to 2 or 4")
        self.conv_first = _conv(in_channels, num_features)
        self.body = nn.Sequential(*(RRDB(num_features, growth) for _ in range(num_blocks)))
        self.conv_body = _conv(num_features, num_features)
        self.upsample = nn.ModuleList(_conv(num_features, num_features) for _ in range(int(math.log2(scale))))
        self.conv_hr = _conv(num_features, num_features)
        self.conv_last = _conv(num_features, out_channels)

    def forward(self, lr: Tensor) -> Tensor:
        channels = self.config.in_channels
        if lr.ndim != 4 or lr.shape[1] != channels:
            raise ValueError(f"RRDBNet expects LR of shape (B, {channels}, h, w), got {tuple(lr.shape)}")
        features = self.conv_first(lr)
        features = features + self.conv_body(self.body(features))
        for conv in self.upsample:
            features = F.leaky_relu(conv(F.interpolate(features, scale_factor=2, mode="nearest")), NEGATIVE_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(features), NEGATIVE_SLOPE))
