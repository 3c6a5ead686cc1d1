"""How well does the degradation estimator read its LR inputs? Measured against a constant predictor.

``python -m spasemsr.guidance.describer.evaluate --estimator weights/tiny/estimator/estimator`` degrades
fixed-seed 128² crops of the held-out kodak5 images and of the training images with the default
Real-ESRGAN pipeline, and reports per-quantity MAE (natural units), word-bin agreement and whole-caption
agreement, next to the same numbers for always predicting the median of the truth (what an estimator
that learned nothing scores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.data.datasets import bundled_dataset
from spasemsr.data.degradation import DegradationConfig, RealESRGANDegradation
from spasemsr.guidance.describer.estimator import DegradationEstimator, estimator_metrics, to_targets
from spasemsr.guidance.describer.template import QUANTITIES, summarise
from spasemsr.utils.atomic import atomic_write_text


def degraded_crops(splits: list[str], crops_per_image: int, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Random 128² HR crops of ``splits`` degraded with a fixed seed: (LR, true summary quantities)."""
    torch.manual_seed(seed)
    sets = [bundled_dataset(split, 128, 4, train=True, repeat=crops_per_image) for split in splits]
    hr = torch.stack([dataset[i]["hr"] for dataset in sets for i in range(len(dataset))])
    degrade = RealESRGANDegradation(DegradationConfig())
    lrs, params = [], []
    for index, chunk in enumerate(hr.split(16)):
        lr, p = degrade(chunk, torch.Generator().manual_seed(seed * 1000 + index))
        lrs.append(lr)
        params.append(p)
    return torch.cat(lrs), summarise({k: torch.cat([p[k] for p in params]) for k in params[0]})


def accuracy(estimator: DegradationEstimator, lr: Tensor, truth: dict[str, Tensor],
             fields: tuple[str, ...] = QUANTITIES) -> dict[str, dict]:
    """Metrics of the estimator and of the median predictor on the same images (``fields``: the captions' fields)."""
    with torch.no_grad():
        predicted = estimator(lr)
    median = {q: truth[q].median().expand_as(truth[q]) for q in QUANTITIES}
    constant = to_targets(median)

    def rounded(metrics: dict[str, Tensor]) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in metrics.items()}

    return {"estimator": rounded(estimator_metrics(predicted, truth, fields)),
            "median_predictor": rounded(estimator_metrics(constant, truth, fields)), "images": len(lr)}


def main(argv: list[str] | None = None) -> None:
    """Print and write the estimator's accuracy on held-out and training images."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--estimator", default="weights/tiny/estimator/estimator")
    parser.add_argument("--crops", type=int, default=16, help="crops per image")
    parser.add_argument("--fields", default="noise", help="the caption fields SpaSemSR states "
                                                           "(model.text.caption_fields), comma-separated")
    parser.add_argument("--out", default="experiments/results/estimator_accuracy.json")
    args = parser.parse_args(argv)
    estimator = DegradationEstimator.from_pretrained(args.estimator, local_files_only=True).eval()
    fields = tuple(args.fields.split(","))
    results = {
        "estimator": args.estimator,
        "caption_fields": list(fields),
        "kodak5_held_out": accuracy(estimator, *degraded_crops(["kodak5"], args.crops, seed=7), fields),
        "train_and_val": accuracy(estimator, *degraded_crops(["train", "val"], args.crops, seed=8), fields),
    }
    text = json.dumps(results, indent=2)
    atomic_write_text(Path(args.out), text + "\n")
    print(text)


if __name__ == "__main__":
    main()
