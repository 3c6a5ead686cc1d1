"""Training the degradation estimator: regress the summary quantities of online-degraded LR crops.

Targets come from the parameters the degradation pipeline returns with each batch (training) and keeps
with each fixed validation pair, so no labels are needed beyond HR images. Validation reports what the
captions depend on: error in natural units and how often the predicted word bin is the true one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spasemsr.config import to_container
from spasemsr.guidance.describer.estimator import DegradationEstimator, from_targets, to_targets
from spasemsr.guidance.describer.template import QUANTITIES, level, summarise
from spasemsr.models.base import TaskModule


def estimator_metrics(predicted: Tensor, truth: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-quantity MAE (natural units) and bin agreement, plus whole-caption agreement, of (B, 3) outputs."""
    natural = from_targets(predicted)
    metrics: dict[str, Tensor] = {}
    same_caption = torch.ones_like(truth["blur"], dtype=torch.bool)
    for name in QUANTITIES:
        same_bin = level(name, natural[name]) == level(name, truth[name])
        same_caption &= same_bin
        metrics[f"mae_{name}"] = (natural[name] - truth[name]).abs().mean()
        metrics[f"bin_agreement_{name}"] = same_bin.float().mean()
    metrics["caption_agreement"] = same_caption.float().mean()
    return metrics


def _params(batch: dict[str, Any]) -> dict[str, Tensor]:
    """The batch's degradation parameters, or an error saying which data sources provide them."""
    if "degradation" not in batch:
        raise KeyError(
            "estimator batches need 'degradation' parameters, which only online degradation provides: use "
            "data.source=bundled or hr_folder (paired folders have real LR with unknown degradations)"
        )
    return batch["degradation"]


class EstimatorModule(TaskModule):
    """Only ``estimator`` trains, with L1 on its normalised targets."""

    trainable = ("estimator",)
    needs_lr = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.estimator = DegradationEstimator(**to_container(self.cfg.model.arch))

    def loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """L1 between predicted and true normalised quantities; deterministic, so ``generator`` is unused."""
        return F.l1_loss(self.estimator(batch["lr"]), to_targets(summarise(_params(batch))))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        truth = summarise(_params(batch))
        predicted = self.estimator(batch["lr"])
        size = len(batch["lr"])
        self.log("val/loss", F.l1_loss(predicted, to_targets(truth)), batch_size=size)
        for name, value in estimator_metrics(predicted, truth).items():
            self.log(f"val/{name}", value, batch_size=size)

    def export(self, folder: Path) -> None:
        self.estimator.save_pretrained(folder / "estimator")
