"""LR data consistency for sampled SR images: iterative back-projection onto the bicubic degradation.

Each iteration adds the bicubically upscaled residual ``LR - down(SR)`` (Irani & Peleg 1991), which
moves the part of SR that the LR observes towards the LR and leaves the detail above the LR's Nyquist
frequency to the diffusion model (the range/null-space split that DDNM makes exact for linear
degradations). It is an inference knob, ``backproject`` = number of iterations, recorded with every
result: with it on, LR-consistency is partly enforced rather than earned, so tables report it.
"""

from __future__ import annotations

from torch import Tensor

from spasemsr.data.resize import bicubic_down, bicubic_up


def back_project(sr: Tensor, lr: Tensor, scale: int, iterations: int) -> Tensor:
    """``iterations`` back-projection steps of SR (B, 3, scale·h, scale·w) onto LR (B, 3, h, w), both in [0, 1]."""
    if iterations < 0:
        raise ValueError(f"sampler.backproject must be >= 0 iterations, got {iterations}")
    if tuple(sr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        raise ValueError(f"back_project: SR {tuple(sr.shape)} is not the LR {tuple(lr.shape)} upscaled x{scale}")
    for _ in range(iterations):
        residual = lr - bicubic_down(sr, scale)
        sr = (sr + bicubic_up(residual, sr.shape[-2:])).clamp(0, 1)
    return sr
