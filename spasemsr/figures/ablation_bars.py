"""The ablation as bars: each variant's change against the full model per metric, with every unit's own change.

Changes rather than absolute means, so bars start at zero honestly. The dots show how much of a mean
difference the units carry: each image of a one-seed ablation, each sampler seed of one sampled under several
(the photo study), each seed of one run under several seeds (the probe), paired with the full model's same image
or seed. Bars are blue where the change is better (the registry's direction), orange where worse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.figure import Figure

from spasemsr.figures.inputs import Input, MissingInputs, require
from spasemsr.figures.pd_plane import table_rows
from spasemsr.figures.studies import PHOTO, Study
from spasemsr.figures.style import BETTER_COLOR, FULL_WIDTH, WORSE_COLOR, axis_label, figure_style, new_figure
from spasemsr.metrics.registry import METRICS, lower_better

REFERENCE = "full"  # the variant every other one is measured against


def inputs(study: Study = PHOTO) -> tuple[Input, ...]:
    """The ablation table; its records are checked as they are read (their names come from the table)."""
    return (study.ablation,)


def _records(folder: Path) -> list[dict]:
    """Every variant record in ``folder`` (not summary.json, nor a sweep export sharing the folder)."""
    return [r for r in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))) if "ablation" in r]


def _row(table_row: dict, records: list[dict], folder: Path, producer: str) -> dict:
    """A table row's record with its paired units: the images of one seed's record, one mean per seed, or one mean
    per sampler seed of one trained model (``sample_seeds``).

    Several seeds: the means and std are the table's, the units each seed's own record.
    """
    name, seeds = table_row["name"], table_row["seeds"]
    mine = [r for r in records if r["name"] == name]
    if len(mine) == 1 and "per_sample_seed" in mine[0]:  # one model, sampled under several seeds
        return {**mine[0], "unit": "sampler seed", "units": mine[0]["per_sample_seed"]}
    if len(seeds) == 1:
        if not mine:
            raise MissingInputs([(folder / "<variant>.json", f"{producer}; no record named {name!r}")])
        return {**mine[0], "unit": "image", "units": mine[0]["per_image"]}
    by_seed = {str(r["ablation"]["seed"]): r for r in records if r["name"] == name}
    absent = [s for s in seeds if s not in by_seed]
    if absent:
        raise MissingInputs([(folder / f"<variant>_seed{s}.json", f"{producer}; no record named "
                              f"{name!r} for seed {s}") for s in absent])
    return {**by_seed[seeds[0]], "means": table_row["means"], "spread": table_row["spread"],
            "unit": "seed", "units": {s: by_seed[s]["means"] for s in seeds}}


def load_ablation(results: Path, study: Study = PHOTO) -> list[dict]:
    """Each table row's record (``<records>/<variant>.json``, or one per seed), in table order, with its units."""
    require(results, inputs(study))
    folder = study.records.path(results)
    records = _records(folder)
    return [_row(row, records, folder, study.records.producer) for row in table_rows(results, study.ablation)]


def deltas(rows: list[dict], metric: str) -> tuple[list[str], list[float], list[list[float]]]:
    """Per variant (the reference left out): name, mean change, and each unit's change, against ``REFERENCE``."""
    base = next((r for r in rows if r["ablation"]["variant"] == REFERENCE), None)
    if base is None:
        raise ValueError(f"the ablation has no {REFERENCE!r} variant to measure the others against")
    names, means, units = [], [], []
    for row in rows:
        if row is base or metric not in row["means"]:
            continue
        names.append(row["name"])
        means.append(row["means"][metric] - base["means"][metric])
        units.append([scores[metric] - base["units"][unit][metric]
                      for unit, scores in row["units"].items() if metric in scores])
    return names, means, units


def _title(base: dict, metric: str) -> str:
    """The metric, its direction, and the reference's own value (± its std over seeds where it has one)."""
    spread = base.get("spread", {}).get(metric)
    value = f"{base['means'][metric]:.4g}" + ("" if spread is None else f" ± {spread:.2g}")
    label = axis_label(metric).replace(", ", ",\n", 1)  # short lines, so three panels abreast fit the page
    return f"{label}\n{base['name']}:\n{value}"


def figure(results: Path, study: Study = PHOTO) -> Figure:
    """One panel per metric the table scored (registry order), variants on the shared vertical axis."""
    rows = load_ablation(results, study)
    metrics = [m for m in METRICS if any(m in r["means"] for r in rows)]
    base = next(r for r in rows if r["ablation"]["variant"] == REFERENCE)
    unit, size = base["unit"], 4 if base["unit"] == "image" else 10
    columns = min(3, len(metrics))
    with figure_style():
        fig = new_figure(FULL_WIDTH, 1.0 + 2.0 * math.ceil(len(metrics) / columns))
        axes = fig.subplots(math.ceil(len(metrics) / columns), columns, sharey=True, squeeze=False).ravel()
        for ax, metric in zip(axes, metrics, strict=False):
            names, means, units = deltas(rows, metric)
            ys = range(len(names))
            better = [(d < 0) == lower_better(metric) and d != 0 for d in means]
            ax.barh(ys, means, height=0.65, color=[BETTER_COLOR if b else WORSE_COLOR for b in better], zorder=2)
            for y, changes in zip(ys, units, strict=True):
                ax.scatter(changes, [y] * len(changes), s=size, color="black", alpha=0.6, linewidths=0, zorder=3,
                           gid="units")
            ax.axvline(0, color="black", lw=0.6, zorder=1)
            ax.set_yticks(list(ys), names)
            ax.set_xlabel(f"Δ vs {base['name']}")
            ax.set_title(_title(base, metric), fontsize=7)
            ax.grid(True, axis="x", lw=0.3, color="0.85")
        axes[0].invert_yaxis()  # shared: table order top to bottom in every panel
        for ax in axes[len(metrics):]:
            ax.axis("off")
        fig.suptitle(f"Ablation: change against {base['name']} (bars: mean over {len(base['units'])} {unit}s; "
                     f"dots: each {unit}; blue better, orange worse)", fontsize=8)
    return fig
