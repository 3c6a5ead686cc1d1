"""The ablation as bars: each variant's change against the full model per metric, with every image's own change.

Changes rather than absolute means, so bars start at zero honestly; the per-image dots show how much of
a mean difference five images can carry. Bars are blue where the change is better (the registry's
direction), orange where worse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.figure import Figure

from spasemsr.figures.inputs import ABLATE, Input, MissingInputs, require
from spasemsr.figures.pd_plane import ABLATION_TABLE, table_rows
from spasemsr.figures.style import BETTER_COLOR, FULL_WIDTH, WORSE_COLOR, axis_label, figure_style, new_figure
from spasemsr.metrics.registry import METRICS, lower_better

INPUTS = (ABLATION_TABLE,)
RECORDS = Input("ablation", ABLATE)  # folder of one <variant>.json per table row (means, per_image, record)
REFERENCE = "full"  # the variant every other one is measured against


def load_ablation(results: Path) -> list[dict]:
    """Each table row's record (``ablation/<variant>.json``), in table order."""
    require(results, INPUTS)
    names = [row["name"] for row in table_rows(results, ABLATION_TABLE)]
    folder = RECORDS.path(results)
    records = {r["name"]: r for r in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))}
    absent = [name for name in names if name not in records]
    if absent:
        raise MissingInputs([(folder / "<variant>.json", f"{ABLATE}; no record named {name!r}") for name in absent])
    return [records[name] for name in names]


def deltas(rows: list[dict], metric: str) -> tuple[list[str], list[float], list[list[float]]]:
    """Per variant (the reference left out): name, mean change, and each image's change, against ``REFERENCE``."""
    base = next((r for r in rows if r["ablation"]["variant"] == REFERENCE), None)
    if base is None:
        raise ValueError(f"the ablation has no {REFERENCE!r} variant to measure the others against")
    names, means, images = [], [], []
    for row in rows:
        if row is base or metric not in row["means"]:
            continue
        names.append(row["name"])
        means.append(row["means"][metric] - base["means"][metric])
        images.append([scores[metric] - base["per_image"][image][metric]
                       for image, scores in row["per_image"].items() if metric in scores])
    return names, means, images


def figure(results: Path) -> Figure:
    """One panel per metric the table scored (registry order), variants on the shared vertical axis."""
    rows = load_ablation(results)
    metrics = [m for m in METRICS if any(m in r["means"] for r in rows)]
    base = next(r for r in rows if r["ablation"]["variant"] == REFERENCE)
    columns = min(3, len(metrics))
    with figure_style():
        fig = new_figure(FULL_WIDTH, 1.0 + 2.0 * math.ceil(len(metrics) / columns))
        axes = fig.subplots(math.ceil(len(metrics) / columns), columns, sharey=True, squeeze=False).ravel()
        for ax, metric in zip(axes, metrics, strict=False):
            names, means, images = deltas(rows, metric)
            ys = range(len(names))
            better = [(d < 0) == lower_better(metric) and d != 0 for d in means]
            ax.barh(ys, means, height=0.65, color=[BETTER_COLOR if b else WORSE_COLOR for b in better], zorder=2)
            for y, changes in zip(ys, images, strict=True):
                ax.scatter(changes, [y] * len(changes), s=4, color="black", alpha=0.6, linewidths=0, zorder=3)
            ax.axvline(0, color="black", lw=0.6, zorder=1)
            ax.set_yticks(list(ys), names)
            ax.set_xlabel(f"Δ vs {base['name']}")
            ax.set_title(f"{axis_label(metric)}\n{base['name']}: {base['means'][metric]:.4g}", fontsize=7)
            ax.grid(True, axis="x", lw=0.3, color="0.85")
        axes[0].invert_yaxis()  # shared: table order top to bottom in every panel
        for ax in axes[len(metrics):]:
            ax.axis("off")
        fig.suptitle(f"Ablation: change against {base['name']} (bars: mean over {len(base['per_image'])} images; "
                     "dots: each image; blue better, orange worse)", fontsize=8)
    return fig
