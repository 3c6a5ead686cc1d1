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
from spasemsr.guidance.describer.estimator import DegradationEstimator, estimator_metrics, to_targets
from spasemsr.guidance.describer.template import summarise
from spasemsr.models.base import TaskModule


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
