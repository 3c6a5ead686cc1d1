"""The declared protocol: the default metric list and the record of how each number of a result was computed."""

from __future__ import annotations

from collections.abc import Sequence

from spasemsr.evaluation.datasets import EvalSet
from spasemsr.metrics.registry import METRICS

DEFAULT_METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "lr_consistency", "niqe", "piqe", "dark_dots", "new_dark_dots",
                   "lpips", "dists", "musiq", "maniqa", "clipiqa", "pi")


def protocol(metrics: Sequence[str], dataset: EvalSet) -> dict:
    """The declared protocol of one result: every metric's variant and direction, scale, crop, notes."""
    return {
        "scale": dataset.scale,
        "border_crop": dataset.scale,
        "border_crop_applies_to": "psnr_y, ssim_y, psnr_rgb, ms_ssim (see each variant)",
        "scored_image": "the saved 8-bit SR PNG",
        "metrics": {name: {"variant": METRICS[name].variant, "kind": METRICS[name].kind,
                           "lower_better": METRICS[name].lower_better,
                           "direction": "lower is better" if METRICS[name].lower_better else "higher is better"}
                    for name in metrics},
        "notes": list(dataset.notes),
    }
