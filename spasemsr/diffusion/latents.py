"""Moving between pixels and the prior's scaled latent space, and the ε-prediction objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler
from torch import Tensor


def encode(vae: AutoencoderKL, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Images in [0, 1] → scaled latents (sampled from the posterior, as SD training does)."""
    posterior = vae.encode(images * 2 - 1).latent_dist
    return posterior.sample(generator) * vae.config.scaling_factor


@torch.no_grad()
def posterior_latents(vae: AutoencoderKL, images: Tensor, generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor]:
    """(``encode``'s sample, ``clean_latents``' mean) from one run of the VAE encoder: a training step needs both."""
    posterior = vae.encode(images * 2 - 1).latent_dist
    factor = vae.config.scaling_factor
    return posterior.sample(generator) * factor, posterior.mean * factor


@torch.no_grad()
def clean_latents(vae: AutoencoderKL, images: Tensor) -> Tensor:
    """Images in [0, 1] → the posterior mean, scaled like the prior's latents: deterministic (targets, LR starts)."""
    return vae.encode(images * 2 - 1).latent_dist.mean * vae.config.scaling_factor


def decode(vae: AutoencoderKL, latents: Tensor) -> Tensor:
    """Scaled latents → images in [0, 1]."""
    return (vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1) + 1) / 2


def noised(
    scheduler: DDPMScheduler, latents: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw (z_t, ε, t) for the ε-prediction loss at uniformly random timesteps."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator, device=latents.device)
    return scheduler.add_noise(latents, noise, timesteps), noise, timesteps


def epsilon_loss(prediction: Tensor, noise: Tensor) -> Tensor:
    """The standard diffusion objective: MSE between predicted and true noise."""
    return F.mse_loss(prediction.float(), noise.float())
