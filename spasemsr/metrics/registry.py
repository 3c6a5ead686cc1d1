"""The one metric registry of the evaluation protocol (DESIGN.md section 5), in the manner of pyiqa's `create_metric`.

Each entry carries its direction and the exact variant that gets written into result files, and knows
which files it needs. Tables and sweeps read `lower_better` from here; a metric whose backend or weights
are absent is reported unavailable with the reason, never replaced by another variant or by a number.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import Tensor

from spasemsr.data import probe
from spasemsr.metrics import artifacts, fidelity, niqe
from spasemsr.metrics.availability import MetricUnavailable, WeightFile
from spasemsr.metrics.pyiqa_backend import pyiqa_score

Kind = Literal["full_ref", "no_ref", "lr_ref"]
Score = Callable[[Tensor, "Tensor | None", int], Tensor]
"""score(sr, reference, scale) -> (B,); the reference is HR (full_ref), LR (lr_ref) or None (no_ref)."""

__all__ = ["METRICS", "MetricSpec", "MetricUnavailable", "available", "compute", "lower_better", "too_small", "usable"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it compares, which way is better, the exact variant, and what it needs to run."""

    name: str
    kind: Kind
    lower_better: bool
    variant: str
    backend: str
    score: Score
    weights: tuple[WeightFile, ...] = ()
    modules: tuple[str, ...] = ()
    # smallest SR side (pixels) it can score at a scale, probed here (tested); None: not probed (no weights here)
    min_side: Callable[[int], int] | None = None


def _with_crop(fn: Callable[..., Tensor]) -> Score:
    """A fidelity function whose border crop is the scale factor (BasicSR: crop_border = scale)."""
    return lambda sr, ref, scale: fn(sr, ref, crop=scale)


def _lr_ref(sr: Tensor, lr: Tensor | None, scale: int) -> Tensor:
    return fidelity.lr_consistency(sr, lr, scale)


def _no_ref(fn: Callable[[Tensor], Tensor]) -> Score:
    return lambda sr, ref, scale: fn(sr)


def _pyiqa(name: str, **options: object) -> Score:
    """A pyiqa metric under its default options (plus `options`); full-reference ones get the HR as reference."""
    return lambda sr, ref, scale: pyiqa_score(name, sr, ref, **options)


_PYIQA = ("pyiqa",)
_PYIQA_FILE = partial(WeightFile, "pyiqa")
_TORCHVISION_FILE = partial(WeightFile, "torchvision")

_SPECS = (
    MetricSpec("psnr_y", "full_ref", False,
               "psnr_y: Y of BT.601 YCbCr (unrounded), 8-bit inputs, border crop = scale, inf if identical (BasicSR; "
               "= pyiqa psnr with test_y_channel, color_space=ycbcr; pyiqa's psnry preset (YIQ Y) reads "
               "20*log10(255/219) = 1.32 dB lower)",
               "spasemsr", _with_crop(fidelity.psnr_y), min_side=lambda scale: 2 * scale + 1),
    MetricSpec("ssim_y", "full_ref", False,
               "ssim_y: pyiqa ssim: Y of BT.601 YCbCr rounded to integers (MATLAB uint8 rgb2ycbcr), 8-bit, border "
               "crop = scale, 11x11 Gaussian sigma 1.5, contrast-structure term clamped at 0 (BasicSR/MATLAB "
               "neither round nor clamp: up to ~1e-2 apart on SR with invented texture)",
               "spasemsr", _with_crop(fidelity.ssim_y), min_side=lambda scale: 2 * scale + 11),
    MetricSpec("psnr_rgb", "full_ref", False,
               "psnr_rgb: one MSE over R, G, B, 8-bit, border crop = scale", "spasemsr", _with_crop(fidelity.psnr_rgb),
               min_side=lambda scale: 2 * scale + 1),
    MetricSpec("ms_ssim", "full_ref", False,
               "ms_ssim: torchmetrics multiscale SSIM on RGB, 5 scales, 11x11 Gaussian sigma 1.5, relu-normalised, "
               "8-bit, border crop = scale", "torchmetrics", _with_crop(fidelity.ms_ssim), modules=("torchmetrics",),
               min_side=lambda scale: 2 * scale + 176),
    MetricSpec("lr_consistency", "lr_ref", False,
               "lr_consistency: PSNR (RGB, 8-bit, no crop) of torch bicubic_down(SR) (antialias, align_corners=False) "
               "vs the LR input", "spasemsr", _lr_ref, min_side=lambda scale: scale),
    MetricSpec("dark_dots", "no_ref", True,
               f"dark_dots: 8-connected blobs of {artifacts.DARK_DOT_AREA[0]}-{artifacts.DARK_DOT_AREA[1]} px whose "
               f"{artifacts.DARK_DOT_WINDOW}x{artifacts.DARK_DOT_WINDOW} black top-hat exceeds "
               f"{artifacts.DARK_DOT_DEPTH} grey levels (8-bit Y of BT.601), per image; the HR's own count is the "
               "reference level; border crop = scale", "spasemsr",
               lambda sr, ref, scale: artifacts.dark_dots(sr, scale), min_side=lambda scale: 2 * scale + 1),
    MetricSpec("new_dark_dots", "full_ref", True,
               "new_dark_dots: dark_dots of the SR that touch no dark pixel of the HR (drawn by the model)",
               "spasemsr", _with_crop(artifacts.new_dark_dots), min_side=lambda scale: 2 * scale + 1),
    MetricSpec("texture_acc", "full_ref", False,
               "texture_acc: fraction of 16x16 cells whose texture class (spasemsr.data.probe.classify_cells: power at "
               "the probe's texture frequency; flat, horizontal/vertical stripes, checkerboard) in SR matches HR's",
               "spasemsr", lambda sr, ref, scale: probe.texture_accuracy(sr, ref),
               min_side=lambda scale: probe.CELL),
    MetricSpec("niqe", "no_ref", True,
               "niqe: pyiqa niqe (Y of YIQ, no crop) with LIVE params from basicsr 1.4.2 (vendored .mat)",
               "pyiqa", _no_ref(niqe.niqe), (WeightFile("vendored", niqe.NIQE_PARAMS.name),), _PYIQA,
               min_side=lambda scale: 96),  # pyiqa's 96-pixel NIQE blocks
    MetricSpec("piqe", "no_ref", True, "piqe: pyiqa piqe (no weights)", "pyiqa", _no_ref(niqe.piqe), (), _PYIQA,
               min_side=lambda scale: 8),
    MetricSpec("lpips", "full_ref", True, "lpips: pyiqa lpips (v0.1 linear heads on ImageNet AlexNet)", "pyiqa",
               _pyiqa("lpips"),
               (_PYIQA_FILE("LPIPS_v0.1_alex-df73285e.pth"), _TORCHVISION_FILE("alexnet-owt-7be5be79.pth")), _PYIQA),
    MetricSpec("dists", "full_ref", True, "dists: pyiqa dists (alpha/beta on ImageNet VGG16)", "pyiqa",
               _pyiqa("dists"),
               (_PYIQA_FILE("DISTS_weights-f5e65c96.pth"), _TORCHVISION_FILE("vgg16-397923af.pth")), _PYIQA),
    MetricSpec("musiq", "no_ref", False, "musiq: pyiqa musiq (KonIQ-10k ckpt)", "pyiqa", _pyiqa("musiq"),
               (_PYIQA_FILE("musiq_koniq_ckpt-e95806b9.pth"),), _PYIQA),
    MetricSpec("maniqa", "no_ref", False, "maniqa: pyiqa maniqa (KonIQ-10k ckpt, timm ViT-B/8 augreg2 backbone)",
               "pyiqa", _pyiqa("maniqa"),
               (_PYIQA_FILE("ckpt_koniq10k.pt"),
                WeightFile("hf", "model.safetensors", repo="timm/vit_base_patch8_224.augreg2_in21k_ft_in1k")),
               ("pyiqa", "timm")),
    MetricSpec("clipiqa", "no_ref", False, "clipiqa: pyiqa clipiqa (OpenAI CLIP RN50, fixed antonym prompts)",
               "pyiqa", _pyiqa("clipiqa"),
               (WeightFile("clip", "RN50.pt",
                           sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"),),
               ("pyiqa", "clip", "pkg_resources")),
    MetricSpec("pi", "no_ref", True,
               "pi: pyiqa pi = (10 - NRQM + NIQE) / 2 on Y of YCbCr, crop 4, with pyiqa's own NRQM and NIQE files",
               "pyiqa", _pyiqa("pi"),
               (_PYIQA_FILE("NRQM_model.mat"), _PYIQA_FILE("niqe_modelparameters.mat")), _PYIQA),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

_INSTALL_HINT = {
    "pkg_resources": "clip (openai-clip) imports pkg_resources, removed in setuptools 81; pin setuptools<81",
}


def _spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid metrics are: {', '.join(METRICS)}")
    return METRICS[name]


def lower_better(name: str) -> bool:
    """Direction of `name`, for tables and sweeps (never hand-written elsewhere)."""
    return _spec(name).lower_better


def cost_sign(name: str) -> float:
    """+1 for a metric to minimise, -1 for one to maximise: value x sign is a cost (Pareto fronts, hypervolume)."""
    return 1.0 if lower_better(name) else -1.0


def available(name: str) -> tuple[bool, str]:
    """Whether `name` can run here without any download, and why not (missing module or weight files with paths)."""
    spec = _spec(name)
    absent = [module for module in spec.modules if importlib.util.find_spec(module) is None]
    if absent:
        hints = "; ".join(_INSTALL_HINT.get(m, f"{m} is not installed") for m in absent)
        return False, f"{name}: {hints}; install the pinned requirements with `make install`"
    missing = [file for file in spec.weights if not file.present()]
    if any(file.store == "vendored" for file in missing):
        return False, f"{name}: vendored file missing: {missing[0]}; restore it: git checkout -- spasemsr/metrics/data"
    if missing:
        return False, (
            f"{name}: weights not in the cache: {'; '.join(map(str, missing))}; pyiqa downloads them on a machine "
            f"with internet (`pyiqa.create_metric({name!r})`): copy those files to the same paths here"
        )
    return True, f"{name}: ready ({spec.variant})"


def too_small(name: str, height: int, width: int, scale: int) -> str | None:
    """Why ``name`` cannot score an SR of ``height`` x ``width`` at ``scale`` (None if it can or is not probed)."""
    spec = _spec(name)
    if spec.min_side is None or min(height, width) >= spec.min_side(scale):
        return None
    return (f"{name}: needs SR images of at least {spec.min_side(scale)} pixels a side at x{scale}, the smallest "
            f"here is {height}x{width}")


def usable(name: str, size: tuple[int, int] | None, scale: int) -> tuple[bool, str]:
    """Whether ``name`` can score SR images whose smallest is ``size`` (H, W): available here and large enough."""
    ready, reason = available(name)
    if ready and size is not None:
        small = too_small(name, *size, scale)
        ready, reason = small is None, small or reason
    return ready, reason


def compute(name: str, sr: Tensor, hr: Tensor | None = None, lr: Tensor | None = None, scale: int = 4) -> Tensor:
    """Score (B,) of metric `name` on SR images in [0, 1]; raises `MetricUnavailable` rather than guess or download."""
    spec = _spec(name)
    ready, reason = available(name)
    if not ready:
        raise MetricUnavailable(reason)
    reference = {"full_ref": hr, "lr_ref": lr, "no_ref": None}[spec.kind]
    if spec.kind != "no_ref" and reference is None:
        needed = "hr= the ground truth" if spec.kind == "full_ref" else "lr= the LR input the SR was made from"
        raise ValueError(f"metric {name!r} is {spec.kind}: pass {needed}")
    return spec.score(sr, reference, scale)
