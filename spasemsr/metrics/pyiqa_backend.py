"""pyiqa metrics, built once per (name, device, options) with every download route shut.

The registry checks weights on disk before it calls here; the guard makes sure that if pyiqa (or
torchvision, timm, CLIP under it) still reaches for the network, the call fails loudly instead of
fetching a file, so a result can never silently depend on what happened to be downloadable.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import torch
from torch import Tensor

from spasemsr.metrics.availability import MetricUnavailable
from spasemsr.metrics.color import check_images, quantize_8bit


@contextmanager
def no_downloads(metric: str) -> Iterator[None]:
    """Make torch.hub, pyiqa, CLIP (urllib) and the HF hub refuse to fetch anything while `metric` is built."""
    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as pyiqa_download
    import torch.hub

    def refuse(url: object, *args: object, **kwargs: object) -> None:
        raise MetricUnavailable(
            f"metric {metric!r}: pyiqa tried to download {url}, which spasemsr never allows at run time; fetch it on "
            "a machine with internet into the same cache folder, then check with spasemsr.metrics.registry.available"
        )

    routes = [
        (torch.hub, "download_url_to_file"), (pyiqa_download, "download_url_to_file"), (urllib.request, "urlopen")
    ]
    saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute in routes]
    was_offline = hf_constants.HF_HUB_OFFLINE
    try:
        for owner, attribute in routes:
            setattr(owner, attribute, refuse)
        hf_constants.HF_HUB_OFFLINE = True  # read at call time by hf_hub_download: cache only, no HTTP
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)
        hf_constants.HF_HUB_OFFLINE = was_offline


@cache
def _metric(name: str, device: str, options: tuple[tuple[str, object], ...]) -> torch.nn.Module:
    import pyiqa
    from huggingface_hub.errors import LocalEntryNotFoundError

    with no_downloads(name):
        try:
            return pyiqa.create_metric(name, device=torch.device(device), **dict(options))
        except LocalEntryNotFoundError as err:  # the HF hub, kept offline above, lacks a file
            raise MetricUnavailable(f"metric {name!r}: a Hugging Face hub file is not cached here ({err})") from err


def pyiqa_metric(name: str, device: torch.device | str = "cpu", **options: object) -> torch.nn.Module:
    """The cached `pyiqa.create_metric(name, device=device, **options)`; options must be hashable."""
    return _metric(name, str(device), tuple(sorted(options.items())))


@torch.no_grad()
def pyiqa_score(name: str, img: Tensor, ref: Tensor | None = None, **options: object) -> Tensor:
    """One float64 score per image, shape (B,), of the 8-bit `img` (and `ref` for full-reference metrics)."""
    check_images(img, f"{name}(sr)")
    metric = pyiqa_metric(name, img.device, **options)
    inputs = [quantize_8bit(img).float()]
    if ref is not None:
        check_images(ref, f"{name}(hr)")
        inputs.append(quantize_8bit(ref.to(img.device)).float())
    return metric(*inputs).reshape(img.shape[0]).to(torch.float64)
