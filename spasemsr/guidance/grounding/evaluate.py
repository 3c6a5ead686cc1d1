"""How well a grounder finds the hand-annotated objects of the bundled set, clean and degraded.

The spatial text guidance is only as good as its tags and boxes, and at inference the grounder sees a
restored LR image, not the HR one. This measures, per image and overall (micro-averaged over objects):
precision and recall of tagged boxes (IoU >= 0.5 and the same tag after `SYNONYMS`, one-to-one, best
score first), class-agnostic box recall (IoU only), and tag recall (annotated tags named anywhere in
the image). Condition `clean` is the original image; `bicubic_x4` is x4 bicubic down then up, the
information an SR input keeps, without any restoration.

    python -m spasemsr.guidance.grounding.evaluate --grounder auto --split kodak5,val,train \\
        --out experiments/results/grounding_accuracy.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import box_iou

from spasemsr.data.images import read_image
from spasemsr.data.resize import bicubic_down, bicubic_up
from spasemsr.data.samples import SAMPLES, SPLITS, sample_paths
from spasemsr.guidance.grounding import load_grounder
from spasemsr.guidance.grounding.annotations import BUNDLED_ANNOTATIONS, load_annotations
from spasemsr.guidance.grounding.base import Grounder, Grounding
from spasemsr.utils.atomic import atomic_write_text

IOU_THRESHOLD = 0.5
SYNONYMS: tuple[frozenset[str], ...] = tuple(frozenset(group) for group in (
    {"person", "woman", "man", "people", "girl", "boy"}, {"cup", "coffee cup", "mug"}, {"boat", "sailboat"},
    {"motorcycle", "motorbike"}, {"bicycle", "bike"}, {"hat", "cap"}, {"house", "building"},
    {"pagoda", "temple"}, {"rocket", "missile"}, {"sea", "ocean"}, {"beach", "seashore", "shore"},
    {"telescope", "binoculars"}, {"life buoy", "life ring", "lifebuoy"}, {"street light", "street lamp", "lamppost"},
    {"flower", "dahlia", "daisy"}, {"cat", "kitten"}, {"box", "carton", "crate"},
))
"""Tags that count as the same object. Only true synonyms and the near-synonyms an annotator could
have written either way (house/building, hat/cap); never a hypernym like "animal"."""


def canonical(tag: str) -> str:
    """The name a tag is compared under: the alphabetically first member of its synonym group."""
    tag = tag.strip().lower()
    for group in SYNONYMS:
        if tag in group:
            return min(group)
    return tag


LR_RECIPES = ("bicubic", "realesrgan")
DRMS = ("none", "tiny", "realesrgan_x4plus", "realsr_df2k")


def degrade(image: Tensor, condition: str, name: str = "") -> Tensor:
    """The (B, 3, H, W) input a grounder sees under `condition`: "clean", "bicubic_x4" (x4 bicubic down and up), or
    "<lr>+<drm>": the x4 LR of `evaluate` (lr: bicubic, or realesrgan seeded by the image's name) restored by the
    DRM SpaSemSR's `model.drm` names (none: bicubic up), what its grounder sees at inference."""
    if condition == "clean":
        return image
    if condition == "bicubic_x4":
        return bicubic_up(bicubic_down(image, 4), image.shape[-2:]).clamp(0, 1)
    lr_recipe, _, drm = condition.partition("+")
    if lr_recipe not in LR_RECIPES or drm not in DRMS:
        raise ValueError(f"unknown condition {condition!r}; expected clean, bicubic_x4 or <lr>+<drm> with lr in "
                         f"{LR_RECIPES} and drm in {DRMS}")
    from spasemsr.evaluation.datasets import degraded_lr

    height, width = (side - side % 4 for side in image.shape[-2:])
    lr = degraded_lr(image[0, :, :height, :width], name, lr_recipe)[None]
    restored = bicubic_up(lr, (height, width)).clamp(0, 1) if drm == "none" else _drm(drm)(lr)
    return bicubic_up(restored, image.shape[-2:]).clamp(0, 1)  # back to the annotated size (a few pixels)


@cache
def _drm(name: str) -> Callable[[Tensor], Tensor]:
    from spasemsr.weights.exports import load_drm
    from spasemsr.weights.table import WEIGHTS

    return load_drm(Path(WEIGHTS["tiny_spasemsr"].default), name, 4, "cpu")


def _greedy_matches(pred: Grounding, gt_boxes: Tensor, gt_tags: Sequence[str] | None) -> int:
    """One-to-one matches, predictions best first, each taking its highest-IoU free partner >= IOU_THRESHOLD."""
    if not len(pred) or not gt_boxes.shape[0]:
        return 0
    iou = box_iou(pred.boxes, gt_boxes)
    if gt_tags is not None:
        same = torch.tensor([[canonical(p) == canonical(g) for g in gt_tags] for p in pred.tags])
        iou = iou.where(same, torch.zeros(()))
    free = torch.ones(gt_boxes.shape[0], dtype=torch.bool)
    matches = 0
    for row in iou:
        candidates = row.where(free, torch.zeros(()))
        best = int(candidates.argmax())
        if candidates[best] >= IOU_THRESHOLD:
            free[best] = False
            matches += 1
    return matches


def score_image(pred: Grounding, gt_tags: Sequence[str], gt_boxes: Tensor) -> dict[str, Any]:
    """Counts and rates of one image's prediction against its annotation (normalised xyxy boxes)."""
    found = {canonical(tag) for tag in pred.tags}
    wanted = {canonical(tag) for tag in gt_tags}
    counts = {
        "predictions": len(pred), "objects": len(gt_tags), "matched": _greedy_matches(pred, gt_boxes, gt_tags),
        "boxes_matched": _greedy_matches(pred, gt_boxes, None), "tags": len(wanted), "tags_found": len(wanted & found),
    }
    return {**counts, **_rates(counts)}


def _rates(counts: dict[str, int]) -> dict[str, float]:
    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {
        "precision": ratio(counts["matched"], counts["predictions"]),
        "recall": ratio(counts["matched"], counts["objects"]),
        "box_recall": ratio(counts["boxes_matched"], counts["objects"]),
        "tag_recall": ratio(counts["tags_found"], counts["tags"]),
    }


def evaluate(grounder: Grounder, names: Sequence[str], condition: str) -> dict[str, Any]:
    """Per-image and overall scores, the predictions themselves and the time per image."""
    annotations = load_annotations(BUNDLED_ANNOTATIONS)
    paths = {}
    for split in SPLITS:
        members = [sample.name for sample in SAMPLES if sample.split == split]
        paths.update(zip(members, sample_paths(split), strict=True))  # checksums verified
    rows = []
    for name in names:
        image = degrade(read_image(paths[name])[None], condition, name)
        wall, cpu = time.perf_counter(), time.process_time()
        (pred,) = grounder(image, keys=[name])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        truth = annotations[name]
        row = score_image(pred, truth.tags, truth.normalised())
        predicted = [{"tag": tag, "box": [round(v, 4) for v in box], "score": round(score, 4)}
                     for tag, box, score in zip(pred.tags, pred.boxes.tolist(), pred.scores.tolist(), strict=True)]
        rows.append({"image": name, "size": list(truth.size), **row, "wall_ms": 1000 * wall, "cpu_ms": 1000 * cpu,
                     "predicted": predicted})
    keys = ("predictions", "objects", "matched", "boxes_matched", "tags", "tags_found")
    totals = {key: sum(row[key] for row in rows) for key in keys}
    return {"overall": {**totals, **_rates(totals)}, "images": rows}


def _names(splits: str) -> list[str]:
    wanted = [split.strip() for split in splits.split(",") if split.strip()]
    unknown = [split for split in wanted if split not in SPLITS]
    if unknown or not wanted:
        raise SystemExit(f"--split: unknown {unknown or 'empty'}; use a comma list of {', '.join(SPLITS)}")
    return [sample.name for split in wanted for sample in SAMPLES if sample.split == split]


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--option wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _table(results: dict[str, Any], say: Callable[[str], None]) -> None:
    for condition, result in results.items():
        say(f"\n[{condition}]  {'image':24s} {'pred':>4s} {'obj':>4s} {'prec':>5s} {'rec':>5s} {'boxR':>5s} "
            f"{'tagR':>5s} {'ms':>6s}")
        for row in [*result["images"], {"image": "OVERALL", **result["overall"]}]:
            ms = f"{row['wall_ms']:6.0f}" if "wall_ms" in row else ""
            say(f"{'':14s}{row['image']:24s} {row['predictions']:4d} {row['objects']:4d} {row['precision']:5.2f} "
                f"{row['recall']:5.2f} {row['box_recall']:5.2f} {row['tag_recall']:5.2f} {ms}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: evaluate one grounder on bundled splits under each condition; write JSON, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grounder", default="auto", help="registry name (spasemsr.guidance.grounding.GROUNDERS)")
    parser.add_argument("--split", default="kodak5,val,train", help="comma list of bundled splits")
    parser.add_argument("--conditions", default="clean,bicubic_x4",
                        help=f"comma list: clean, bicubic_x4, <lr>+<drm> (lr: {', '.join(LR_RECIPES)}; drm: "
                             f"{', '.join(DRMS)})")
    parser.add_argument("--option", type=_option, action="append", default=[], help="grounder option KEY=VALUE")
    parser.add_argument("--out", required=True, help="JSON file to write (atomically)")
    args = parser.parse_args(argv)
    names, options = _names(args.split), dict(args.option)
    grounder = load_grounder(args.grounder, **options)
    if args.grounder != "annotations":
        grounder(torch.zeros(1, 3, 64, 64))  # warm-up, so the first image's time is not the library's start-up
    results = {c.strip(): evaluate(grounder, names, c.strip()) for c in args.conditions.split(",") if c.strip()}
    kodak = [row["cpu_ms"] for row in results.get("clean", {"images": []})["images"] if row["size"] == [512, 384]]
    report = {
        "grounder": args.grounder, "options": options, "splits": args.split, "iou_threshold": IOU_THRESHOLD,
        "synonyms": [sorted(group) for group in SYNONYMS], "annotations": str(BUNDLED_ANNOTATIONS.name),
        "annotations_sha256": hashlib.sha256(BUNDLED_ANNOTATIONS.read_bytes()).hexdigest(),
        "conditions": results,
        "speed": {"cpu_ms_per_512x384": sum(kodak) / len(kodak) if kodak else None, "torch_threads":
                  torch.get_num_threads(), "load_average": os.getloadavg(), "cpu": platform.processor() or "unknown"},
        "software": {"torch": torch.__version__, "python": platform.python_version()},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    _table(results, print)
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
