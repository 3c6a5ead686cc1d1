"""The degradation constraints that make E_img and E_sem see through the LR's degradations (training only).

L_vae = d(P_v(E_img(LR)), VAE.enc(HR)) pulls E_img towards the clean latent; L_sem =
d(P_s(E_sem(LR)), Teacher(HR)) pulls E_sem towards the frozen teacher's view of the clean image.
The paper does not publish d or the weights; XPSR (qyp2000/XPSR, train.py), whose constraint this
mirrors, uses a mean L1 with λ = 0.05, hence the defaults here and in config. The caller weights the
returned terms with λ_vae and λ_sem.
"""

from __future__ import annotations

import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import Tensor

from spasemsr.diffusion.latents import clean_latents
from spasemsr.guidance.visual.encoders import VisualGuidance
from spasemsr.guidance.visual.teachers import Teacher
from spasemsr.registries import DISTANCES


def cosine_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - cosine similarity over channels, averaged over positions."""
    return (1 - F.cosine_similarity(prediction, target, dim=1)).mean()


def constraint_losses(
    guidance: VisualGuidance,
    lr: Tensor,
    hr: Tensor,
    vae: AutoencoderKL | None,
    teacher: Teacher | None,
    distance: str = "l1",
) -> dict[str, Tensor]:
    """Unweighted ``vae`` and ``sem`` terms; a term is absent when its encoder, head, VAE or teacher is."""
    measure = DISTANCES.get(distance)
    latent_hw = (hr.shape[-2] // guidance.vae_factor, hr.shape[-1] // guidance.vae_factor)  # the VAE floors
    losses: dict[str, Tensor] = {}
    if guidance.img is not None and guidance.vae_head is not None and vae is not None:
        prediction, target = _vae_pair(guidance, lr, hr, vae, latent_hw)
        losses["vae"] = measure(prediction.float(), target.float())
    if guidance.sem is not None and guidance.sem_head is not None and teacher is not None:
        prediction, target = _sem_pair(guidance, lr, hr, teacher, latent_hw)
        losses["sem"] = measure(prediction.float(), target.float())
    return losses


def _vae_pair(
    guidance: VisualGuidance, lr: Tensor, hr: Tensor, vae: AutoencoderKL, latent_hw: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """(P_v(E_img(LR)), clean HR latents) on the HR latent grid."""
    target = clean_latents(vae, hr)
    if tuple(target.shape[-2:]) != latent_hw:
        raise ValueError(
            f"the VAE encodes a {tuple(hr.shape[-2:])} HR to a {tuple(target.shape[-2:])} latent, but the guidance "
            f"was built with vae_factor={guidance.vae_factor} (expects {latent_hw}); "
            "build VisualGuidance with vae_factor=vae_downscale(vae)"
        )
    return guidance.vae_head(guidance.img(lr, latent_hw)), target


def _sem_pair(
    guidance: VisualGuidance, lr: Tensor, hr: Tensor, teacher: Teacher, latent_hw: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """(P_s(E_sem(LR)) resized to the teacher's grid, Teacher(HR))."""
    target = teacher(hr)
    if target.shape[1] != guidance.sem_head.out_channels:
        raise ValueError(
            f"the teacher gives {target.shape[1]} channels but P_s projects to {guidance.sem_head.out_channels}; "
            "build VisualGuidance with teacher_channels=teacher.out_channels"
        )
    prediction = guidance.sem_head(guidance.sem(lr, latent_hw))
    if prediction.shape[-2:] != target.shape[-2:]:
        prediction = F.interpolate(  # in float32: antialiased resizing has no bfloat16 CPU kernel (bf16-mixed)
            prediction.float(), size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False, antialias=True
        )
    return prediction, target
