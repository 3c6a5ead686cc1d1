"""A small CNN that regresses the degradation summary from an LR image, and the ``estimator`` describer.

At inference the true degradation is unknown; the estimator predicts the same ``blur``, ``noise`` and
``jpeg`` quantities the ``params`` describer computes from ground truth, so both caption alike.
Targets are normalised to similar ranges: log(1 + blur), log(1 + noise), quality / 100.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

from spasemsr.guidance.describer.template import QUANTITIES, caption, check_fields, level
from spasemsr.weights import require_model_folder


def to_targets(summary: dict[str, Tensor]) -> Tensor:
    """(B, 3) normalised regression targets from batched summary quantities."""
    return torch.stack([torch.log1p(summary["blur"]), torch.log1p(summary["noise"]), summary["jpeg"] / 100], dim=-1)


def from_targets(targets: Tensor) -> dict[str, Tensor]:
    """Summary quantities in natural units (LR px, 0-255 sigma, quality) from (B, 3) normalised values."""
    return {
        "blur": torch.expm1(targets[:, 0]).clamp(min=0),
        "noise": torch.expm1(targets[:, 1]).clamp(min=0),
        "jpeg": (targets[:, 2] * 100).clamp(0, 100),
    }


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """A stride-2 conv stage: halve the resolution, then refine. Batch norm, not a per-image norm, which
    would divide out the response magnitudes that say how noisy or blurred an image is."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.SiLU(),
    )


class DegradationEstimator(ModelMixin, ConfigMixin):
    """LR (B, 3, h, w) in [0, 1] -> (B, 3) normalised (blur, noise, jpeg); a diffusers-style folder on disk."""

    @register_to_config
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), hidden: int = 128,
                 quantities: tuple[str, ...] = QUANTITIES) -> None:
        super().__init__()
        if tuple(quantities) != QUANTITIES:
            raise ValueError(f"this code predicts {QUANTITIES}, the saved estimator predicts {tuple(quantities)}")
        # Full-resolution stem: noise and JPEG blocks live in the finest pixels.
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1), nn.BatchNorm2d(channels[0]), nn.SiLU()]
        layers += [_block(c_in, c_out) for c_in, c_out in zip(channels, channels[1:], strict=False)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(channels[-1], hidden), nn.SiLU(), nn.Linear(hidden, len(QUANTITIES)))

    def forward(self, lr: Tensor) -> Tensor:
        return self.head(self.features(lr * 2 - 1))

    @torch.no_grad()
    def summaries(self, lr: Tensor) -> list[dict[str, float]]:
        """Per-image predicted summaries in natural units, ready for ``template.caption``."""
        predicted = from_targets(self(lr.to(self.device, self.dtype)).float())
        return [{name: float(value[i]) for name, value in predicted.items()} for i in range(lr.shape[0])]


class EstimatorDescriber:
    """Inference-time captions from a trained estimator folder (``<export>/estimator`` of a training run)."""

    def __init__(self, path: str, device: str = "cpu", fields: tuple[str, ...] = QUANTITIES) -> None:
        self.fields = check_fields(tuple(fields))
        folder = require_model_folder(
            path, "(estimator describer) the 'estimator' folder of an estimator training export, e.g. "
            "weights/tiny/estimator/estimator or the export of `spasemsr train --config configs/tiny_estimator.yaml`"
        )
        self.estimator = DegradationEstimator.from_pretrained(folder, local_files_only=True).to(device).eval()

    def __call__(self, lr: Tensor, params: dict[str, Tensor] | None = None) -> list[str]:
        return [caption(summary, self.fields) for summary in self.estimator.summaries(lr)]


def estimator_metrics(predicted: Tensor, truth: dict[str, Tensor],
                      fields: tuple[str, ...] = QUANTITIES) -> dict[str, Tensor]:
    """Per-quantity MAE (natural units) and bin agreement, plus whole-caption agreement, of (B, 3) outputs;
    for ``fields`` other than all quantities also ``caption_agreement_<fields>`` (captions stating only those)."""
    natural = from_targets(predicted)
    metrics: dict[str, Tensor] = {}
    same_bins = {}
    for name in QUANTITIES:
        same_bins[name] = level(name, natural[name]) == level(name, truth[name])
        metrics[f"mae_{name}"] = (natural[name] - truth[name]).abs().mean()
        metrics[f"bin_agreement_{name}"] = same_bins[name].float().mean()
    metrics["caption_agreement"] = torch.stack(list(same_bins.values())).all(0).float().mean()
    if tuple(fields) != QUANTITIES:
        agree = torch.stack([same_bins[name] for name in check_fields(tuple(fields))]).all(0)
        metrics[f"caption_agreement_{'_'.join(check_fields(tuple(fields)))}"] = agree.float().mean()
    return metrics
