"""Training SpaSemSR: ε-MSE + λ_vae·L_vae + λ_sem·L_sem with every guidance component a config switch.

In training the grounder sees the HR crop (as in the paper), with ``text.train_grounding=drm_lr`` DRM(LR) of
the training crop, or with ``drm_lr_photo`` DRM(LR) of the crop's whole photo, degraded by the training
degradation and sized as inference sizes it (``guidance/grounding/photos.py``); the describer reads the true degradation
parameters. Both are built with their configured options on the module's device. Text
conditions are dropped per image with ``cond_dropout`` so classifier-free guidance is available at
inference. Only the ControlNet and the added guidance modules train, always with every inference knob
neutral (``TRAINING_KNOBS``): ``sampler`` settings shape previews, never the trained model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import Tensor

from spasemsr.config.schema import SamplerConfig
from spasemsr.data.degradation import RealESRGANDegradation
from spasemsr.diffusion.backbone import Backbone, load_backbone
from spasemsr.diffusion.latents import epsilon_loss, posterior_latents
from spasemsr.guidance.backends import text_backends
from spasemsr.guidance.denoiser import GUIDANCE_MODULES, SpaSemSRNet
from spasemsr.guidance.grounding.base import Grounding
from spasemsr.guidance.grounding.photos import PhotoGroundings
from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner
from spasemsr.guidance.text.encoder import text_encoder_for
from spasemsr.guidance.visual.constraints import constraint_losses
from spasemsr.guidance.visual.teachers import Teacher, load_teacher
from spasemsr.models.base import TaskModule
from spasemsr.models.sr_net import build_sr_net, initialise_from
from spasemsr.pipeline import SRPipeline, sampler_settings
from spasemsr.weights.exports import load_drm

TRAINING_KNOBS = SamplerConfig()
"""Every inference knob at its neutral value: what the denoiser runs with in training, whatever ``sampler`` says."""


class SpaSemSRModule(TaskModule):
    """The full method as a LightningModule."""

    trainable = ("net.controlnet", *(f"net.{name}" for name in GUIDANCE_MODULES))
    frozen_paths = ("profile.backbone_path",)
    needs_lr = True

    def __init__(self, config: Any, net: SpaSemSRNet | None = None, backbone: Backbone | None = None,
                 teacher: Teacher | None = None) -> None:
        """``net`` and the frozen parts are built from the config unless given (benchmarks build them in code)."""
        super().__init__(config)
        visual = self.cfg.model.visual
        self.backbone = (backbone or load_backbone(self.cfg.profile.backbone_path)).freeze()
        self.vae = self.backbone.vae
        teacher_on = visual.use_sem and visual.l_sem and visual.teacher != "none"
        if teacher_on and teacher is None:
            teacher = load_teacher(visual.teacher, visual.teacher_path or None)
        self.teacher = teacher if teacher_on else None
        if net is None:
            net = build_sr_net(self.cfg, self.backbone, text_encoder_for(self.cfg),
                               teacher_channels=self.teacher.out_channels if self.teacher is not None else 0)
            initialise_from(net, self.cfg.model.init_from)
        self.net = net
        self._backends: tuple[torch.device, Any, Any] | None = None
        self._grounding_view: tuple[torch.device, SpaSemSRConditioner] | None = None
        self._photo_groundings: PhotoGroundings | None = None

    def text_backends(self) -> tuple[Any, Any]:
        """The training grounder and describer (configured options), on the module's current device."""
        if self._backends is None or self._backends[0] != self.device:
            self._backends = (self.device, *text_backends(self.cfg.model.text, "train", self.device))
        return self._backends[1], self._backends[2]

    @torch.no_grad()
    def grounding_images(self, batch: dict[str, Any]) -> Tensor:
        """What the training grounder sees: the HR crop, or DRM(LR) at the HR size (``train_grounding=drm_lr``)."""
        if self.cfg.model.text.train_grounding == "hr":
            return batch["hr"]
        return self._grounding_conditioner().cleaned(batch["lr"]).to(batch["lr"].device)

    def _grounding_conditioner(self) -> SpaSemSRConditioner:
        """What turns an LR into the grounder's image as inference does: the DRM, then at most grounding_side."""
        if self._grounding_view is None or self._grounding_view[0] != self.device:
            text, scale = self.cfg.model.text, self.cfg.data.scale
            drm = load_drm(Path(self.cfg.run.root), self.cfg.model.drm, scale, str(self.device))
            self._grounding_view = (self.device, SpaSemSRConditioner(self.net, scale, None, None, drm,
                                                                     text.grounding_side))
        return self._grounding_view[1]

    def groundings(self, batch: dict[str, Any], grounder: Any) -> list[Grounding]:
        """The training grounding of each crop (``text.train_grounding`` says from what)."""
        text = self.cfg.model.text
        if text.train_grounding != "drm_lr_photo":
            return grounder(self.grounding_images(batch), keys=batch.get("path"), views=batch.get("view"))
        if self._photo_groundings is None:
            degradation = RealESRGANDegradation(OmegaConf.to_object(self.cfg.degradation), self.cfg.data.scale)
            conditioner = self._grounding_conditioner()
            self._photo_groundings = PhotoGroundings(
                lambda hr, generator: degradation(hr, generator)[0],  # on the CPU, where the generator is
                lambda lr: grounder(conditioner.cleaned(lr.to(self.device)))[0],
                self.cfg.data.scale, text.train_grounding_draws, self.cfg.seed)
        views = batch.get("view")
        return self._photo_groundings(batch.get("path") or [], views.cpu() if views is not None else None)

    def _conditions(self, batch: dict[str, Any], generator: torch.Generator | None, drop: bool = True,
                    visual: dict[str, Tensor] | None = None):
        hr, lr = batch["hr"], batch["lr"]
        b = hr.shape[0]
        device = generator.device if generator is not None else hr.device
        drop = torch.rand(b, generator=generator, device=device) < (self.cfg.model.cond_dropout if drop else 0.0)
        grounder, describer = self.text_backends()
        groundings = None
        if grounder is not None:
            groundings = self.groundings(batch, grounder)
            groundings = [Grounding.empty() if drop[i] else g for i, g in enumerate(groundings)]
        captions = None
        if describer is not None:
            captions = describer(lr, batch.get("degradation"))
            captions = ["" if drop[i] else c for i, c in enumerate(captions)]
        return self.net.conditions(lr, self.cfg.data.scale, groundings, captions, visual)

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        hr, lr = batch["hr"], batch["lr"]
        latents, clean = posterior_latents(self.vae, hr, generator)  # one VAE encoder run for both
        noisy, noise, timesteps = self.noised(self.backbone.train_scheduler, latents, generator)
        features = self.net.visual.encode(lr, self.net.latent_hw(hr.shape[-2:]))  # E_img / E_sem, run once
        cond = self._conditions(batch, generator, visual=features)
        total = epsilon_loss(self.net.eps(noisy, timesteps, cond, TRAINING_KNOBS), noise)
        visual = self.cfg.model.visual
        terms = constraint_losses(self.net.visual, features, clean, hr, self.teacher, visual.distance)
        weights = {"vae": visual.lambda_vae, "sem": visual.lambda_sem}
        for name, value in terms.items():
            self.log(f"{'train' if self.training else 'val'}/l_{name}", value, batch_size=len(hr))
            total = total + weights[name] * value
        return total

    def checkpointed_models(self) -> list:
        """The frozen UNet and the ControlNet; their blocks re-enter the guidance context when recomputed."""
        function = self.net.context.checkpointing_function()
        return [(self.net.unet, function), (self.net.controlnet, function)]

    def preview(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """LR | SR | HR with the training-time (oracle) grounding and captions of the fixed validation pairs."""
        generator = torch.Generator(self.device).manual_seed(self.cfg.sampler.seed)
        pipeline = SRPipeline(self.backbone, self.net, self.cfg.data.scale, sampler_settings(self.cfg.sampler),
                              lambda lr, *_: self._conditions(dict(batch, lr=lr), None, drop=False))
        pipeline.precision = self.autocast_dtype
        return self.side_by_side(batch["lr"], pipeline(batch["lr"], generator), batch["hr"])

    def export(self, folder: Path) -> None:
        self.net.controlnet.save_pretrained(folder / "controlnet")
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.guidance_state().items()}
        save_file(state, folder / "guidance.safetensors")

