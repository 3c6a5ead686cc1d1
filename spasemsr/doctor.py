"""``spasemsr doctor``: what this machine can run, found by looking at files (nothing is loaded or downloaded).

It walks every backend registry (text encoders, grounders, describers, teachers), the weights table and
the metric registry, so a backend or weights added there show up here, and says for each whether its
weights resolve, where they were looked for, and what to do if not. It always exits 0: it reports, it does not judge.
"""

from __future__ import annotations

from collections.abc import Callable

from spasemsr.guidance.grounding.auto import EYE_CASCADE, FACE_CASCADE, _load_cascade
from spasemsr.metrics.registry import METRICS, available
from spasemsr.registries import DESCRIBERS, GROUNDERS, TEACHERS, TEXT_ENCODERS
from spasemsr.weights.table import WEIGHTS

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


def _cascades() -> tuple[bool, str]:
    try:
        for name in (FACE_CASCADE, EYE_CASCADE):
            _load_cascade(None, name)
    except (FileNotFoundError, ImportError) as err:
        return False, str(err)
    return True, f"OpenCV {FACE_CASCADE} and {EYE_CASCADE}"


def _weights(name: str, path_key: str = "") -> tuple[bool | None, str]:
    """A weights-table row: found (ok), missing, or a path the user supplies (``path_key``)."""
    row = WEIGHTS[name]
    if not row.default:
        where = f"give {path_key}=<{row.holds}>" if path_key else f"not shipped: {row.holds}"
        return None, f"{where}: {row.make}"
    try:
        return True, str(row.resolve())
    except FileNotFoundError as err:
        return False, str(err)


_CHECKS: dict[tuple[str, str], Callable[[], tuple[bool | None, str]]] = {
    ("text encoder", "minilm"): lambda: _weights("minilm"),
    ("text encoder", "clip"): lambda: _weights("sd2", "profile.backbone_path"),
    ("grounder", "annotations"): lambda: (True, "hand-made boxes of the bundled set (spasemsr/data/annotations)"),
    ("grounder", "auto"): lambda: _weights("mobilenet_v2"),
    ("grounder", "auto cascades"): _cascades,
    ("grounder", "grounding_dino"): lambda: _weights("grounding_dino", "grounder_options.grounding_dino.path"),
    ("grounder", "owlv2"): lambda: _weights("owlv2", "grounder_options.owlv2.path"),
    ("describer", "params"): lambda: (True, "captions from the true degradation parameters (training only)"),
    ("describer", "estimator"): lambda: _weights("tiny_estimator"),
    ("describer", "vlm"): lambda: _weights("vlm", "describer_options.vlm.path"),
    ("teacher", "mobilenet_v2"): lambda: _weights("mobilenet_v2"),
    ("teacher", "sam"): lambda: _weights("sam", "model.visual.teacher_path"),
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
    """Every row of the report: runtime, backends, the weights table, metrics."""
    import torch

    cuda = torch.cuda.is_available()
    rows: list[Row] = [
        ("runtime", "torch", True, torch.__version__),
        ("runtime", "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "not available; everything runs on CPU"),
    ]
    rows += _backend_rows()
    rows += [("weights", name, *_weights(name)) for name in WEIGHTS]
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

