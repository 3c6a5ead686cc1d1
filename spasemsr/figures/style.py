"""One look for every figure: rcParams, the Okabe–Ito palette, per-method marks, axis labels, and the writer.

Okabe & Ito's eight colours stay distinguishable under the common colour-vision deficiencies; every
method also gets its own marker, so nothing depends on colour alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from spasemsr.metrics.registry import lower_better
from spasemsr.utils.atomic import atomic_path

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999",
}

RC = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.2, "lines.markersize": 5,
    "axes.prop_cycle": matplotlib.cycler(color=[OKABE_ITO[c] for c in (
        "blue", "orange", "green", "vermillion", "purple", "sky", "yellow", "black")]),
    "figure.dpi": 100, "savefig.dpi": 200, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF (selectable, editable)
}

FULL_WIDTH = 7.0  # inches: a two-column paper's text width
COLUMN_WIDTH = 3.4


@dataclass(frozen=True)
class Mark:
    """How one method is drawn wherever it appears."""

    color: str
    marker: str
    filled: bool = True


METHOD_MARKS = {
    "bicubic": Mark(OKABE_ITO["black"], "s"),
    "DRM": Mark(OKABE_ITO["green"], "D"),
    "Real-ESRGAN x4plus": Mark(OKABE_ITO["vermillion"], "P"),
    "RealSR (DF2K)": Mark(OKABE_ITO["sky"], "X"),
    "ControlNet-SR": Mark(OKABE_ITO["orange"], "^"),
    "ControlNet-SR (raw)": Mark(OKABE_ITO["orange"], "^", filled=False),
    "SpaSemSR": Mark(OKABE_ITO["blue"], "o"),
    "SpaSemSR (raw)": Mark(OKABE_ITO["blue"], "o", filled=False),
}
"""Keyed by the kodak5 suite's labels (spasemsr.evaluation.suite.METHODS); (raw): no colour fix, no back-projection."""

SWEEP_COLOR = OKABE_ITO["grey"]
FRONT_COLOR = OKABE_ITO["blue"]
ABLATION_COLOR = OKABE_ITO["purple"]
BETTER_COLOR, WORSE_COLOR = OKABE_ITO["blue"], OKABE_ITO["orange"]

METRIC_NAMES = {"psnr_y": "PSNR-Y (dB)", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB (dB)",
                "lr_consistency": "LR consistency (dB)", "niqe": "NIQE", "piqe": "PIQE", "lpips": "LPIPS",
                "dists": "DISTS", "musiq": "MUSIQ", "maniqa": "MANIQA", "clipiqa": "CLIP-IQA", "pi": "PI",
                "texture_acc": "texture accuracy"}


def metric_name(metric: str) -> str:
    """A metric's display name with its unit, e.g. ``PSNR-Y (dB)``."""
    return METRIC_NAMES.get(metric, metric)


def axis_label(metric: str) -> str:
    """Display name plus the direction read from the metric registry, e.g. ``NIQE, lower is better ↓``."""
    return f"{metric_name(metric)}, {'lower is better ↓' if lower_better(metric) else 'higher is better ↑'}"


def method_mark(label: str) -> Mark:
    """The mark of a suite method; anything else is drawn grey."""
    return METHOD_MARKS.get(label, Mark(OKABE_ITO["grey"], "o"))


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The rcParams every figure is built under (a context, so importing this module changes nothing global)."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot: no backend, no global figure list, so renders run headless and never leak."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    """``<out>/<stem>.pdf`` and ``.png``, each written atomically; the PDF carries no creation date (reproducible)."""
    paths = []
    for fmt, metadata in (("pdf", {"CreationDate": None, "ModDate": None}), ("png", {"Software": None})):
        path = out / f"{stem}.{fmt}"
        with figure_style(), atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=metadata)
        paths.append(path)
    return paths
