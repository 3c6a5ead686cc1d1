"""Evaluation sets by name: full images, LR made deterministically, and a hash that pins both (DESIGN.md §5).

- ``kodak5`` (and ``unseen``, the bundled photos nothing trains or tunes on): the bundled HR images, LR made
  in code by ``lr`` = ``realesrgan`` (the default Real-ESRGAN second-order pipeline, one fixed seed per image
  name) or ``bicubic`` (torch bicubic, antialiased, ÷scale, 8-bit).
- ``probe``: the guidance probe's world (``spasemsr.data.probe``, issue #19), generated from seeds: no files; its
  LR comes from the probe's degradation, and each image carries its key and true degradation (``Known``).
- ``hr_folder:DIR``: any HR-only folder (DIV2K-Val style), degraded the same way.
- paired folders (``hr_dir`` + ``lr_dir``): files matched by ``pair_key``, LR read as is. Where the HR
  is larger than LR×scale it is cropped to LR×scale from the top-left (BasicSR's modcrop), and the
  set's ``notes`` say so; a smaller HR is an error.
Generated LRs come from the HR cropped top-left to a multiple of the scale. Every set's ``hash`` is a
SHA-256 over its sorted (name, HR file SHA-256, LR recipe) entries, so a different image, crop,
degradation setting or seed gives a different hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from spasemsr.data import probe
from spasemsr.data.datasets import _keyed
from spasemsr.data.degradation import DegradationConfig, RealESRGANDegradation
from spasemsr.data.images import ImageError, image_size, list_images, read_image
from spasemsr.data.resize import bicubic_down
from spasemsr.data.samples import SAMPLES, sample_paths
from spasemsr.diffusion.conditions import Known
from spasemsr.metrics.color import quantize_8bit
from spasemsr.training.manifest import file_sha256

LR_RECIPES = ("realesrgan", "bicubic")
BUNDLED_SETS = ("kodak5", "unseen")  # unseen: photos no training, tuning or sweep reads (docs/DATA.md)


@dataclass(frozen=True)
class EvalEntry:
    """One image of a set: where its HR is, the (H, W) it is evaluated at, and how its LR is obtained."""

    name: str
    hr_path: Path | None  # None: generated in code from the name (the probe world)
    hr_sha256: str
    hr_size: tuple[int, int]
    recipe: str
    lr_path: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class EvalImage:
    """A loaded pair: HR (3, H, W) and LR (3, H/scale, W/scale), both in [0, 1], and what else is known of it."""

    name: str
    hr: Tensor
    lr: Tensor
    known: Known | None = None


@dataclass(frozen=True)
class EvalSet:
    """A named evaluation set; iterating loads one pair at a time, so a large folder never sits in memory."""

    name: str
    lr: str
    scale: int
    entries: tuple[EvalEntry, ...]
    notes: tuple[str, ...] = ()

    @property
    def hash(self) -> str:
        """SHA-256 over the sorted (name, HR SHA-256, LR recipe) entries."""
        rows = sorted((e.name, e.hr_sha256, e.recipe) for e in self.entries)
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()

    def record(self) -> dict:
        """What a result file says about the set it was measured on."""
        return {"name": self.name, "lr": self.lr, "hash": self.hash, "images": len(self.entries)}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def smallest(self) -> tuple[int, int]:
        """(H, W) of the HR with the shortest side: what size limits of metrics are checked against."""
        return min((entry.hr_size for entry in self.entries), key=min)

    def head(self, images: int = 0, crop: int = 0) -> EvalSet:
        """The first ``images`` entries (0: all), each HR cut top-left to at most ``crop`` pixels a side (0: whole).

        A quick subset for smoke runs; the new size enters each recipe, so the hash tells it apart.
        """
        entries = self.entries[:images] if images else self.entries
        if crop:
            if crop % self.scale or any(e.lr_path is not None or e.hr_path is None for e in entries):
                raise ValueError(f"{self.name}: crop={crop} needs HR files, LRs made in code and a multiple of "
                                 f"x{self.scale}")
            entries = tuple(replace(e, hr_size=(min(e.hr_size[0], crop), min(e.hr_size[1], crop)),
                                    recipe=f"{e.recipe};cut top-left to {crop}") for e in entries)
        return replace(self, entries=tuple(entries))

    def verify(self) -> None:
        """Decode every HR and LR file in full before anything runs; raise one ``ImageError`` naming every bad one.

        Building a set reads only headers (sizes); a file can have a good header and a truncated or corrupt
        body, which an evaluation would otherwise meet only when it reaches that image.
        """
        problems = []
        for entry in self.entries:
            for path in (entry.hr_path, entry.lr_path):
                if path is None:
                    continue
                try:
                    read_image(path)
                except ImageError as err:
                    problems.append(str(err))
        if problems:
            raise ImageError(f"{self.name}: {len(problems)} image(s) cannot be decoded, nothing was evaluated: "
                             + "; ".join(problems))

    def __iter__(self) -> Iterator[EvalImage]:
        return (self._load(entry) for entry in self.entries)

    def _load(self, entry: EvalEntry) -> EvalImage:
        if entry.hr_path is None:
            hr = probe.render(probe.seed_of(entry.name))
            lr, params = RealESRGANDegradation(probe.probe_degradation(), self.scale)(hr[None], _seeded(entry.name))
            return EvalImage(entry.name, hr, lr[0], Known([entry.name], params))
        height, width = entry.hr_size
        hr = read_image(entry.hr_path)[:, :height, :width]
        if entry.lr_path is not None:
            lr = read_image(entry.lr_path)
        else:
            lr = degraded_lr(hr, entry.name, self.lr, self.scale)
        return EvalImage(entry.name, hr, lr, Known([entry.name]))


def degraded_lr(hr: Tensor, name: str, recipe: str, scale: int = 4) -> Tensor:
    """The LR a generated set makes of ``hr`` (sides a multiple of ``scale``): 8-bit bicubic, or the Real-ESRGAN
    degradation seeded by the image's name alone."""
    if recipe == "bicubic":
        return quantize_8bit(bicubic_down(hr[None], scale))[0].float()
    return RealESRGANDegradation(DegradationConfig(), scale)(hr[None], _seeded(name))[0][0]


def _seeded(name: str) -> torch.Generator:
    return torch.Generator().manual_seed(image_seed(name))


def image_seed(name: str) -> int:
    """The fixed degradation seed of an image, from its name alone (adding images never changes others' LR)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def _degradation_fingerprint() -> str:
    """Short hash of the default Real-ESRGAN settings, so changing them changes every dataset hash."""
    return hashlib.sha256(repr(DegradationConfig()).encode()).hexdigest()[:12]


def _generated(name: str, files: list[tuple[str, Path]], lr: str, scale: int) -> EvalSet:
    """A set whose LRs are made in code from the HR files by recipe ``lr``."""
    if lr not in LR_RECIPES:
        raise ValueError(f"unknown LR recipe {lr!r} for {name}; valid: {', '.join(LR_RECIPES)}")
    entries, notes = [], []
    for key, path in files:
        width, height = image_size(path)
        size = (height - height % scale, width - width % scale)
        if min(size) == 0:
            raise ImageError(f"{path}: {width}x{height} is smaller than the scale {scale}; leave it out of {name}")
        if size != (height, width):
            notes.append(f"{key}: HR {width}x{height} cropped top-left to {size[1]}x{size[0]} (a multiple of {scale})")
        if lr == "bicubic":
            recipe = f"hr={size[1]}x{size[0]};lr=torch bicubic antialias /{scale}, 8-bit"
        else:
            recipe = (f"hr={size[1]}x{size[0]};lr=realesrgan default cfg {_degradation_fingerprint()} /{scale}, "
                      f"seed {image_seed(key)}")
        entries.append(EvalEntry(key, path, file_sha256(path), size, recipe, seed=image_seed(key)))
    return EvalSet(name, lr, scale, tuple(entries), tuple(notes))


def bundled_set(split: str = "kodak5", lr: str = "realesrgan", scale: int = 4) -> EvalSet:
    """A bundled sample split (checksums verified) with LR made in code."""
    if split not in BUNDLED_SETS:
        raise ValueError(f"unknown evaluation set {split!r}; valid: {', '.join(BUNDLED_SETS)}, hr_folder:DIR, or "
                         "--hr DIR --lr DIR for real pairs")
    names = [sample.name for sample in SAMPLES if sample.split == split]
    return _generated(split, list(zip(names, sample_paths(split), strict=True)), lr, scale)


PROBE_IMAGES = 16


def probe_set(images: int = PROBE_IMAGES, scale: int = 4) -> EvalSet:
    """The guidance probe's evaluation images ``probe-<seed>`` (seeds past the validation ones), rendered in code."""
    if scale != 4:
        raise ValueError(f"the probe world is x4, not x{scale}")
    entries, fingerprint = [], hashlib.sha256(repr(probe.probe_degradation()).encode()).hexdigest()[:12]
    for index in range(images):
        name = f"{probe.PREFIX}{probe.VAL_SEED + probe.EVAL_OFFSET + index}"
        pixels = probe.render(probe.seed_of(name)).numpy().tobytes()
        recipe = f"probe world {probe.SIZE}px;lr=configs/degradation/probe.yaml {fingerprint}, seed {image_seed(name)}"
        entries.append(EvalEntry(name, None, hashlib.sha256(pixels).hexdigest(), (probe.SIZE, probe.SIZE), recipe,
                                 seed=image_seed(name)))
    return EvalSet("probe", "probe", scale, tuple(entries))


def hr_folder_set(folder: str | Path, lr: str = "realesrgan", scale: int = 4) -> EvalSet:
    """An HR-only folder (e.g. DIV2K-Val) with LR made in code; images are named by file stem."""
    files = list_images(folder)
    stems = [path.stem for path in files]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        raise ValueError(f"{folder}: several files share the stem(s) {clashes}; keep one file per name")
    return _generated(f"hr_folder:{Path(folder).name}", list(zip(stems, files, strict=True)), lr, scale)


def paired_set(hr_dir: str | Path, lr_dir: str | Path, scale: int = 4) -> EvalSet:
    """Real HR/LR pairs (RealSR/DRealSR layout), full images, matched by ``pair_key``."""
    hr_files, lr_files = _keyed(Path(hr_dir)), _keyed(Path(lr_dir))
    unmatched = sorted(set(hr_files) ^ set(lr_files))
    if unmatched:
        raise ValueError(
            f"HR folder {hr_dir} and LR folder {lr_dir} do not pair up: {unmatched[:10]} have no partner (names "
            "match after one resolution tag is dropped, see spasemsr.data.datasets.pair_key)"
        )
    entries, notes = [], []
    for key in sorted(hr_files):
        hr_path, lr_path = hr_files[key], lr_files[key]
        (hr_w, hr_h), (lr_w, lr_h) = image_size(hr_path), image_size(lr_path)
        size = (lr_h * scale, lr_w * scale)
        if hr_h < size[0] or hr_w < size[1]:
            raise ImageError(
                f"{hr_path} is {hr_w}x{hr_h}, smaller than its LR {lr_path} ({lr_w}x{lr_h}) x{scale} = "
                f"{size[1]}x{size[0]}; fix the pairing or the scale"
            )
        if size != (hr_h, hr_w):
            notes.append(f"{key}: HR {hr_w}x{hr_h} cropped top-left to LRx{scale} = {size[1]}x{size[0]}")
        recipe = f"hr={size[1]}x{size[0]};lr=file sha256 {file_sha256(lr_path)}"
        entries.append(EvalEntry(key, hr_path, file_sha256(hr_path), size, recipe, lr_path))
    return EvalSet(f"paired:{Path(hr_dir).name}", "paired", scale, tuple(entries), tuple(notes))


def load_eval_set(data: str | None = None, hr: str | None = None, lr_dir: str | None = None,
                  degrade: str = "realesrgan", scale: int = 4) -> EvalSet:
    """The set named on the command line: ``kodak5``, ``hr_folder:DIR``, or paired ``hr`` + ``lr_dir``."""
    if data is None and hr is not None and lr_dir is not None:
        return paired_set(hr, lr_dir, scale)
    if data is None or hr is not None or lr_dir is not None:
        raise ValueError(
            f"give either a named set ({', '.join(BUNDLED_SETS)} or hr_folder:DIR) or both HR and LR folders; got "
            f"data={data!r}, hr={hr!r}, lr={lr_dir!r}"
        )
    if data == "probe":
        return probe_set(scale=scale)
    if data.startswith("hr_folder:"):
        return hr_folder_set(data.removeprefix("hr_folder:"), degrade, scale)
    return bundled_set(data, degrade, scale)
