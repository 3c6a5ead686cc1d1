"""Open-vocabulary detectors from transformers (Grounding DINO, OWLv2) as grounders, from local folders.

The paper grounds with Grounded-SAM; these are the open-vocabulary detectors transformers can run
offline. Each loads with `from_pretrained(path, local_files_only=True)` from a folder saved with
`save_pretrained` (model + processor), is asked for a fixed tag vocabulary, and returns boxes
normalised to the input image. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from spasemsr.guidance.grounding.base import Grounding, check_images
from spasemsr.weights import resolve_weights

DEFAULT_VOCABULARY: tuple[str, ...] = (
    "person", "face", "cat", "dog", "bird", "horse", "cow", "car", "bicycle", "motorcycle", "boat", "airplane",
    "bus", "truck", "train", "rocket", "house", "building", "tower", "lighthouse", "bridge", "fountain", "tree",
    "flower", "hat", "helmet", "cup", "bottle", "chair", "bench", "table", "box", "shelf", "fence", "sign",
    "flag", "lamp", "window", "sun", "sea", "beach", "mountain",
)
"""Tags asked for when no `vocabulary` is given: common objects and the scene parts SR images show."""

_CHECKPOINTS = {
    "owlv2": "an OWLv2 model and Owlv2Processor saved with save_pretrained (config.json, model.safetensors, "
             "(pre)processor_config.json, CLIP tokenizer files), e.g. google/owlv2-base-patch16-ensemble",
    "grounding_dino": "a Grounding DINO model and processor saved with save_pretrained (config.json, "
                      "model.safetensors, (pre)processor_config.json, BERT tokenizer files), e.g. "
                      "IDEA-Research/grounding-dino-tiny",
}


def _checkpoint(kind: str, path: str | None) -> Path:
    """The checkpoint folder, or an error naming the path and what belongs in it."""
    what = f"{kind} grounder weights: {_CHECKPOINTS[kind]}"
    if not path:
        raise FileNotFoundError(f"grounder {kind!r} needs option path=<folder with {_CHECKPOINTS[kind]}>")
    folder = resolve_weights(str(path), what)
    names = ("config.json", "processor_config.json", "preprocessor_config.json")
    has = {name: (folder / name).is_file() for name in names}
    if not has["config.json"] or not (has["processor_config.json"] or has["preprocessor_config.json"]):
        found = ", ".join(sorted(entry.name for entry in folder.iterdir())[:8]) if folder.is_dir() else "a file"
        raise FileNotFoundError(
            f"{folder}: needs config.json and (pre)processor_config.json, found {found or 'nothing'}; "
            f"it should hold {what}"
        )
    return folder


def _vocabulary(vocabulary: Sequence[str] | str | None) -> tuple[str, ...]:
    if vocabulary is None:
        return DEFAULT_VOCABULARY
    words = vocabulary.split(",") if isinstance(vocabulary, str) else vocabulary
    tags = tuple(dict.fromkeys(word.strip().lower() for word in words if word.strip()))
    if not tags:
        raise ValueError(f"vocabulary is empty ({vocabulary!r}); give a list of tags or a comma-separated string")
    return tags


@dataclass
class DetectorOptions:
    """The options both detectors take (``grounder_options.owlv2`` / ``.grounding_dino``, besides ``path``)."""

    vocabulary: list[str] | str | None = None  # tags to ask for (None: the built-in vocabulary)
    box_threshold: float = 0.3
    text_threshold: float = 0.25  # Grounding DINO's phrase threshold
    nms_iou: float = 0.5
    max_detections: int = 8


class TransformersDetector:
    """A transformers zero-shot detector asked for `vocabulary`, with class-aware NMS on its output."""

    def __init__(
        self,
        kind: str,
        processor: Any,
        model: torch.nn.Module,
        options: DetectorOptions | None = None,
        device: str = "cpu",
    ) -> None:
        options = options or DetectorOptions()
        self.kind, self.processor, self.device = kind, processor, torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocabulary = _vocabulary(options.vocabulary)
        self.box_threshold, self.text_threshold = options.box_threshold, options.text_threshold
        self.nms_iou, self.max_detections = options.nms_iou, options.max_detections

    @torch.inference_mode()
    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]:
        check_images(images, f"grounder {self.kind!r}")
        height, width = images.shape[-2:]
        arrays = list(images.mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        sizes, queries = [(height, width)] * len(arrays), [list(self.vocabulary)] * len(arrays)
        if self.kind == "owlv2":
            inputs = self.processor(text=queries, images=arrays, return_tensors="pt")
            outputs = self.model(**inputs.to(self.device))
            results = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.box_threshold, target_sizes=sizes, text_labels=queries
            )
        else:
            prompt = ". ".join(self.vocabulary) + "."
            inputs = self.processor(images=arrays, text=[prompt] * len(arrays), return_tensors="pt")
            outputs = self.model(**inputs.to(self.device))
            results = self.processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
                target_sizes=sizes,
            )
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        return [self._grounding(result, scale) for result in results]

    def _tag(self, phrase: str) -> str:
        """A detector phrase as a vocabulary tag (Grounding DINO may return partial or joined phrases)."""
        phrase = phrase.strip().lower()
        if phrase in self.vocabulary:
            return phrase
        inside = [tag for tag in self.vocabulary if tag in phrase]
        return max(inside, key=len) if inside else phrase

    def _grounding(self, result: dict[str, Any], scale: Tensor) -> Grounding:
        tags = [self._tag(phrase) for phrase in result["text_labels"]]
        boxes, scores = result["boxes"].float().cpu(), result["scores"].float().cpu()
        named = [i for i, tag in enumerate(tags) if tag]
        tags, boxes, scores = [tags[i] for i in named], boxes[named], scores[named]
        if not tags:
            return Grounding.empty()
        boxes = (boxes / scale).clamp(0, 1)
        boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, :2], boxes[:, 2:])], dim=1)
        ids = torch.tensor([sorted(set(tags)).index(tag) for tag in tags])
        keep = batched_nms(boxes, scores, ids, self.nms_iou).tolist()
        return Grounding([tags[i] for i in keep], boxes[keep], scores[keep]).top(self.max_detections)


def load_owlv2(path: str | None = None, device: str = "cpu", **options: Any) -> TransformersDetector:
    """OWLv2 (`Owlv2Processor` + `Owlv2ForObjectDetection`) from a local folder; options: `DetectorOptions`."""
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    folder = _checkpoint("owlv2", path)
    processor = Owlv2Processor.from_pretrained(str(folder), local_files_only=True)
    model = Owlv2ForObjectDetection.from_pretrained(str(folder), local_files_only=True)
    return TransformersDetector("owlv2", processor, model, DetectorOptions(**options), device)


def load_grounding_dino(path: str | None = None, device: str = "cpu", **options: Any) -> TransformersDetector:
    """Grounding DINO (`AutoProcessor` + `AutoModelForZeroShotObjectDetection`); options: `DetectorOptions`."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    folder = _checkpoint("grounding_dino", path)
    processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(str(folder), local_files_only=True)
    return TransformersDetector("grounding_dino", processor, model, DetectorOptions(**options), device)


load_owlv2.Options = load_grounding_dino.Options = DetectorOptions  # what their **options are (config check)
