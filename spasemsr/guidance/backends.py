"""The grounder and describer a SpaSemSR config names for training or inference, built with their options.

One function for both stages, so a backend option (``grounder_options.owlv2.path``, a describer's
weights) and the device mean the same in ``spasemsr train`` as in ``upscale`` and ``evaluate``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from spasemsr.config.tasks import TextGuidance
from spasemsr.guidance.describer import Describer, load_describer
from spasemsr.guidance.grounding import Grounder, load_grounder
from spasemsr.registries import DESCRIBERS
from spasemsr.weights import local_path

STAGES = ("train", "infer")


def backend_options(options_by_name: dict[str, Any], name: str) -> dict[str, Any]:
    """The options configured for backend ``name``, with a relative ``path`` resolved like shipped weights."""
    options = dict(options_by_name.get(name) or {})
    if options.get("path"):
        options["path"] = str(local_path(options["path"]))
    return options


def text_backends(text: TextGuidance, stage: str, device: torch.device | str) -> tuple[Grounder | None,
                                                                                         Describer | None]:
    """(grounder, describer) of ``stage`` ("train": sees HR and true parameters; "infer": sees the LR), on ``device``.

    Either is None where its guidance is off (spatial text "none", degradation text off).
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {STAGES}")
    train = stage == "train"

    def build(load, name: str, options_by_name: dict[str, Any], **fixed: Any):
        options = {**backend_options(options_by_name, name), **fixed}
        return load(name, options.pop("device", str(device)), **options)  # a device option wins

    grounder = describer = None
    if text.spatial != "none":
        grounder = build(load_grounder, text.train_grounder if train else text.infer_grounder, text.grounder_options)
    if text.degradation_text:
        name = text.train_describer if train else text.infer_describer
        takes_fields = "fields" in inspect.signature(DESCRIBERS.get(name)).parameters  # template captions; vlm: free
        describer = build(load_describer, name, text.describer_options,
                          **({"fields": tuple(text.caption_fields)} if takes_fields else {}))
    return grounder, describer
