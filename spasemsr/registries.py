"""Every pluggable family in one place: the names a config may choose, each bound to its factory lazily.

``config/choices.py`` validates enumerated config fields against these live registries, so a member added
with ``FAMILY.register(name, factory)`` (from a plug-in module or a test) is accepted by configs at once.
Signatures each family's factories share:

- ``GROUNDERS`` / ``DESCRIBERS``: ``(**options, device=)`` -> grounder / describer (options from the config).
- ``TEXT_ENCODERS``: ``(path, subfolder)`` -> (tokenizer, model).
- ``TEACHERS``: ``(path)`` -> frozen teacher or None.
- ``RESTORERS``: ``(path, scale, device)`` -> callable LR -> SR.
- ``DISTANCES``: ``(prediction, target)`` -> scalar loss.
- ``FUSIONS``: ``(channels, heads)`` -> module mapping (h_spa, h_deg) to the residual added to h_spa.
- ``SAMPLERS``: ``(scheduler_config, steps, eta)`` -> sampler with ``sample(denoise, shape, ...)``.
- ``OPTIMIZERS``: ``(params, lr)`` -> torch optimiser.
- ``TASKS``: a ``Task`` (config schema, LightningModule, SR network builder); see ``config/tasks.py``.
"""

from __future__ import annotations

from spasemsr.utils.registry import Registry

_GROUNDING = "spasemsr.guidance.grounding"
_DESCRIBER = "spasemsr.guidance.describer"
_TEXT = "spasemsr.guidance.text.encoder"
_TEACHERS = "spasemsr.guidance.visual.teachers"
_RESTORE = "spasemsr.restore.baselines"
_FUSION = "spasemsr.guidance.fusion.modes"
_SAMPLERS = "spasemsr.diffusion.samplers"
_OPTIM = "spasemsr.training.memory"

GROUNDERS = Registry("grounder", {
    "annotations": f"{_GROUNDING}.annotations:AnnotationGrounder",
    "auto": f"{_GROUNDING}.auto:AutoGrounder",
    "grounding_dino": f"{_GROUNDING}.detectors:load_grounding_dino",
    "owlv2": f"{_GROUNDING}.detectors:load_owlv2",
    "probe": f"{_GROUNDING}.probe:ProbeGrounder",
    "none": f"{_GROUNDING}.base:NoGrounder",
})
DESCRIBERS = Registry("describer", {
    "params": f"{_DESCRIBER}.params:ParamsDescriber",
    "estimator": f"{_DESCRIBER}.estimator:EstimatorDescriber",
    "vlm": f"{_DESCRIBER}.vlm:VLMDescriber",
    "none": f"{_DESCRIBER}:NoDescriber",
})
TEXT_ENCODERS = Registry("text encoder", {"minilm": f"{_TEXT}:load_minilm", "clip": f"{_TEXT}:load_clip"})
TEACHERS = Registry("semantic teacher", {
    "mobilenet_v2": f"{_TEACHERS}:load_mobilenet_v2_teacher",
    "sam": f"{_TEACHERS}:load_sam_teacher",
    "none": f"{_TEACHERS}:no_teacher",
})
RESTORERS = Registry("restorer", {
    "bicubic": f"{_RESTORE}:bicubic_restorer",
    "drm": f"{_RESTORE}:drm_restorer",
    "realesrgan_x4plus": "spasemsr.restore.pretrained:realesrgan_x4plus_restorer",
    "realsr_df2k": "spasemsr.restore.pretrained:realsr_df2k_restorer",
})
DISTANCES = Registry("constraint distance", {
    "l1": "torch.nn.functional:l1_loss",
    "l2": "torch.nn.functional:mse_loss",
    "cosine": "spasemsr.guidance.visual.constraints:cosine_distance",
})
FUSIONS = Registry("fusion", {
    "spasem": f"{_FUSION}:SpaSemFusion",
    "sum": f"{_FUSION}:SumFusion",
    "concat": f"{_FUSION}:ConcatFusion",
})
SAMPLERS = Registry("sampler", {
    "ddim": f"{_SAMPLERS}:ddim",
    "dpmpp_2m": f"{_SAMPLERS}:dpmpp_2m",
    "euler": f"{_SAMPLERS}:euler",
    "euler_ancestral": f"{_SAMPLERS}:euler_ancestral",
    "unipc": f"{_SAMPLERS}:unipc",
})
OPTIMIZERS = Registry("optimizer", {
    "adamw": f"{_OPTIM}:adamw",
    "adamw_fused": f"{_OPTIM}:adamw_fused",
    "adamw8bit": f"{_OPTIM}:adamw8bit",
})
TASKS = Registry("task", {
    "vae": "spasemsr.config.tasks:VAE",
    "prior": "spasemsr.config.tasks:PRIOR",
    "controlnet_sr": "spasemsr.config.tasks:CONTROLNET_SR",
    "spasemsr": "spasemsr.config.tasks:SPASEMSR",
    "drm": "spasemsr.config.tasks:DRM",
    "estimator": "spasemsr.config.tasks:ESTIMATOR",
})
