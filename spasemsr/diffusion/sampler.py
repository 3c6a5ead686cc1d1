"""Multi-step DDIM sampling behind one small interface: a denoiser callable in, clean latents out."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (z_t, t) -> predicted ε


class DDIMSampler:
    """Deterministic (eta=0) or stochastic DDIM over ``steps`` of the prior's noise schedule."""

    def __init__(self, scheduler: DDIMScheduler, steps: int, eta: float = 0.0) -> None:
        if steps < 1:
            raise ValueError(f"sampler.steps must be >= 1, got {steps}")
        self.scheduler = scheduler
        self.steps = steps
        self.eta = eta

    @torch.no_grad()
    def sample(self, denoise: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
               device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        """Run the reverse process from pure noise and return the final latents."""
        self.scheduler.set_timesteps(self.steps, device=device)
        latents = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        latents = latents * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            eps = denoise(latents, t.expand(shape[0]))
            latents = self.scheduler.step(eps, t, latents, eta=self.eta, generator=generator).prev_sample
        return latents
