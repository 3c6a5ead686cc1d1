"""Writing a result where researchers look: per-image CSV and a TensorBoard HPARAMS row."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from spasemsr.utils.atomic import atomic_path


def write_hparams(folder: Path, method: str, knobs: dict | None, means: dict[str, float]) -> None:
    """One TensorBoard HPARAMS row (knobs → mean metrics), so every evaluated PD point shows up there."""
    from torch.utils.tensorboard import SummaryWriter

    hparams = {"method": method, **{k: v for k, v in (knobs or {}).items() if isinstance(v, (int, float, str))}}
    finite = {f"eval/{k}": v for k, v in means.items() if math.isfinite(v)}
    with SummaryWriter(str(folder)) as writer:
        writer.add_hparams(hparams, finite, run_name=".")


def write_csv(path: Path, columns: list[str], per_image: dict[str, dict[str, float]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", *columns])
        for image, scores in per_image.items():
            writer.writerow([image, *(repr(scores[name]) for name in columns)])
