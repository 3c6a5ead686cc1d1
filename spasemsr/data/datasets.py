"""Torch datasets for x`scale` super-resolution: HR-only folders, paired HR/LR folders, the bundled set.

Every file's header is checked when a dataset is built, so a file that is too small or a pair whose
sizes do not match fails before any DataLoader worker starts. Training items are addressed by
`(index, item_seed)` (what `spasemsr.data.stream.StreamSampler` yields): the seed alone decides the
item's random crop, flip and rotation, so they do not depend on worker processes or on a global RNG,
and a resumed run redraws exactly the crops it would have drawn. A plain integer index draws from the
global torch RNG instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from spasemsr.data.images import ImageError, image_size, list_images, read_image
from spasemsr.data.samples import caption_for, sample_paths

Item = dict[str, torch.Tensor | str]

VIEW_FIELDS: tuple[str, ...] = ("x0", "y0", "x1", "y1", "hflip", "rot90", "aspect")
"""Layout of an item's "view" (float32, 7): the crop window [x0, y0, x1, y1] in full-image coordinates
normalised to [0, 1] (x by width, y by height), then the horizontal flip (0/1) applied to the crop,
then the number of `torch.rot90(dims=(-2, -1))` turns applied after the flip (0-3), then the full
image's width / height. `spasemsr.guidance.grounding.geometry.boxes_in_view` maps boxes through it."""


def _check_geometry(crop_size: int, scale: int) -> None:
    if crop_size <= 0 or scale <= 0:
        raise ValueError(f"crop_size and scale must be positive, got crop_size={crop_size}, scale={scale}")
    if crop_size % scale:
        raise ValueError(
            f"crop_size {crop_size} is not divisible by scale {scale}; the LR crop would be fractional. "
            f"Use a multiple of {scale}, e.g. {crop_size - crop_size % scale or scale}"
        )


Key = int | tuple[int, int]
"""A dataset index, or `(index, item_seed)` to make the item's random draws a function of the seed."""


def _item(key: Key) -> tuple[int, torch.Generator | None]:
    """The index a key names and the generator its random draws use (None: the global torch RNG)."""
    if isinstance(key, tuple):
        index, seed = key
        return int(index), torch.Generator().manual_seed(int(seed))
    return int(key), None


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high) from ``generator`` (or the global torch RNG)."""
    return int(torch.randint(high, (1,), generator=generator).item())


def _augment(images: list[torch.Tensor], generator: torch.Generator | None) -> tuple[list[torch.Tensor], bool, int]:
    """The same random horizontal flip and 90-degree rotation applied to every (C, H, W) tensor.

    Returns the images, whether they were flipped and the number of `rot90` turns, for the item's view.
    """
    flip = _randint(2, generator) == 1
    turns = _randint(4, generator)
    if flip:
        images = [image.flip(-1) for image in images]
    return [image.rot90(turns, dims=(-2, -1)) for image in images], flip, turns


def _view(top: int, left: int, crop: int, height: int, width: int, flip: bool = False, turns: int = 0) -> torch.Tensor:
    """Where an item came from, so full-image annotations can follow it (see `VIEW_FIELDS`)."""
    return torch.tensor(
        [left / width, top / height, (left + crop) / width, (top + crop) / height, float(flip), float(turns),
         width / height],
        dtype=torch.float32,
    )


def _crop_origin(height: int, width: int, crop: int, train: bool,
                 generator: torch.Generator | None = None) -> tuple[int, int]:
    """Top-left corner of a crop x crop window: random in training, centred otherwise."""
    if train:
        return _randint(height - crop + 1, generator), _randint(width - crop + 1, generator)
    return (height - crop) // 2, (width - crop) // 2


class HRFolderDataset(Dataset[Item]):
    """HR-only images (DIV2K/LSDIR layout); the caller degrades the crops online into LR inputs.

    Items are `{"hr": (3, crop_size, crop_size) float in [0, 1], "caption": str, "path": str, "view": (7,)}`
    (`VIEW_FIELDS`: where the crop lies in the full image and how it was flipped and turned).
    Training crops are random, randomly flipped and rotated by multiples of 90 degrees; evaluation
    crops are the deterministic centre crop. `repeat` lists every file that many times per epoch, so
    a small set still fills an epoch of useful length.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        crop_size: int,
        scale: int,
        train: bool,
        captions: Callable[[Path], str] | None = None,
        repeat: int = 1,
    ) -> None:
        _check_geometry(crop_size, scale)
        if repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {repeat}")
        if not paths:
            raise ValueError("HRFolderDataset got an empty list of paths; expected at least one image file")
        self.paths = [Path(path) for path in paths]
        too_small = []
        for path in self.paths:
            width, height = image_size(path)
            if min(width, height) < crop_size:
                too_small.append(f"{path}: image is {width}x{height}, smaller than crop_size {crop_size}")
        if too_small:
            raise ImageError("; ".join(too_small) + ". Use a smaller crop_size or leave these files out")
        self.crop_size, self.scale, self.train = crop_size, scale, train
        self.captions, self.repeat = captions, repeat

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def __getitem__(self, key: Key) -> Item:
        index, generator = _item(key)
        path = self.paths[index % len(self.paths)]
        image = read_image(path)
        height, width = image.shape[-2:]
        if min(height, width) < self.crop_size:
            raise ImageError(
                f"{path}: image is now {width}x{height}, smaller than crop_size {self.crop_size}; the file "
                "changed after the dataset was built"
            )
        top, left = _crop_origin(height, width, self.crop_size, self.train, generator)
        crop = image[:, top : top + self.crop_size, left : left + self.crop_size]
        flip, turns = False, 0
        if self.train:
            (crop,), flip, turns = _augment([crop], generator)
        caption = self.captions(path) if self.captions is not None else ""
        view = _view(top, left, self.crop_size, height, width, flip, turns)
        return {"hr": crop.contiguous(), "caption": caption, "path": str(path), "view": view}


_PAIR_SUFFIX = re.compile(r"(?:[_-](?:hr|lr\d*|x\d+)|(?<=\d)x\d+)$", re.IGNORECASE)


def pair_key(path: Path) -> str:
    """The name HR and LR files are matched on: the stem minus one trailing resolution tag.

    The tag is `_HR`, `_LR`, `_LR<n>` or `_x<n>` (also with "-"), or `x<n>` directly after a digit,
    in any case; at most one is removed. So `Canon_001_HR` / `Canon_001_LR4` (RealSR),
    `DSC_1454_x1` / `DSC_1454_x4` (DRealSR) and `0801` / `0801x4` (DIV2K) each pair up, and files
    with identical stems always do.
    """
    return _PAIR_SUFFIX.sub("", path.stem)


def _keyed(folder: Path) -> dict[str, Path]:
    """`pair_key` -> file for one folder, refusing two files that would claim the same partner."""
    keyed: dict[str, Path] = {}
    for path in list_images(folder):
        key = pair_key(path)
        if key in keyed:
            raise ValueError(f"{keyed[key]} and {path} both pair as {key!r}; keep one of them in {folder}")
        keyed[key] = path
    return keyed


def _listing(paths: list[Path], limit: int = 10) -> str:
    shown = ", ".join(path.name for path in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class PairedFolderDataset(Dataset[Item]):
    """Real HR/LR pairs in two folders (RealSR/DRealSR layout), cropped at the same place.

    Files are matched by `pair_key`. Each LR must be exactly HR / `scale` in both sides. The HR crop
    starts on the LR pixel grid, so the LR crop (crop_size / scale) covers exactly the same scene, and
    both receive the same flip and rotation. Items are
    `{"hr": (3, crop, crop), "lr": (3, crop / scale, crop / scale), "caption": "", "path": HR path,
    "view": (7,)}`, the view in HR coordinates (`VIEW_FIELDS`).
    """

    def __init__(
        self,
        hr_dir: str | os.PathLike[str],
        lr_dir: str | os.PathLike[str],
        crop_size: int,
        scale: int,
        train: bool,
    ) -> None:
        _check_geometry(crop_size, scale)
        hr_files, lr_files = _keyed(Path(hr_dir)), _keyed(Path(lr_dir))
        hr_only = [path for key, path in hr_files.items() if key not in lr_files]
        lr_only = [path for key, path in lr_files.items() if key not in hr_files]
        if hr_only or lr_only:
            raise ValueError(
                f"HR folder {hr_dir} and LR folder {lr_dir} do not pair up (matching rule: "
                "spasemsr.data.datasets.pair_key). "
                f"HR without LR: {_listing(hr_only) or 'none'}. LR without HR: {_listing(lr_only) or 'none'}"
            )
        self.pairs = [(hr_files[key], lr_files[key]) for key in sorted(hr_files)]
        for hr_path, lr_path in self.pairs:
            self._check_pair(hr_path, lr_path, image_size(hr_path), image_size(lr_path), crop_size, scale)
        self.crop_size, self.scale, self.train = crop_size, scale, train

    @staticmethod
    def _check_pair(
        hr_path: Path,
        lr_path: Path,
        hr_size: tuple[int, int],
        lr_size: tuple[int, int],
        crop_size: int,
        scale: int,
    ) -> None:
        expected = (lr_size[0] * scale, lr_size[1] * scale)
        if hr_size != expected:
            raise ImageError(
                f"{hr_path} is {hr_size[0]}x{hr_size[1]} but its LR partner {lr_path} is "
                f"{lr_size[0]}x{lr_size[1]}; at x{scale} the HR must be {expected[0]}x{expected[1]}. "
                "Crop the HR to a multiple of the scale before downsampling, or fix the pairing"
            )
        if min(hr_size) < crop_size:
            raise ImageError(
                f"{hr_path}: image is {hr_size[0]}x{hr_size[1]}, smaller than crop_size {crop_size}. "
                "Use a smaller crop_size or leave this pair out"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Key) -> Item:
        index, generator = _item(key)
        hr_path, lr_path = self.pairs[index]
        hr, lr = read_image(hr_path), read_image(lr_path)
        hr_size, lr_size = (hr.shape[2], hr.shape[1]), (lr.shape[2], lr.shape[1])
        self._check_pair(hr_path, lr_path, hr_size, lr_size, self.crop_size, self.scale)
        lr_crop_size = self.crop_size // self.scale
        top, left = _crop_origin(lr.shape[1], lr.shape[2], lr_crop_size, self.train, generator)
        lr_crop = lr[:, top : top + lr_crop_size, left : left + lr_crop_size]
        hr_top, hr_left = top * self.scale, left * self.scale
        hr_crop = hr[:, hr_top : hr_top + self.crop_size, hr_left : hr_left + self.crop_size]
        flip, turns = False, 0
        if self.train:
            (hr_crop, lr_crop), flip, turns = _augment([hr_crop, lr_crop], generator)
        view = _view(hr_top, hr_left, self.crop_size, hr.shape[1], hr.shape[2], flip, turns)
        return {"hr": hr_crop.contiguous(), "lr": lr_crop.contiguous(), "caption": "", "path": str(hr_path),
                "view": view}


def bundled_dataset(split: str, crop_size: int, scale: int, train: bool, repeat: int = 1) -> HRFolderDataset:
    """The bundled sample set (checksums verified) as an HR dataset with its hand-written captions."""
    return HRFolderDataset(sample_paths(split), crop_size, scale, train, captions=caption_for, repeat=repeat)
