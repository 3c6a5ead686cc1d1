"""Dark-dot artefacts: the small dark blobs a weak decoder draws into flat regions.

The detector (declared so every count is reproducible): on the 8-bit BT.601 Y channel, a pixel is *dark*
when its black top-hat over a 7x7 square (grey closing minus the image: how far it lies below the level
that fills every dark feature narrower than 7 px) exceeds ``DARK_DOT_DEPTH`` grey levels, so the inside
and the corners of a wider dark region are not dark in this sense; a *dot* is
an 8-connected set of dark pixels of ``DARK_DOT_AREA`` pixels (2 to 40), outside a border of ``crop`` pixels
(the SR tables' border crop: decoders darken image edges, which is not this artefact). ``dark_dots`` counts the dots
of one image (the HR's own count is the reference level); ``new_dark_dots`` counts the dots of an output
that touch no dark pixel of the HR, i.e. the ones the model drew.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from spasemsr.metrics.color import check_images, quantize_8bit, rgb_to_y

DARK_DOT_DEPTH = 24  # grey levels of black top-hat
DARK_DOT_WINDOW = 7
DARK_DOT_AREA = (2, 40)  # pixels, inclusive
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def dark_mask(img: Tensor, crop: int = 4) -> np.ndarray:
    """(B, H - 2 crop, W - 2 crop) bool: pixels whose 7x7 black top-hat exceeds DARK_DOT_DEPTH grey levels."""
    check_images(img, "dark_mask")
    if crop < 0 or 2 * crop >= min(img.shape[-2:]):
        raise ValueError(f"dark dots: border crop {crop} must be >= 0 and leave pixels of a "
                         f"{img.shape[-2]}x{img.shape[-1]} image")
    y = (rgb_to_y(quantize_8bit(img)) * 255).squeeze(1).cpu().double().numpy()
    closed = ndimage.grey_closing(y, size=(1, DARK_DOT_WINDOW, DARK_DOT_WINDOW), mode="reflect")
    dark = closed - y > DARK_DOT_DEPTH
    return dark[:, crop:dark.shape[1] - crop, crop:dark.shape[2] - crop]


def _dots(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of one (H, W) mask and the label ids whose area is within DARK_DOT_AREA."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    low, high = DARK_DOT_AREA
    return labels, np.flatnonzero((areas >= low) & (areas <= high) & (np.arange(count + 1) > 0))


def dark_dots(img: Tensor, crop: int = 4) -> Tensor:
    """Number of dark dots per image, (B,) float64."""
    return torch.tensor([float(len(_dots(mask)[1])) for mask in dark_mask(img, crop)], dtype=torch.float64)


def new_dark_dots(sr: Tensor, hr: Tensor, crop: int = 4) -> Tensor:
    """Dots of ``sr`` that overlap no dark pixel of ``hr`` (the artefacts the model added), (B,) float64."""
    if sr.shape != hr.shape:
        raise ValueError(f"new_dark_dots: sr and hr must have the same shape, got {tuple(sr.shape)} and "
                         f"{tuple(hr.shape)}")
    counts = []
    for sr_mask, hr_mask in zip(dark_mask(sr, crop), dark_mask(hr.to(sr.device), crop), strict=True):
        labels, dots = _dots(sr_mask)
        touched = np.unique(labels[hr_mask & (labels > 0)])
        counts.append(float(len(np.setdiff1d(dots, touched))))
    return torch.tensor(counts, dtype=torch.float64)
