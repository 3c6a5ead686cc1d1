"""The degradation constraints that make E_img and E_sem see through the LR's degradations (training only).

L_vae = d(P_v(E_img(LR)), VAE.enc(HR)) pulls E_img towards the clean latent; L_sem =
d(P_s(E_sem(LR)), Teacher(HR)) pulls E_sem towards the frozen teacher's view of the clean image.
The paper does not publish d or the weights; XPSR (qyp2000/XPSR, train.py), whose constraint this
mirrors, uses a mean L1 with λ = 0.05, hence the defaults here and in config. The caller weights the
returned terms with λ_vae and λ_sem.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from spasemsr.guidance.visual.encoders import VisualGuidance
from spasemsr.guidance.visual.teachers import Teacher
from spasemsr.registries import DISTANCES


def cosine_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - cosine similarity over channels, averaged over positions."""
    return (1 - F.cosine_similarity(prediction, target, dim=1)).mean()


def constraint_losses(
    guidance: VisualGuidance,
    features: dict[str, Tensor],
    hr_latents: Tensor | None,
    hr: Tensor,
    teacher: Teacher | None,
    distance: str = "l1",
) -> dict[str, Tensor]:
    """Unweighted ``vae`` and ``sem`` terms from the forward pass's E_img / E_sem ``features`` and the HR's clean
    latents; a term is absent when its encoder, head, latents (no VAE) or teacher is."""
    measure = DISTANCES.get(distance)
    losses: dict[str, Tensor] = {}
    if "img" in features and guidance.vae_head is not None and hr_latents is not None:
        if tuple(hr_latents.shape[-2:]) != tuple(features["img"].shape[-2:]):
            raise ValueError(
                f"the VAE encodes a {tuple(hr.shape[-2:])} HR to a {tuple(hr_latents.shape[-2:])} latent, but the "
                f"guidance was built with vae_factor={guidance.vae_factor} (features "
                f"{tuple(features['img'].shape[-2:])}); build VisualGuidance with vae_factor=vae_downscale(vae)"
            )
        losses["vae"] = measure(guidance.vae_head(features["img"]).float(), hr_latents.float())
    if "sem" in features and guidance.sem_head is not None and teacher is not None:
        prediction, target = _sem_pair(guidance, features["sem"], hr, teacher)
        losses["sem"] = measure(prediction.float(), target.float())
    return losses


def _sem_pair(guidance: VisualGuidance, sem: Tensor, hr: Tensor, teacher: Teacher) -> tuple[Tensor, Tensor]:
    """(P_s(E_sem(LR)) resized to the teacher's grid, Teacher(HR))."""
    target = teacher(hr)
    if target.shape[1] != guidance.sem_head.out_channels:
        raise ValueError(
            f"the teacher gives {target.shape[1]} channels but P_s projects to {guidance.sem_head.out_channels}; "
            "build VisualGuidance with teacher_channels=teacher.out_channels"
        )
    prediction = guidance.sem_head(sem)
    if prediction.shape[-2:] != target.shape[-2:]:
        prediction = F.interpolate(  # in float32: antialiased resizing has no bfloat16 CPU kernel (bf16-mixed)
            prediction.float(), size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False, antialias=True
        )
    return prediction, target
