"""What an experiment file says about evaluation: which set, an optional quick subset, metrics, fixed knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from spasemsr.evaluation.datasets import EvalSet, load_eval_set


@dataclass
class EvalSpec:
    """How an experiment scores a model: the protocol's set, optionally a quick subset, and the sampler knobs."""

    data: str = "kodak5"  # kodak5 | hr_folder:DIR
    lr: str = "realesrgan"  # LR recipe of generated sets
    images: int = 0  # first N images (0 = all)
    crop: int = 0  # cut each HR top-left to this side (0 = whole image)
    metrics: list[str] | None = None  # None = the protocol's defaults
    knobs: dict = field(default_factory=dict)  # sampler knobs over each export's own settings

    def dataset(self, scale: int) -> EvalSet:
        """The evaluation set this spec names, subset as it says."""
        return load_eval_set(self.data, degrade=self.lr, scale=scale).head(self.images, self.crop)
