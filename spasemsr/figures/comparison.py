"""Visual comparison: one crop box through LR, every suite method of `COMPARE_METHODS` and HR, each with a zoom inset.

Every image lies on the same HR-pixel grid, so the LR is drawn nearest-neighbour x4 and the zoom box
marks the same pixels in every panel. Titles carry the image-level PSNR-Y and NIQE that ``make
figure-data`` recorded for each method's full SR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from spasemsr.figures.inputs import FIGURE_DATA, FIGURE_DATA_DIR, Input, read_json, require
from spasemsr.figures.style import FULL_WIDTH, OKABE_ITO, figure_style, metric_name, new_figure

COMPARISON = Input(f"{FIGURE_DATA_DIR}/comparison.json", FIGURE_DATA)
INPUTS = (COMPARISON,)
ZOOM_COLOR = OKABE_ITO["vermillion"]


def load_crop(results: Path, file: str) -> np.ndarray:
    """An RGB crop that ``make figure-data`` wrote (its JSON names the file), as (H, W, 3) uint8."""
    item = Input(f"{FIGURE_DATA_DIR}/{file}", FIGURE_DATA)
    require(results, [item])
    with Image.open(item.path(results)) as image:
        return np.asarray(image.convert("RGB"))


def _title(panel: dict) -> str:
    if panel["key"] == "lr":
        return f"LR (x{panel['scale']} nearest)"
    if panel["key"] == "hr":
        return "HR (reference)"
    return f"{panel['label']}\n{panel['psnr_y']:.2f} dB / {panel['niqe']:.2f}"


def draw_zoomed(ax: Axes, pixels: np.ndarray, size: tuple[int, int], zoom: tuple[int, int, int, int]) -> None:
    """``pixels`` stretched over ``size`` (W, H) HR pixels, and an inset magnifying ``zoom`` (x0, y0, x1, y1)."""
    width, height = size
    ax.imshow(pixels, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_axis_off()
    inset = ax.inset_axes([0.52, 0.0, 0.48, 0.48])
    inset.imshow(pixels, extent=(0, width, height, 0), interpolation="nearest")
    inset.set_xlim(zoom[0], zoom[2])
    inset.set_ylim(zoom[3], zoom[1])
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(ZOOM_COLOR)
        spine.set_linewidth(1.0)
    ax.indicate_inset_zoom(inset, edgecolor=ZOOM_COLOR, alpha=1.0, linewidth=0.8)


def figure(results: Path) -> Figure:
    """One panel per entry in a row, left to right from input to reference."""
    record = read_json(results, COMPARISON)
    x0, y0, x1, y1 = record["box"]
    zoom = (record["zoom"][0] - x0, record["zoom"][1] - y0, record["zoom"][2] - x0, record["zoom"][3] - y0)
    panels = record["panels"]
    with figure_style():
        fig = new_figure(FULL_WIDTH, 1.75)
        for ax, panel in zip(fig.subplots(1, len(panels)), panels, strict=True):
            draw_zoomed(ax, load_crop(results, panel["file"]), (x1 - x0, y1 - y0), zoom)
            ax.set_title(_title(panel), fontsize=6.5)
        fig.suptitle(f"kodak5 {record['image']}, Real-ESRGAN LR, x4; HR box x {x0}-{x1}, y {y0}-{y1}; titles: "
                     f"{metric_name('psnr_y')} / {metric_name('niqe')} of the whole image", fontsize=7)
    return fig
