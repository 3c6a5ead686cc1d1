"""Grounders (object tags + normalised boxes for the spatial text guidance), chosen by name.

- `annotations`: hand-made boxes looked up by image key, mapped into training crops (`annotations.py`).
- `auto`: Haar faces + ImageNet MobileNetV2 on a window grid; offline, any photo (`auto.py`).
- `grounding_dino`, `owlv2`: transformers open-vocabulary detectors from a local folder (`detectors.py`).
- `probe`: the true regions of a guidance-probe image, from its key (`probe.py`, issue #19).
- `none`: grounding switched off, every image gets an empty `Grounding`.

Backends are imported only when loaded, so a missing optional dependency breaks only its own name.
"""

from __future__ import annotations

from typing import Any

from spasemsr.guidance.grounding.base import Grounder, Grounding, NoGrounder
from spasemsr.registries import GROUNDERS


def load_grounder(name: str, device: str | None = None, **options: Any) -> Grounder:
    """Build the grounder registered as `name` with its backend options (see each backend's docstring).

    `device` is where a network backend runs (unless its options name one); lookup backends ignore it.
    """
    return GROUNDERS.build(name, device=device, **options)


__all__ = ["GROUNDERS", "Grounder", "Grounding", "NoGrounder", "load_grounder"]
