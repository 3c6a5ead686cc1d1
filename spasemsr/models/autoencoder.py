"""Pretraining the tiny profile's VAE (SD-2's VAE is frozen and loaded instead in the sd2 profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.config import to_container
from spasemsr.diffusion.backbone import build_vae, load_tiny_vae
from spasemsr.models.base import TaskModule


def shuffle_channels(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """Each (C, H, W) image of the batch with its channels in a random order (drawn from ``generator``)."""
    device = generator.device if generator is not None else images.device
    orders = [torch.randperm(images.shape[1], generator=generator, device=device) for _ in range(len(images))]
    return torch.stack([image[order.to(image.device)] for image, order in zip(images, orders, strict=True)])


def log_spectrum_l1(recon: Tensor, target: Tensor) -> Tensor:
    """Mean L1 between the per-channel log-amplitude spectra (``log1p|FFT|``) of two image batches."""
    return F.l1_loss(torch.fft.rfft2(recon).abs().log1p(), torch.fft.rfft2(target).abs().log1p())


LUMA = (0.299, 0.587, 0.114)  # BT.601, as PSNR-Y


def jitter_saturation(images: Tensor, strength: float, generator: torch.Generator | None) -> Tensor:
    """Each image's chroma (RGB minus its luma) scaled by a factor drawn in [1, 1 + strength], clipped to [0, 1]."""
    device = generator.device if generator is not None else images.device
    factors = 1 + strength * torch.rand(len(images), 1, 1, 1, generator=generator, device=device).to(images)
    luma = sum(weight * images[:, c: c + 1] for c, weight in enumerate(LUMA))
    return (luma + factors * (images - luma)).clamp(0, 1)


class AutoencoderModule(TaskModule):
    """L1 (or MSE) reconstruction, an optional log-spectrum term and a small KL; after training, sets
    ``scaling_factor`` for unit-variance latents.

    The KL is weighed as in LDM / SD's VAE training: ``kl_weight`` (1e-6) against the reconstruction error
    *summed* over pixels, i.e. here (L1 averaged over pixels) the KL sum is divided by the pixel count. Weighing
    the summed KL against the averaged L1 (as before issue #18) made the KL 3HW (49,152 at 128²) times
    stronger: posterior sigma stayed near 0.7 beside latent means of std 0.7, about one bit per latent, and
    the tiny VAE lost colour and detail.

    ``model.init_from`` fine-tunes a trained VAE; with ``train_encoder: false`` only its decoder trains, so the
    latents (and the prior and ControlNets trained on them) stay as they were. With ``data.source=sampled_latents``
    the decoder learns to decode an SR model's sampled latents into their HR crops (no encoder, no KL).
    """

    trainable = ("vae",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        m = self.cfg.model
        if not m.train_encoder and not m.init_from:
            raise ValueError("model.train_encoder=false trains a decoder for a trained encoder: set model.init_from")
        if self.cfg.data.source == "sampled_latents" and m.train_encoder:
            raise ValueError("data.source=sampled_latents trains the decoder alone: set model.train_encoder=false")
        if m.init_from:
            self.vae = load_tiny_vae(m.init_from).train()  # from_pretrained returns eval mode
        else:
            self.vae = build_vae(to_container(self.cfg.profile.vae_arch))
        for part in (self.vae.encoder, self.vae.quant_conv):
            if part is not None:
                part.requires_grad_(m.train_encoder)

    def _decode(self, latents: Tensor) -> Tensor:
        return (self.vae.decode(latents).sample + 1) / 2

    def _error(self, recon: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """The reconstruction terms by their log names: ``recon_loss`` and, if weighted, the spectrum L1."""
        m = self.cfg.model
        terms = {m.recon_loss: (F.mse_loss if m.recon_loss == "mse" else F.l1_loss)(recon, hr)}
        if m.spectrum_weight:
            terms["spectrum"] = log_spectrum_l1(recon, hr)
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Decoder alone on given latents (``batch["latents"]``), or the VAE round trip of the HR plus its KL.

        Terms are per pixel: the KL's sum over the latent is divided by 3HW (batch-averaged)."""
        hr, generator, m = batch["hr"], batch.get("generator"), self.cfg.model
        if "latents" in batch:
            terms = self._error(self._decode(batch["latents"] / self.vae.config.scaling_factor), hr)
        else:
            if m.channel_shuffle:
                hr = shuffle_channels(hr, generator)
            if m.saturation_jitter:
                hr = jitter_saturation(hr, m.saturation_jitter, generator)
            with torch.set_grad_enabled(m.train_encoder and torch.is_grad_enabled()):
                posterior = self.vae.encode(hr * 2 - 1).latent_dist
            terms = self._error(self._decode(posterior.sample(generator)), hr)
            terms["kl"] = posterior.kl().mean() / hr[0].numel()
        loss = terms[m.recon_loss] + m.spectrum_weight * terms.get("spectrum", 0.0) + m.kl_weight * terms.get("kl", 0.0)
        self.log_dict({"train/loss": loss} | {f"train/{k}": v for k, v in terms.items()}, prog_bar=True,
                      batch_size=len(hr))
        return loss

    def _round_trip(self, hr: Tensor) -> Tensor:
        """The posterior mode of ``hr`` decoded and clamped to [0, 1]: what validation scores and previews show."""
        return self._decode(self.vae.encode(hr * 2 - 1).latent_dist.mode()).clamp(0, 1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        recon = self._round_trip(batch["hr"])
        mse = F.mse_loss(recon, batch["hr"])
        self.log_dict({"val/l1": F.l1_loss(recon, batch["hr"]), "val/psnr": -10 * torch.log10(mse)},
                      batch_size=len(batch["hr"]))

    def checkpointed_models(self) -> list:
        return [(self.vae, None)]

    def preview(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"input": batch["hr"], "reconstruction": self._round_trip(batch["hr"])}

    @torch.no_grad()
    def latent_std(self, batches: list[Tensor]) -> float:
        """Standard deviation of posterior samples over ``batches``: the inverse of SD's scaling factor."""
        latents = torch.cat([self.vae.encode(hr.to(self.device) * 2 - 1).latent_dist.sample() for hr in batches])
        return latents.std().item()

    def export(self, folder: Path) -> None:
        """The VAE; ``scaling_factor`` is set from the latents (kept from ``init_from`` if the encoder was frozen)."""
        if self.cfg.model.train_encoder:
            loader = self.trainer.datamodule.train_dataloader()
            batches = [batch["hr"] for batch, _ in zip(loader, range(self.cfg.model.scaling_batches), strict=False)]
            self.vae.register_to_config(scaling_factor=1.0 / self.latent_std(batches))
        self.vae.save_pretrained(folder / "vae")
