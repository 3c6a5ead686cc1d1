"""The two trainable LR encoders (E_img, E_sem) whose concatenation ``c_img`` conditions the ControlNet.

Both encoders read the LR image and return features on the latent grid of the HR image, so that
``c_img`` can be added to ``z_t``'s grid without further resampling. With upscale ``scale`` and VAE
downscale ``vae_factor`` one LR pixel covers ``scale / vae_factor`` latent pixels (1 for the tiny
profile: 4/4; 1/2 for SD-2: 4/8). The encoder downsamples with ``log2(vae_factor / scale)`` stride-2
convolutions when the latent grid is coarser than the LR; a final bilinear resize to the exact latent
size the caller asks for absorbs the rounding of odd LR sizes (the VAE floors, strided convs ceil)
and any upsampling when the latent grid is finer than the LR.

The projection heads used only by the training constraints also live here: ``vae_head`` (P_v, a
1×1 conv to the VAE's latent channels) on E_img and ``sem_head`` (P_s, a 1×1 conv to the teacher's
channels) on E_sem.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResBlock(nn.Module):
    """Two 3×3 convs with a skip: depth without losing the LR's local detail."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def downsample_steps(scale: int, vae_factor: int) -> int:
    """Number of stride-2 convs taking the LR grid towards the HR latent grid (0 when it is not coarser)."""
    if scale <= 0 or vae_factor <= 0:
        raise ValueError(f"scale and vae_factor must be positive; got scale={scale}, vae_factor={vae_factor}")
    return max(0, round(math.log2(vae_factor / scale)))


class LREncoder(nn.Module):
    """A small conv encoder: LR image (B, 3, h, w) in [0, 1] → features (B, out_channels, H_lat, W_lat)."""

    def __init__(self, out_channels: int, scale: int = 4, vae_factor: int = 8, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        if out_channels <= 0 or width <= 0 or depth < 0:
            raise ValueError(
                f"LREncoder needs out_channels > 0, width > 0, depth >= 0; got {out_channels}, {width}, {depth}"
            )
        steps = downsample_steps(scale, vae_factor)
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
        for _ in range(steps):
            layers += [nn.SiLU(), nn.Conv2d(width, width, 3, stride=2, padding=1)]
        layers += [ResBlock(width) for _ in range(depth)]
        layers += [nn.SiLU(), nn.Conv2d(width, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, lr: Tensor, size: tuple[int, int]) -> Tensor:
        features = self.net(lr * 2 - 1)
        if tuple(features.shape[-2:]) != tuple(size):
            features = F.interpolate(features, size=tuple(size), mode="bilinear", align_corners=False)
        return features


class VisualGuidance(nn.Module):
    """E_img and E_sem side by side; either may be disabled (None), and with both off there is no ``c_img``.

    ``latent_channels`` / ``teacher_channels`` size the projection heads P_v / P_s; 0 builds no head,
    which switches that constraint off (pass 0 for ``teacher_channels`` when the teacher is ``none``).
    """

    def __init__(
        self,
        use_img: bool = True,
        use_sem: bool = True,
        img_channels: int = 64,
        sem_channels: int = 64,
        latent_channels: int = 4,
        teacher_channels: int = 0,
        scale: int = 4,
        vae_factor: int = 8,
        width: int = 64,
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.scale, self.vae_factor = scale, vae_factor
        encoder = {"scale": scale, "vae_factor": vae_factor, "width": width, "depth": depth}
        self.img = LREncoder(img_channels, **encoder) if use_img else None
        self.sem = LREncoder(sem_channels, **encoder) if use_sem else None
        self.vae_head = nn.Conv2d(img_channels, latent_channels, 1) if use_img and latent_channels > 0 else None
        self.sem_head = nn.Conv2d(sem_channels, teacher_channels, 1) if use_sem and teacher_channels > 0 else None

    @property
    def out_channels(self) -> int:
        """Channels of ``c_img`` (C_img + C_sem of the enabled encoders; 0 when both are off)."""
        return sum(encoder.out_channels for encoder in (self.img, self.sem) if encoder is not None)

    @property
    def enabled(self) -> bool:
        """Whether there is any visual guidance to feed the ControlNet."""
        return self.out_channels > 0

    def encode(self, lr: Tensor, latent_hw: tuple[int, int]) -> dict[str, Tensor]:
        """Features of each enabled encoder by name (``img``, ``sem``), on the HR latent grid."""
        encoders = {"img": self.img, "sem": self.sem}
        return {name: encoder(lr, latent_hw) for name, encoder in encoders.items() if encoder is not None}

    def forward(self, lr: Tensor, latent_hw: tuple[int, int]) -> Tensor | None:
        """``c_img`` (B, C_img + C_sem, H_lat, W_lat), or None when both encoders are disabled."""
        features = self.encode(lr, latent_hw)
        return torch.cat(list(features.values()), dim=1) if features else None
