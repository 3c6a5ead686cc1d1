"""The perception-distortion plane: the sweep's every trial and Pareto front, the baselines, the ablation.

Points share an axes only when they share a protocol. Photo study: (a) is the sweep's own evaluation
(256-pixel kodak5 cuts, raw sampler): every trial, the front as a staircase, the presets, and the kodak5
suite's methods re-scored on those cuts (``make figure-data``). (b) is the full-image kodak5 table with the
ablation variants, which are scored on full images; (c) zooms into the ablation cluster. Probe study (no
full-image table: its ablation is scored under its sweep's protocol, the whole probe set with the same
metrics and steps under the model's own sampler): (a) the sweep with the ablation variants' means over
seeds, ± one std in both metrics; (b) zooms into the variants. The sweep samples one model (the full
variant's seed 0) at seed 0, the variants are means over their trained seeds.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from spasemsr.figures.inputs import Input, number, read_csv, read_json
from spasemsr.figures.studies import PHOTO, Study
from spasemsr.figures.style import (
    ABLATION_COLOR,
    FRONT_COLOR,
    FULL_WIDTH,
    SWEEP_COLOR,
    axis_label,
    figure_style,
    method_mark,
    metric_name,
    new_figure,
)
from spasemsr.metrics.registry import cost_sign, lower_better

KEY_WRAP = 40  # characters per line of an ablation label in the key: four columns must fit the page width


def inputs(study: Study = PHOTO) -> tuple[Input, ...]:
    """The files the plane of ``study`` reads (the photo-only panels' only where the study has them)."""
    return tuple(item for item in (study.front, study.trials, study.reference, study.eval_table, study.ablation)
                 if item is not None)


@dataclass(frozen=True)
class Sweep:
    """One exported study: checkpoint, objectives, every complete trial's metrics, the front and the presets."""

    ckpt: str
    objectives: tuple[str, str]
    trials: list[dict]
    front: list[dict]
    presets: dict[str, dict]


def load_sweep(results: Path, study: Study = PHOTO) -> Sweep:
    """The exported front with every trial; refused when the trials file is not of the same study state."""
    record = read_json(results, study.front)
    trials = [{"trial": int(row["trial"]), "metrics": {k: float(v) for k, v in row.items()
                                                       if k in record["objectives"] and v}}
              for row in read_csv(results, study.trials) if row["state"] == "COMPLETE"]
    if len(trials) != record["complete_trials"] or not {r["trial"] for r in record["front"]} <= {
            t["trial"] for t in trials}:
        raise ValueError(f"{study.trials.path(results)} ({len(trials)} complete trials) is not the study "
                         f"{study.front.path(results)} was exported from ({record['complete_trials']}); run "
                         f"`{study.trials.producer}` again")
    return Sweep(record["ckpt"], tuple(record["objectives"]), trials, record["front"], record["presets"])


def table_rows(results: Path, item: Input) -> list[dict]:
    """A results table (CSV of spasemsr.evaluation.table) as rows in table order: name, means, ``spread`` (the
    ``<metric>_std`` columns of a table over seeds, else empty), the seeds and the (first seed's) checkpoint."""
    skip = {"method", "dataset", "lr", "dataset_hash", "ckpt", "config", "seed", "knobs"}
    rows = []
    for row in read_csv(results, item):
        cells = {k: number(v) for k, v in row.items() if k not in skip and v}
        rows.append({"name": row["method"], "means": {k: v for k, v in cells.items() if not k.endswith("_std")},
                     "spread": {k.removesuffix("_std"): v for k, v in cells.items() if k.endswith("_std")},
                     "seeds": row["seed"].split(","), "ckpt": row["ckpt"]})
    return rows


def staircase(points: Sequence[tuple[float, float]], objectives: Sequence[str]) -> list[tuple[float, float]]:
    """Vertices of the boundary a Pareto front dominates, in the metrics' own directions (a step through the points)."""
    signs = [cost_sign(name) for name in objectives]
    costs = sorted((signs[0] * x, signs[1] * y) for x, y in points)
    vertices = [costs[0]]
    for point in costs[1:]:
        vertices += [(point[0], vertices[-1][1]), point]
    return [(signs[0] * x, signs[1] * y) for x, y in vertices]


def _xy(metrics: dict, objectives: Sequence[str]) -> tuple[float, float] | None:
    values = [metrics.get(name) for name in objectives]
    return None if any(v is None or not math.isfinite(v) for v in values) else (values[0], values[1])


def plot_sweep(ax: Axes, sweep: Sweep, label_presets: bool = True) -> None:
    """Every trial, the front as a highlighted staircase, and the presets circled (and named when asked)."""
    points = [p for p in (_xy(t["metrics"], sweep.objectives) for t in sweep.trials) if p]
    ax.scatter(*zip(*points, strict=True), s=12, color=SWEEP_COLOR, alpha=0.7, linewidths=0, zorder=2,
               label=f"sweep trials ({len(points)})", gid="trials")
    front = [p for p in (_xy(row["metrics"], sweep.objectives) for row in sweep.front) if p]
    ax.plot(*zip(*staircase(front, sweep.objectives), strict=True), color=FRONT_COLOR, lw=1.4, zorder=3,
            label=f"Pareto front ({len(front)})", gid="front")
    ax.scatter(*zip(*front, strict=True), s=16, color=FRONT_COLOR, zorder=4, gid="front points")
    centre = [sum(axis) / len(points) for axis in zip(*points, strict=True)]
    for index, (name, preset) in enumerate(sweep.presets.items()):
        x, y = _xy(preset["metrics"], sweep.objectives)
        ax.scatter([x], [y], s=46, facecolors="none", edgecolors="black", linewidths=0.8, zorder=5, gid="preset")
        if label_presets:  # towards the trials' centre (inside the axes), stacked when presets share a point
            right, up = x < centre[0], y < centre[1]
            offset = (24 if right else -24, (14 + 10 * index) * (1 if up else -1))
            ax.annotate(name, (x, y), xytext=offset, textcoords="offset points",
                        fontsize=6.5, ha="left" if right else "right", va="bottom" if up else "top", zorder=6,
                        gid="preset label", arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.3", "shrinkB": 3})


def plot_methods(ax: Axes, rows: Sequence[dict], objectives: Sequence[str], size: float = 30) -> None:
    """Each row at its (fidelity, perception) with its method's colour and marker (hollow for raw samples)."""
    for row in rows:
        point = _xy(row["means"], objectives)
        if point is None:
            continue
        mark = method_mark(row["name"])
        ax.scatter([point[0]], [point[1]], s=size, marker=mark.marker, linewidths=1.0, zorder=5, label=row["name"],
                   facecolors=mark.color if mark.filled else "white", edgecolors=mark.color)


def plot_ablation(ax: Axes, rows: Sequence[dict], objectives: Sequence[str], numbered: bool,
                  spread: bool = False) -> list[tuple]:
    """The variants as small dots, numbered in table order when ``numbered``, with ± one std over seeds in both
    metrics when ``spread`` (the sampling noise beside each point); returns their (x, y) points."""
    points = [_xy(row["means"], objectives) for row in rows]
    drawn = [p for p in points if p]
    ax.scatter(*zip(*drawn, strict=True), s=14 if numbered else 8, color=ABLATION_COLOR, zorder=4, linewidths=0,
               label=f"ablation variants ({len(drawn)})")
    if spread:
        bars = [(p, [row["spread"].get(m, 0.0) for m in objectives]) for p, row in zip(points, rows, strict=True) if p]
        drawn_bars = ax.errorbar([p[0] for p, _ in bars], [p[1] for p, _ in bars], xerr=[e[0] for _, e in bars],
                                 yerr=[e[1] for _, e in bars], fmt="none", ecolor=ABLATION_COLOR, elinewidth=0.6,
                                 capsize=1.5, zorder=3)
        for part in drawn_bars.lines[2]:
            part.set_gid("ablation std")
    if numbered:
        for index, point in enumerate(points, 1):
            if point:
                ax.annotate(str(index), point, xytext=(3, 2), textcoords="offset points", fontsize=6.5,
                            color="black")
    return drawn


def _reach(rows: Sequence[dict], objectives: Sequence[str]) -> list[tuple[float, float]]:
    """The corners of each variant's ± std box (its point where it has no spread): what a zoom must hold."""
    corners = []
    for row in rows:
        point = _xy(row["means"], objectives)
        if point:
            dx, dy = (row["spread"].get(m, 0.0) for m in objectives)
            corners += [(point[0] - dx, point[1] - dy), (point[0] + dx, point[1] + dy)]
    return corners


def _bounds(points: Sequence[tuple[float, float]], pad: float = 0.12) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx, dy = (max(xs) - min(xs)) * pad or 0.1, (max(ys) - min(ys)) * pad or 0.1
    return min(xs) - dx, max(xs) + dx, min(ys) - dy, max(ys) + dy


def split_range(values: Sequence[float]) -> list[tuple[float, float]]:
    """One (low, high) span, or two where a gap wider than half the whole span splits 3+ values (a broken axis)."""
    ys = sorted(values)
    gap, at = max(((b - a, i) for i, (a, b) in enumerate(zip(ys, ys[1:], strict=False))), default=(0.0, 0))
    total = ys[-1] - ys[0]
    spans = [(ys[0], ys[at]), (ys[at + 1], ys[-1])] if len(ys) > 2 and gap > 0.5 * total else [(ys[0], ys[-1])]
    return [(low - max(0.1 * (high - low), 0.02 * total), high + max(0.1 * (high - low), 0.02 * total))
            for low, high in spans]


def _broken(fig: Figure, cell, spans: list[tuple[float, float]]) -> list[Axes]:
    """Axes stacked top (highest span) to bottom sharing x, with break marks where the vertical axis is cut."""
    if len(spans) == 1:
        return [fig.add_subplot(cell)]
    inner = cell.subgridspec(2, 1, height_ratios=[1, 4], hspace=0.06)
    bottom = fig.add_subplot(inner[1])
    top = fig.add_subplot(inner[0], sharex=bottom)
    top.set_ylim(*spans[1])
    bottom.set_ylim(*spans[0])
    top.spines["bottom"].set_visible(False)
    top.tick_params(axis="x", bottom=False, labelbottom=False)
    cut = {"marker": [(-1, -0.5), (1, 0.5)], "markersize": 6, "ls": "none", "color": "black", "mew": 0.6,
           "clip_on": False}
    top.plot([0], [0], transform=top.transAxes, **cut)
    bottom.plot([0], [1], transform=bottom.transAxes, **cut)
    return [top, bottom]


def figure(results: Path, study: Study = PHOTO) -> Figure:
    """The study's PD plane (three panels for the photo study, two where the ablation shares the sweep's protocol);
    the Figure is returned so tests and notebooks can inspect its artists."""
    sweep, ablation = load_sweep(results, study), table_rows(results, study.ablation)
    with figure_style():
        fig = new_figure(FULL_WIDTH, 4.1)
        if study.eval_table is None:
            _shared_protocol(fig, results, study, sweep, ablation)
        else:
            _photo(fig, results, study, sweep, ablation)
    return fig


def _sweep_panel(fig: Figure, cell, sweep: Sweep, extra_y: Sequence[float]) -> list[Axes]:
    """The sweep's axes (broken where its points and ``extra_y`` leave a wide gap), trials, front and presets drawn."""
    axes = _broken(fig, cell, split_range([t["metrics"][sweep.objectives[1]] for t in sweep.trials] + list(extra_y)))
    for ax in axes:
        plot_sweep(ax, sweep, label_presets=ax is axes[-1])
    return axes


def _zoom(ax: Axes, bounds: tuple[float, float, float, float], title: str) -> None:
    """Limit ``ax`` to ``bounds`` (x0, x1, y0, y1) and name what it zooms into."""
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_title(title)


def _outline(ax: Axes, bounds: tuple[float, float, float, float], name: str) -> None:
    """The zoomed region as a dashed box on ``ax``, captioned with the zoom panel's name."""
    x0, x1, y0, y1 = bounds
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=0.7, color="0.3"))
    ax.annotate(name, (x0, y1), xytext=(0, 2), textcoords="offset points", fontsize=6.5, color="0.3")


def _photo(fig: Figure, results: Path, study: Study, sweep: Sweep, ablation: list[dict]) -> None:
    """(a) sweep with the suite re-scored on its cuts, (b) the full-image table with the ablation, (c) a zoom."""
    reference = read_json(results, study.reference)
    if reference["sweep"]["ckpt"] != sweep.ckpt:
        raise ValueError(f"{study.reference.path(results)} was scored for a sweep of checkpoint "
                         f"{reference['sweep']['ckpt'][:16]}, not {sweep.ckpt[:16]}; run "
                         f"`{study.reference.producer}` again")
    table = table_rows(results, study.eval_table)
    raw = [r for r in table if "raw" in r["name"]]
    grid = fig.add_gridspec(2, 3, height_ratios=[3.0, 0.9])
    sweep_axes = _sweep_panel(fig, grid[0, 0], sweep, [p[1] for p in (
        _xy(r["means"], sweep.objectives) for r in reference["rows"]) if p])
    for ax in sweep_axes:
        plot_methods(ax, reference["rows"], sweep.objectives)
    cut = reference["sweep"]["eval"]["crop"]
    sweep_axes[0].set_title(f"(a) PD sweep, {len(sweep.trials)} trials:\nkodak5 {cut}-px cuts, raw sampler")
    ax_table, ax_zoom = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2])
    plot_methods(ax_table, table, sweep.objectives)
    cluster = plot_ablation(ax_table, ablation, sweep.objectives, numbered=False)
    bounds = _bounds(cluster + [p for p in (_xy(r["means"], sweep.objectives) for r in raw) if p])
    _outline(ax_table, bounds, "(c)")
    ax_table.set_title("(b) kodak5 full images:\nsuite methods and ablation")
    plot_methods(ax_zoom, raw, sweep.objectives)
    plot_ablation(ax_zoom, ablation, sweep.objectives, numbered=True)
    _zoom(ax_zoom, bounds, "(c) zoom on the ablation variants\n(raw sampler, numbered as in the key)")
    _finish(fig.add_subplot(grid[1, :]), sweep_axes, [ax_table, ax_zoom], sweep.objectives, ablation)


def _shared_protocol(fig: Figure, results: Path, study: Study, sweep: Sweep, ablation: list[dict]) -> None:
    """(a) the sweep with the ablation's means ± std over seeds on its axes, (b) a zoom on the variants.

    Refused unless the swept model is one the ablation scored (its full variant's first seed), so the
    two share a model as well as the protocol.
    """
    if sweep.ckpt not in {row["ckpt"] for row in ablation}:
        raise ValueError(f"{study.front.path(results)} was swept on checkpoint {sweep.ckpt[:16]}, which "
                         f"no row of {study.ablation.name} was scored with; sweep the ablation's full model "
                         f"({study.sweep}) again and export it: {study.front.producer}")
    grid = fig.add_gridspec(2, 2, height_ratios=[3.0, 0.9])
    reach = _reach(ablation, sweep.objectives)
    sweep_axes = _sweep_panel(fig, grid[0, 0], sweep, [p[1] for p in reach])
    bounds = _bounds(reach)
    for ax in sweep_axes:
        plot_ablation(ax, ablation, sweep.objectives, numbered=False, spread=True)
        _outline(ax, bounds, "(b)")
    seeds = max(len(row["seeds"]) for row in ablation)
    sweep_axes[0].set_title(f"(a) {study.name} sweep, {len(sweep.trials)} trials, and the ablation\n"
                            f"(mean ± std over {seeds} seeds), all on the {study.knob.data} set")
    ax_zoom = fig.add_subplot(grid[0, 1])
    plot_ablation(ax_zoom, ablation, sweep.objectives, numbered=True, spread=True)
    _zoom(ax_zoom, bounds, "(b) zoom on the ablation variants\n(± std over seeds, numbered as in the key)")
    _finish(fig.add_subplot(grid[1, :]), sweep_axes, [ax_zoom], sweep.objectives, ablation)


def _finish(legend: Axes, sweep_axes: list[Axes], others: list[Axes], objectives: Sequence[str],
            ablation: Sequence[dict]) -> None:
    """Grids, axis labels (directions from the registry) and the legend strip, the same for every study."""
    for ax in (*sweep_axes, *others):
        ax.grid(True, lw=0.3, color="0.85")
    for ax in (sweep_axes[-1], *others):
        ax.set_xlabel(axis_label(objectives[0]))
    sweep_axes[-1].set_ylabel(axis_label(objectives[1]), y=0.6)
    for ax in others:
        ax.set_ylabel(f"{metric_name(objectives[1])} {'↓' if lower_better(objectives[1]) else '↑'}")
    _legends(legend, [*sweep_axes, *others[:1]], [row["name"] for row in ablation])


def _legends(ax: Axes, sources: Sequence[Axes], variants: Sequence[str]) -> None:
    """Methods and sweep marks above, the ablation's numbered key below, in one strip under the panels."""
    ax.axis("off")
    seen: dict[str, object] = {}
    for source in sources:
        for handle, label in zip(*source.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    marks = ax.legend(seen.values(), seen.keys(), loc="upper center", ncol=5, handletextpad=0.3, columnspacing=1.0,
                      borderaxespad=0)
    ax.add_artist(marks)
    key = [Line2D([], [], ls="none", marker=f"${i}$", color=ABLATION_COLOR, markersize=5)
           for i in range(1, len(variants) + 1)]
    labels = [textwrap.fill(name, KEY_WRAP) for name in variants]
    ax.legend(key, labels, loc="lower center", ncol=4, handletextpad=0.2, columnspacing=1.0, fontsize=6,
              borderaxespad=0)
