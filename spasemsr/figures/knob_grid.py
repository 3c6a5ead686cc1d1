"""The knob grid: one crop sampled over ``w_spa`` x ``w_sem`` (as PiSA-SR shows its two guidance scales).

Left, the crops, each captioned with its full sample's scores (the study's: PSNR-Y and NIQE, plus
texture accuracy for the probe, whose crop is the whole 96-pixel image); middle, where each sample
departs from the neutral one (w_spa = w_sem = 1), amplified, with the mean change over the whole
image; right, the HR crop for reference. The neutral cell is framed. With several sampler seeds (the photo
study's three) the scores are their mean, each change is measured against the same seed's neutral sample, and
the notes give what another seed alone changes, the level below which a knob's change is noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from spasemsr.config.knobs import NEUTRAL_KNOBS
from spasemsr.figures.comparison import load_crop
from spasemsr.figures.inputs import Input, read_json
from spasemsr.figures.studies import PHOTO, Study
from spasemsr.figures.style import FULL_WIDTH, OKABE_ITO, figure_style, new_figure

CHANGE_RANGE = 24.0  # 8-bit levels at the top of the change colour scale
NEUTRAL = (NEUTRAL_KNOBS["w_spa"], NEUTRAL_KNOBS["w_sem"])
SHORT = {"psnr_y": "PSNR-Y dB", "niqe": "NIQE", "texture_acc": "texture acc."}  # crop captions' key


def inputs(study: Study = PHOTO) -> tuple[Input, ...]:
    """The knob grid's JSON; the crops it names are checked as they are read."""
    return (study.knob_grid,)


def _frame(ax: Axes, color: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def _grid(sub: SubFigure, record: dict, draw, title: str) -> list[Axes]:
    """A w_spa (rows) x w_sem (columns) grid of axes; ``draw(ax, cell)`` fills each; knob values on the edges."""
    spa, sem = record["w_spa"], record["w_sem"]
    cells = {(c["w_spa"], c["w_sem"]): c for c in record["cells"]}
    axes = sub.subplots(len(spa), len(sem), gridspec_kw={"wspace": 0.02, "hspace": 0.02})
    for i, w_spa in enumerate(spa):
        for j, w_sem in enumerate(sem):
            ax = axes[i][j]
            draw(ax, cells[w_spa, w_sem])
            neutral = (w_spa, w_sem) == NEUTRAL
            _frame(ax, "black" if neutral else "0.8", 1.4 if neutral else 0.4)
            if j == 0:
                ax.set_ylabel(f"{w_spa:g}", fontsize=6.5, rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title(f"{w_sem:g}", fontsize=6.5)
    sub.suptitle(f"{title}\ncolumns: w_sem, rows: w_spa", fontsize=7)
    return [ax for row in axes for ax in row]


def _notes(record: dict, study: Study) -> str:
    """Which image, box, sampler and checkpoint the grid shows ("raw" when neither colour fix nor back-projection)."""
    knobs = record["knobs"]
    raw = knobs["color_fix"] == "none" and not knobs["backproject"]
    seeds = record.get("seeds", [record["seed"]])
    noise = ("" if record.get("seed_change") is None else f"\nanother seed alone:\nmean {record['seed_change']:.2f} "
             f"levels\n(scores: seed mean;\ncrops: seed {seeds[0]})")
    return (f"{study.knob.data} {record['image']}\nHR box {record['box']}\n{'raw sampler' if raw else 'sampler'}:\n"
            f"{knobs['steps']} steps, seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}\n"
            f"color_fix {knobs['color_fix']}, backproject {knobs['backproject']}\nckpt {record['ckpt'][:12]}{noise}")


def figure(results: Path, study: Study = PHOTO) -> Figure:
    """Crops | changes | HR, built from the study's knob-grid JSON and its PNG crops."""
    record = read_json(results, study.knob_grid)
    scores = study.knob.scores
    crops = {(c["w_spa"], c["w_sem"]): load_crop(results, c["file"]).astype(np.float64) for c in record["cells"]}
    neutral = crops[NEUTRAL]
    with figure_style():
        fig = new_figure(FULL_WIDTH, 3.9)
        left, middle, right = fig.subfigures(1, 3, width_ratios=[1.0, 1.0, 0.42], wspace=0.02)

        def crop(ax: Axes, cell: dict) -> None:
            ax.imshow(crops[cell["w_spa"], cell["w_sem"]].astype(np.uint8), interpolation="nearest")
            ax.set_xlabel(" / ".join(f"{cell[name]:.3g}" for name in scores), fontsize=5, labelpad=1)  # fits 3 scores

        changes = {}

        def change(ax: Axes, cell: dict) -> None:
            diff = np.abs(crops[cell["w_spa"], cell["w_sem"]] - neutral).mean(axis=2)
            changes["image"] = ax.imshow(diff, cmap="magma", vmin=0, vmax=CHANGE_RANGE, interpolation="nearest")
            ax.set_xlabel(f"mean {cell['mean_abs_change']:.2f}", fontsize=5, labelpad=1)

        _grid(left, record, crop, f"samples (caption: {' / '.join(SHORT.get(m, m) for m in scores)})")
        grid = _grid(middle, record, change, "|sample - neutral| on the crop (caption: whole-image mean)")
        middle.colorbar(changes["image"], ax=grid, location="bottom", fraction=0.03, shrink=0.6, pad=0.02,
                        label=f"8-bit levels (≥ {CHANGE_RANGE:g} shown as {CHANGE_RANGE:g})")
        hr, notes = right.subplots(2, 1, height_ratios=[1.0, 1.4])
        hr.imshow(load_crop(results, record["hr"]), interpolation="nearest")
        _frame(hr, OKABE_ITO["black"], 0.6)
        hr.set_title("HR", fontsize=7)
        notes.set_axis_off()
        notes.text(0.0, 1.0, _notes(record, study), fontsize=5.5, va="top", transform=notes.transAxes)
    return fig
