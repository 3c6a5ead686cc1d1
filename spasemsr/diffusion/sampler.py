"""Multi-step DDIM sampling behind one small interface: a denoiser callable in, clean latents out."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (z_t, t) -> predicted ε


class DDIMSampler:
    """Deterministic (eta=0) or stochastic DDIM over ``steps`` of the prior's noise schedule.

    Sampling starts from ``init_latents`` (the LR-derived latent) noised to the first timestep, as SeeSR
    and PASD start: SD-style schedules never reach zero SNR, so a prior trained on noised real latents
    reads the image's low frequencies (its colours) from that residual signal, and pure noise gives it
    only the training set's mean colour. ``start_t`` < 1 truncates the schedule to that fraction of the
    noise levels (more of the LR kept, trading perception for fidelity). Without ``init_latents``
    (``start_t`` = 1 only) it starts from pure noise.
    """

    def __init__(self, scheduler: DDIMScheduler, steps: int, eta: float = 0.0) -> None:
        if steps < 1:
            raise ValueError(f"sampler.steps must be >= 1, got {steps}")
        self.scheduler = scheduler
        self.steps = steps
        self.eta = eta

    @torch.no_grad()
    def sample(self, denoise: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
               device: torch.device, dtype: torch.dtype = torch.float32, start_t: float = 1.0,
               init_latents: Tensor | None = None) -> Tensor:
        """Run the reverse process and return the final latents."""
        if not 0.0 < start_t <= 1.0:
            raise ValueError(f"sampler.start_t must be in (0, 1], got {start_t}")
        self.scheduler.set_timesteps(self.steps, device=device)
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        timesteps = self.scheduler.timesteps
        if start_t < 1.0:
            if init_latents is None:
                raise ValueError("start_t < 1 needs init_latents to start from")
            limit = start_t * (self.scheduler.config.num_train_timesteps - 1)
            timesteps = timesteps[timesteps <= limit]
            if len(timesteps) == 0:
                raise ValueError(f"start_t={start_t} leaves none of the {self.steps} sampling steps")
        if init_latents is not None:
            latents = self.scheduler.add_noise(init_latents, noise, timesteps[:1])
        else:
            latents = noise * self.scheduler.init_noise_sigma
        for t in timesteps:
            eps = denoise(latents, t.expand(shape[0]))
            latents = self.scheduler.step(eps, t, latents, eta=self.eta, generator=generator).prev_sample
        return latents
