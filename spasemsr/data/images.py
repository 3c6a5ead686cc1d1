"""Image files in and out, with errors that name the file and the cause.

Every reader in spasemsr goes through `read_image`, so a corrupt, truncated or odd file fails the same
way everywhere (one `ImageError`), and every conversion to the (3, H, W) float RGB tensor the models
expect is decided here once.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from spasemsr.utils.atomic import atomic_path

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
"""Suffixes `list_images` picks up (compared case-insensitively)."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error)


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


@contextmanager
def _strict_truncation() -> Iterator[None]:
    """Refuse truncated files even if an import turned PIL's tolerance on.

    `pyiqa.data.ava_dataset` sets `ImageFile.LOAD_TRUNCATED_IMAGES = True` on import, after which
    PIL silently fills the missing part of a truncated file with grey. The flag is process-global, so
    it is switched off only for the duration of one decode and then restored.
    """
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


@contextmanager
def _errors_named(path: Path) -> Iterator[None]:
    """Turn whatever PIL or the OS raises into one `ImageError` that says which file and why."""
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: image is too large to decode safely (PIL: {err})") from err
    except FileNotFoundError as err:
        raise ImageError(f"{path}: file does not exist; check the path") from err
    except IsADirectoryError as err:
        raise ImageError(f"{path}: is a directory, expected an image file") from err
    except PermissionError as err:
        raise ImageError(f"{path}: permission denied while reading ({err})") from err
    except UnidentifiedImageError as err:
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: file is empty (0 bytes); re-copy or regenerate it") from err
        raise ImageError(
            f"{path}: not a recognised image (PIL cannot identify the format); expected an image such as "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        ) from err
    except _DECODE_ERRORS as err:
        cause = "truncated" if "truncated" in str(err).lower() else "corrupt"
        raise ImageError(
            f"{path}: file is {cause} (PIL: {type(err).__name__}: {err}); re-copy or re-download it"
        ) from err


def _to_rgb_array(img: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from any PIL mode we know how to read faithfully."""
    if img.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "I":
        values = np.asarray(img)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise ImageError(
                f"{path}: 32-bit integer pixels span [{low}, {high}], outside the 16-bit range this reader "
                "scales from; convert the file to an 8- or 16-bit PNG"
            )
        gray = values.astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        raise ImageError(
            f"{path}: floating-point image (PIL mode F) has no fixed value range; convert it to an 8- or "
            "16-bit PNG"
        )
    try:
        rgb = img.convert("RGB")
    except ValueError as err:
        raise ImageError(f"{path}: PIL mode {img.mode} cannot be converted to RGB ({err})") from err
    return np.asarray(rgb, dtype=np.float32) / 255.0


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read any common image file as a (3, H, W) float32 RGB tensor in [0, 1].

    Conversions, chosen so that every file yields the same kind of tensor:
    - EXIF orientation is applied first (`PIL.ImageOps.exif_transpose`), so a rotated phone JPEG
      comes out the way it is displayed.
    - Grayscale (L, 1) is replicated to three channels.
    - 16-bit grayscale (I;16 and variants) and 32-bit integer images (mode I, which is how PIL hands
      over some 16-bit files) are scaled by 1/65535, keeping their full precision; mode I values
      outside [0, 65535] and float images (mode F) are refused.
    - 16-bit RGB(A) files (48/64-bit PNG, TIFF) are reduced to 8 bits per channel by PIL itself when
      it opens them; PIL has no 16-bit RGB mode, so that precision is lost before this function sees it.
    - Alpha (RGBA, LA, PA, palette with transparency) is dropped, not composited: the colour values
      under transparent pixels are returned as stored; `read_image_with_extras` also returns the alpha.
    - Palette, CMYK, YCbCr and other PIL modes go through `convert("RGB")` (CMYK without colour
      management); values are taken as they are stored (an embedded ICC profile is not applied;
      `read_image_with_extras` returns it so that outputs can carry it).
    Missing, empty, truncated, corrupt or unrecognised files raise `ImageError` naming the file. PNGs
    are also checked with PIL's `verify()` (chunk checksums, the end marker), which catches damage
    that decoding alone would let through.
    """
    return read_image_with_extras(path)[0]


@dataclass(frozen=True)
class ImageExtras:
    """What ``read_image`` leaves out but an output should keep: the alpha channel and the ICC profile."""

    alpha: torch.Tensor | None  # (1, H, W) float32 in [0, 1], EXIF-oriented like the colour
    icc_profile: bytes | None


def read_image_with_extras(path: str | os.PathLike[str]) -> tuple[torch.Tensor, ImageExtras]:
    """``read_image``'s tensor plus the file's alpha (RGBA, LA, PA, palette with transparency) and ICC profile.

    One verify and one decode of the file, so keeping alpha and colour profile costs no second read.
    """
    path = Path(path)
    with _errors_named(path), _strict_truncation():
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            img.load()
            oriented = ImageOps.exif_transpose(img)
            array = _to_rgb_array(oriented, path)
            alpha = None
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                alpha = torch.from_numpy(np.asarray(oriented.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0)
            extras = ImageExtras(None if alpha is None else alpha[None], img.info.get("icc_profile") or None)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), extras


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as `read_image` would return it, read from the header only (no pixel decode).

    EXIF orientations that swap the axes (5 to 8) are taken into account, so checks such as
    "is this file at least crop_size on each side" agree with what `read_image` later returns.
    """
    path = Path(path)
    with _errors_named(path), Image.open(path) as img:
        width, height = img.size
        if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            width, height = height, width
    return width, height


def _format_for(path: Path) -> str:
    """PIL format name for the file's extension, so the temp file can be written in that format."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the image format from the extension {path.suffix!r}; use one of "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    return fmt


def write_image(tensor: torch.Tensor, path: str | os.PathLike[str], alpha: torch.Tensor | None = None,
                icc_profile: bytes | None = None) -> None:
    """Write a (3, H, W) float tensor in [0, 1] as an 8-bit image, atomically.

    ``alpha`` (1, H, W) in [0, 1] makes it RGBA (formats without alpha, i.e. JPEG, refuse it);
    ``icc_profile`` is embedded as is.

    The format follows the extension (PNG is lossless; JPEG is written at quality 95). Values are
    clamped to [0, 1] and rounded to the nearest of 256 levels, so `read_image` after `write_image`
    gives back an 8-bit tensor exactly. The file is written to a temporary name in the same folder and
    moved into place with `os.replace`, so a crash or a parallel reader never sees half a file.
    Missing parent folders are created.
    """
    path = Path(path)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3 or tensor.shape[0] != 3:
        found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(
            f"write_image({path}): expected a (3, H, W) tensor, got {found}; use tensor[0] for a batch of "
            "one, or tensor.permute(2, 0, 1) for channels-last"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"write_image({path}): expected a float tensor in [0, 1], got dtype {tensor.dtype}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"write_image({path}): tensor contains NaN or infinite values")
    fmt = _format_for(path)
    if alpha is not None:
        if fmt == "JPEG" or alpha.shape != (1, *tensor.shape[1:]):
            raise ValueError(f"write_image({path}): alpha {tuple(alpha.shape)} needs a (1, H, W) tensor matching "
                             f"{tuple(tensor.shape)} and a format with alpha (png, webp, tif), not {fmt}")
        tensor = torch.cat([tensor, alpha.to(tensor)])
    pixels = (tensor.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    image = Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), mode="RGBA" if alpha is not None else "RGB")
    options: dict = {"quality": 95} if fmt == "JPEG" else {}
    if icc_profile:
        options["icc_profile"] = icc_profile

    with atomic_path(path) as temp, open(temp, "wb") as stream:
        image.save(stream, format=fmt, **options)
        stream.flush()
        os.fsync(stream.fileno())


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder` (not recursive), sorted by name.

    Files are picked by extension (`IMAGE_EXTENSIONS`, any case); hidden files (names starting with
    ".", e.g. macOS "._x.png" or an unfinished `write_image` temp file) are skipped. An empty result
    is an error, since a dataset of zero images is never what the caller meant.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist; check the path in your config")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, expected a folder of images")
    found = sorted(
        entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith(".")
    )
    if not found:
        raise FileNotFoundError(
            f"image folder {folder} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}, any case)"
        )
    return found
