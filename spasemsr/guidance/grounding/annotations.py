"""The annotation grounder: hand-made tags and boxes looked up by image, not detected.

It gives the spatial text guidance an error-free grounding (an upper bound for the detectors, and a
clean training signal for the bundled set). Annotation files hold pixel xyxy boxes of the original
images (format in `spasemsr/data/annotations/bundled.json`); lookups go by the image's key (its path or
file stem, or the entry name), and a dataset item's `view` carries the boxes into its training crop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.guidance.grounding.base import Grounding, check_images
from spasemsr.guidance.grounding.geometry import boxes_in_view

BUNDLED_ANNOTATIONS = Path(__file__).resolve().parents[2] / "data" / "annotations" / "bundled.json"
ASPECT_TOLERANCE = 0.02
"""Relative width/height mismatch beyond which an image cannot be the annotated one (or a crop of it)."""


@dataclass(frozen=True)
class ImageAnnotation:
    """The objects of one annotated image, boxes in pixels of its original size."""

    name: str
    file: str
    size: tuple[int, int]
    tags: tuple[str, ...]
    boxes: tuple[tuple[float, float, float, float], ...]

    def normalised(self) -> Tensor:
        """Boxes as (N, 4) xyxy in [0, 1] of the full image."""
        width, height = self.size
        return torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4) / torch.tensor(
            [width, height, width, height], dtype=torch.float32
        )


def _parse_entry(source: Path, name: str, entry: dict) -> ImageAnnotation:
    where = f"{source}: image {name!r}"
    try:
        width, height = (int(v) for v in entry["size"])
        objects = entry["objects"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: expected {{'size': [w, h], 'objects': [...]}} ({err!r})") from err
    tags, boxes = [], []
    for index, obj in enumerate(objects):
        tag, box = str(obj.get("tag", "")).strip(), [float(v) for v in obj.get("box", ())]
        if not tag or len(box) != 4:
            raise ValueError(f"{where}, object {index}: expected a non-empty 'tag' and a 4-number 'box', got {obj}")
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(
                f"{where}, object {index} ({tag}): box {box} must satisfy 0 <= x0 < x1 <= {width} and "
                f"0 <= y0 < y1 <= {height} (pixel xyxy of the {width}x{height} image)"
            )
        tags.append(tag)
        boxes.append((x0, y0, x1, y1))
    return ImageAnnotation(name, str(entry.get("file", name)), (width, height), tuple(tags), tuple(boxes))


def load_annotations(path: str | Path = BUNDLED_ANNOTATIONS) -> dict[str, ImageAnnotation]:
    """Read and validate an annotation file; every problem names the file, the image and the object."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist; it should be JSON like {BUNDLED_ANNOTATIONS}")
    try:
        images = json.loads(path.read_text())["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected JSON with an 'images' mapping ({err})") from err
    return {name: _parse_entry(path, name, entry) for name, entry in images.items()}


def _index(annotations: dict[str, ImageAnnotation], source: Path) -> dict[str, ImageAnnotation]:
    """Entry name and file stem -> annotation, refusing a stem that two entries would share."""
    index: dict[str, ImageAnnotation] = {}
    for annotation in annotations.values():
        for key in {annotation.name, Path(annotation.file).stem}:
            if key in index and index[key] is not annotation:
                raise ValueError(f"{source}: images {index[key].name!r} and {annotation.name!r} both answer to {key!r}")
            index[key] = annotation
    return index


class AnnotationGrounder:
    """Groundings read from an annotation file (the bundled set's by default), mapped through views.

    `missing="error"` (default) refuses an image without an entry; `missing="empty"` gives it an
    empty grounding, for datasets annotated only in part.
    """

    def __init__(self, path: str | Path = BUNDLED_ANNOTATIONS, missing: str = "error") -> None:
        if missing not in ("error", "empty"):
            raise ValueError(f"missing must be 'error' or 'empty', got {missing!r}")
        self.path, self.missing = Path(path), missing
        self.annotations = load_annotations(self.path)
        self._by_key = _index(self.annotations, self.path)

    def lookup(self, key: str) -> ImageAnnotation | None:
        """The entry for an entry name, a file path or a file stem (None if there is none)."""
        return self._by_key.get(key) or self._by_key.get(Path(key).stem)

    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]:
        check_images(images, "grounder 'annotations'")
        batch = images.shape[0]
        if keys is None or len(keys) != batch:
            raise ValueError(
                f"grounder 'annotations' looks images up by key: expected {batch} keys (paths or stems), got "
                f"{None if keys is None else len(keys)}; pass the batch's 'path' entries"
            )
        if views is not None and tuple(views.shape) != (batch, 7):
            raise ValueError(f"grounder 'annotations': views must be ({batch}, 7), got {tuple(views.shape)}")
        return [self._one(images[i], key, None if views is None else views[i]) for i, key in enumerate(keys)]

    def _one(self, image: Tensor, key: str, view: Tensor | None) -> Grounding:
        annotation = self.lookup(key)
        if annotation is None:
            if self.missing == "empty":
                return Grounding.empty()
            raise KeyError(
                f"grounder 'annotations': no entry for {key!r} in {self.path} (looked up by name and file stem); "
                "annotate it, or use missing='empty'"
            )
        width, height = annotation.size
        aspect = width / height
        boxes = annotation.normalised()
        tags = list(annotation.tags)
        if view is None:
            found = image.shape[-1] / image.shape[-2]
            what = f"an image of aspect {found:.3f}"
        else:
            found = float(view[6])
            what = f"a view of an image of aspect {found:.3f}"
        if abs(found / aspect - 1) > ASPECT_TOLERANCE:
            raise ValueError(
                f"grounder 'annotations': {key!r} is annotated as {width}x{height} (aspect {aspect:.3f}) but got "
                f"{what}; a crop needs its dataset 'view' passed as views="
            )
        if view is not None:
            boxes, keep = boxes_in_view(boxes, view)
            tags = [tag for tag, kept in zip(tags, keep.tolist(), strict=True) if kept]
        return Grounding(tags, boxes, torch.ones(len(tags)))
