"""Multi-step samplers behind one small interface: a denoiser callable in, clean latents out.

``SchedulerSampler`` runs the reverse process of any diffusers scheduler; the factories below are the
members of ``spasemsr.registries.SAMPLERS`` (``sampler.name``), each ``(scheduler_config, steps, eta)``.
Every scheduler is built with ``from_config`` of the prior's training scheduler, so all of them share its
noise schedule and prediction type; they differ only in how they step between noise levels:

- ``ddim``: DDIM (deterministic at ``eta`` = 0, stochastic above);
- ``dpmpp_2m``: DPM-Solver++(2M), second-order multistep;
- ``euler``: Euler on the probability-flow ODE (Karras et al.'s sigma parametrisation);
- ``euler_ancestral``: Euler with ancestral noise at every step (stochastic);
- ``unipc``: UniPC, second-order predictor-corrector multistep.

``eta`` is DDIM's stochasticity; a scheduler whose ``step`` takes no ``eta`` ignores it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (scaled z_t, t) -> predicted ε (the prior's prediction type)


class SchedulerSampler:
    """``steps`` of a diffusers scheduler over the prior's noise schedule.

    Sampling starts from ``init_latents`` (the LR-derived latent) noised to the first timestep, as SeeSR
    and PASD start: SD-style schedules never reach zero SNR, so a prior trained on noised real latents
    reads the image's low frequencies (its colours) from that residual signal, and pure noise gives it
    only the training set's mean colour. ``start_t`` < 1 truncates the schedule to the timesteps at or
    below that fraction of the training noise levels (more of the LR kept, trading perception for
    fidelity); multistep and sigma-based schedulers are told where the truncated schedule begins
    (``set_begin_index``, as diffusers' img2img pipelines do), so their step counter and ``add_noise``
    agree with it. Without ``init_latents`` (``start_t`` = 1 only) it starts from pure noise.

    The denoiser sees ``scheduler.scale_model_input`` of the latents (the identity for DDIM and the
    multistep solvers, ``z / sqrt(sigma² + 1)`` for the Euler family): always the variance-preserving z_t
    the prior was trained on.
    """

    def __init__(self, scheduler: Any, steps: int, eta: float = 0.0) -> None:
        if steps < 1:
            raise ValueError(f"sampler.steps must be >= 1, got {steps}")
        self.scheduler = scheduler
        self.steps = steps
        self.eta = eta
        accepted = inspect.signature(scheduler.step).parameters
        self._takes_eta = "eta" in accepted
        self._takes_generator = "generator" in accepted

    def timesteps(self, start_t: float, device: torch.device) -> Tensor:
        """Set the scheduler's timesteps and return those sampling runs (``start_t`` applied), high noise first."""
        _check_start(start_t)
        self.scheduler.set_timesteps(self.steps, device=device)
        timesteps, begin = self.scheduler.timesteps, 0
        if start_t < 1.0:
            limit = start_t * (self.scheduler.config.num_train_timesteps - 1)
            begin = int((timesteps > limit).sum())  # timesteps run from high noise to low
            timesteps = timesteps[begin:]
            if len(timesteps) == 0:
                raise ValueError(f"start_t={start_t} leaves none of the {self.steps} sampling steps")
        if hasattr(self.scheduler, "set_begin_index"):  # the multistep / sigma-based ones count their steps
            self.scheduler.set_begin_index(begin * self.scheduler.order)
        return timesteps

    @torch.no_grad()
    def sample(self, denoise: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
               device: torch.device, dtype: torch.dtype = torch.float32, start_t: float = 1.0,
               init_latents: Tensor | None = None) -> Tensor:
        """Run the reverse process and return the final latents."""
        _check_start(start_t)
        if start_t < 1.0 and init_latents is None:
            raise ValueError("start_t < 1 needs init_latents to start from")
        timesteps = self.timesteps(start_t, device)
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        if init_latents is not None:
            latents = self.scheduler.add_noise(init_latents, noise, timesteps[:1])
        else:
            latents = noise * self.scheduler.init_noise_sigma
        options: dict[str, Any] = {}
        if self._takes_eta:
            options["eta"] = self.eta
        if self._takes_generator:
            options["generator"] = generator
        kind = latents.dtype  # kept: some solvers return the model output's dtype (e.g. float16 under autocast)
        for t in timesteps:
            prediction = denoise(self.scheduler.scale_model_input(latents, t), t.expand(shape[0])).to(kind)
            latents = self.scheduler.step(prediction, t, latents, **options).prev_sample.to(kind)
        return latents


def _check_start(start_t: float) -> None:
    if not 0.0 < start_t <= 1.0:
        raise ValueError(f"sampler.start_t must be in (0, 1], got {start_t}")


def ddim(scheduler_config: Any, steps: int, eta: float = 0.0) -> SchedulerSampler:
    """DDIM; ``eta`` = 0 is deterministic, 1 is DDPM-like ancestral noise."""
    return SchedulerSampler(DDIMScheduler.from_config(scheduler_config), steps, eta)


def dpmpp_2m(scheduler_config: Any, steps: int, eta: float = 0.0) -> SchedulerSampler:
    """DPM-Solver++(2M): second-order multistep in the data prediction (ignores ``eta``)."""
    scheduler = DPMSolverMultistepScheduler.from_config(scheduler_config, algorithm_type="dpmsolver++", solver_order=2)
    return SchedulerSampler(scheduler, steps, eta)


def euler(scheduler_config: Any, steps: int, eta: float = 0.0) -> SchedulerSampler:
    """Euler on the probability-flow ODE (deterministic; ignores ``eta``)."""
    return SchedulerSampler(EulerDiscreteScheduler.from_config(scheduler_config), steps, eta)


def euler_ancestral(scheduler_config: Any, steps: int, eta: float = 0.0) -> SchedulerSampler:
    """Euler with ancestral noise at every step (stochastic through the generator; ignores ``eta``)."""
    return SchedulerSampler(EulerAncestralDiscreteScheduler.from_config(scheduler_config), steps, eta)


def unipc(scheduler_config: Any, steps: int, eta: float = 0.0) -> SchedulerSampler:
    """UniPC: second-order predictor-corrector multistep (deterministic; ignores ``eta``)."""
    return SchedulerSampler(UniPCMultistepScheduler.from_config(scheduler_config), steps, eta)
