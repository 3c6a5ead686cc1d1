"""The bicubic downscale operator: the degradation that bicubic LR sets, LR-consistency and back-projection assume."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bicubic_down(img: Tensor, scale: int) -> Tensor:
    """Antialiased torch bicubic downscale by `scale` (align_corners=False), sides floored to whole pixels."""
    height, width = img.shape[-2:]
    return F.interpolate(
        img, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
    )


def bicubic_up(img: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic upscale to `size` (align_corners=False), the approximate inverse used to spread LR residuals."""
    return F.interpolate(img, size=size, mode="bicubic", align_corners=False)
