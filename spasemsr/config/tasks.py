"""What can be trained: each task's config schema, the LightningModule that runs it and, for SR tasks, its network."""

from __future__ import annotations

from dataclasses import dataclass, field

from spasemsr.utils.registry import import_object


@dataclass
class AutoencoderTask:
    """Pretrain the tiny VAE (stands in for SD-2's frozen VAE)."""

    name: str = "vae"
    lr: float = 2e-4
    kl_weight: float = 1e-6
    # Train on crops whose RGB channels are randomly permuted, meant to widen the colours the VAE sees (the bundled
    # photos are 7/19 grey). Measured on the tiny VAE as a fine-tune it made colour worse (configs/tiny_vae.yaml).
    channel_shuffle: bool = False
    # Scale each crop's chroma (RGB minus its luma) by a factor drawn in [1, 1 + saturation_jitter], clipped to
    # [0, 1]: saturated colours the bundled photos rarely hold (kodak's hats are decoded G -0.08, B +0.07 off).
    saturation_jitter: float = 0.0
    recon_loss: str = "l1"  # l1 | mse (mse optimises PSNR itself, as SD's ft-MSE decoder)
    # Weight of an L1 between the log-amplitude spectra of reconstruction and target, added to recon_loss. Phase
    # free, it asks for the target's amount of detail at each frequency, not its place: an MSE decoder of
    # ambiguous (sampled) latents learns their conditional mean, a blur, and this term prices the blur.
    spectrum_weight: float = 0.0
    # A VAE folder (config.json + weights) to fine-tune instead of a fresh one from ``profile.vae_arch``.
    init_from: str = ""
    # False: only the decoder trains (from ``init_from``); the encoder's latents, its ``scaling_factor`` and every
    # model trained on them stay valid, so the new decoder drops into a trained chain (as SD's ft-MSE decoder).
    train_encoder: bool = True
    # Batches used after training to set ``scaling_factor`` so latents have unit variance (as SD does).
    scaling_batches: int = 8


@dataclass
class PriorTask:
    """Pretrain the tiny text-conditioned UNet prior on frozen VAE latents (stands in for SD-2's UNet)."""

    name: str = "prior"
    lr: float = 2e-4
    caption_dropout: float = 0.1
    vae_path: str = ""  # the VAE folder (its config.json; weights table: tiny_vae), e.g. <vae run>/export/vae


@dataclass
class ControlNetSRTask:
    """ControlNet-SR baseline: SpaSemSR with both guidances off; only the ControlNet trains."""

    name: str = "controlnet_sr"
    lr: float = 1e-4
    prompt: str = ""  # the fixed text condition; no guidance means the null prompt
    init_from: str = ""  # an SR export to start from (its ControlNet), e.g. weights/tiny/controlnet_sr; "" = the UNet's


@dataclass
class TextGuidance:
    """Spatial text (grounded tags + boxes) and degradation text; grounders/describers chosen by name."""

    spatial: str = "tags_boxes"  # none | tags | tags_boxes
    box_encoder: str = "sinusoidal"  # sinusoidal | linear (the "w/o box encoder" ablation)
    # add each query's own position (encoded by box_encoder) to the attentions over e_spa, so queries can match the
    # boxes (issue #19); off in exports made before it, whose configs lack the key
    query_position: bool = False
    # each query of the attentions over e_spa attends only to the tags whose box holds it, or to the null prompt where
    # no box does: a hard version of eDiff-I's paint-with-words; off in exports made before it (issue #19)
    box_mask: bool = False
    max_objects: int = 8
    train_grounder: str = "auto"  # the grounder of training (annotations: the bundled set's hand-checked boxes)
    # what it sees: hr (the HR crop) | drm_lr (model.drm applied to the crop's training LR) | drm_lr_photo (DRM(LR)
    # of the crop's whole photo, degraded as in training and sized by grounding_side: what inference grounds; each
    # photo is grounded once per draw and crops take the boxes that fall in them)
    train_grounding: str = "hr"
    train_grounding_draws: int = 4  # drm_lr_photo: degradations drawn (and grounded) per training photo
    infer_grounder: str = "auto"  # sees DRM(LR) at inference
    grounding_side: int = 1024  # DRM(LR) for the grounder is at most this long a side (0 = full size): inference,
    # drm_lr and drm_lr_photo training
    grounder_options: dict = field(default_factory=dict)  # per backend name, e.g. {owlv2: {path: ...}}
    degradation_text: bool = True
    train_describer: str = "params"  # captions from the true degradation parameters
    # the quantities template captions state (params and estimator alike): those the inference describer can
    # estimate; configs/model/spasemsr.yaml keeps the one the shipped estimator reads (issue #18)
    caption_fields: list = field(default_factory=lambda: ["blur", "noise", "jpeg"])
    infer_describer: str = "estimator"
    describer_options: dict = field(default_factory=dict)  # per backend name, e.g. {estimator: {path: ...}}


@dataclass
class VisualGuidanceTask:
    """E_img / E_sem on the LR image, their constraints, and SemImgAttn in the UNet decoder."""

    use_img: bool = True
    use_sem: bool = True
    channels: int = 32
    width: int = 32
    depth: int = 2
    l_vae: bool = True
    l_sem: bool = True
    teacher: str = "mobilenet_v2"  # mobilenet_v2 | sam | none
    teacher_path: str = ""
    distance: str = "l1"
    lambda_vae: float = 0.05  # XPSR's value for its degradation-free constraint
    lambda_sem: float = 0.05
    sem_img_attn: bool = True


@dataclass
class SpaSemSRTask:
    """The full method: ControlNet-SR plus spatial-semantic guidance, every component a config switch."""

    name: str = "spasemsr"
    lr: float = 1e-4
    prompt: str = ""
    text: TextGuidance = field(default_factory=TextGuidance)
    visual: VisualGuidanceTask = field(default_factory=VisualGuidanceTask)
    fusion: str = "spasem"  # spasem | sum | concat
    # what cleans the LR the grounder sees at inference: none (the bicubic LR), tiny (the shipped DRM), a pretrained
    # restorer (realesrgan_x4plus, realsr_df2k) or the path of a DRM folder (its config.json)
    drm: str = "tiny"
    cond_dropout: float = 0.1  # drop text conditions in training so classifier-free guidance works
    # an SR export to start from: its ControlNet, and (a SpaSemSR export) its guidance weights where shapes match
    init_from: str = ""


@dataclass
class DRMTask:
    """The degradation removal module: a regression x4 restorer trained with L1 (the PD plane's fidelity end)."""

    name: str = "drm"
    lr: float = 2e-4
    arch: dict = field(default_factory=dict)  # RRDBNet kwargs (see spasemsr.restore.drm)


@dataclass
class EstimatorTask:
    """A small network that predicts the degradation parameters from LR (the inference-time describer)."""

    name: str = "estimator"
    lr: float = 1e-3
    arch: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A trainable task, registered in ``spasemsr.registries.TASKS`` under its ``model.name``.

    ``module`` (and ``sr_net`` for super-resolution tasks) are ``"module:attribute"`` strings imported only
    when a run needs them, so validating a config never pays for importing diffusers.
    """

    schema: type  # the dataclass ``model`` is validated against
    module: str  # the LightningModule that trains it
    sr_net: str = ""  # SR tasks: ``(cfg, backbone, text_encoder, controlnet, teacher_channels) -> ControlledUNet``

    @property
    def module_class(self) -> type:
        """The LightningModule class (imported now)."""
        return import_object(self.module)

    @property
    def is_sr(self) -> bool:
        """Whether its export is an SR model that ``upscale``, ``evaluate`` and sweeps load."""
        return bool(self.sr_net)


_MODELS = "spasemsr.models"
VAE = Task(AutoencoderTask, f"{_MODELS}.autoencoder:AutoencoderModule")
PRIOR = Task(PriorTask, f"{_MODELS}.prior:PriorModule")
CONTROLNET_SR = Task(ControlNetSRTask, f"{_MODELS}.controlnet_sr:ControlNetSRModule",
                     f"{_MODELS}.sr_net:controlnet_sr_net")
SPASEMSR = Task(SpaSemSRTask, f"{_MODELS}.spasemsr:SpaSemSRModule", f"{_MODELS}.sr_net:spasemsr_net")
DRM = Task(DRMTask, f"{_MODELS}.drm:DRMModule")
ESTIMATOR = Task(EstimatorTask, f"{_MODELS}.estimator:EstimatorModule")
