"""Image I/O, the bundled sample set and the SR datasets: conversions, clear errors, aligned crops."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile

from spasemsr.data import samples
from spasemsr.data.datasets import HRFolderDataset, PairedFolderDataset, bundled_dataset, pair_key
from spasemsr.data.images import ImageError, image_size, list_images, read_image, write_image
from spasemsr.data.samples import SAMPLES, caption_for, sample_paths


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(folder: Path, name: str, array: np.ndarray, **options: object) -> Path:
    path = folder / name
    Image.fromarray(array).save(path, **options)
    return path


def _truncate(path: Path, keep: int) -> Path:
    """Keep the first `keep` bytes (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


# ---------------------------------------------------------------- read_image: what it refuses


def test_empty_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png: file is empty"):
        read_image(path)


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_file_is_named(tmp_path: Path, name: str) -> None:
    path = _save(tmp_path, name, _rgb(64, 80))
    _truncate(path, path.stat().st_size // 2)
    with pytest.raises(ImageError, match=rf"{name}: file is truncated"):
        read_image(path)


def test_png_missing_its_end_is_refused(tmp_path: Path) -> None:
    """PIL decodes a PNG whose IEND chunk is gone; verify() is what catches it."""
    path = _truncate(_save(tmp_path, "noend.png", _rgb(32, 32)), -12)
    with pytest.raises(ImageError, match="noend.png"):
        read_image(path)


def test_truncation_refused_even_if_pil_tolerance_was_switched_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = _save(tmp_path, "cut.jpg", _rgb(64, 80))
    _truncate(path, path.stat().st_size // 2)
    with pytest.raises(ImageError, match="cut.jpg: file is truncated"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).bytes(600))
    with pytest.raises(ImageError, match="noise.png: not a recognised image"):
        read_image(path)
    with pytest.raises(ImageError, match="noise.png"):
        image_size(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="ghost.png: file does not exist"):
        read_image(tmp_path / "ghost.png")


def test_float_image_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, "float.tif", np.full((4, 4), 0.5, dtype=np.float32))
    with pytest.raises(ImageError, match="float.tif: floating-point image"):
        read_image(path)


# ---------------------------------------------------------------- read_image: conversions


def test_rgb_png_reads_exactly(tmp_path: Path) -> None:
    array = _rgb(20, 30)
    image = read_image(_save(tmp_path, "rgb.png", array))
    assert image.dtype == torch.float32 and image.shape == (3, 20, 30)
    assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1).float() / 255)


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    gray = _rgb(10, 12)[..., 0]
    image = read_image(_save(tmp_path, "gray.png", gray))
    expected = torch.from_numpy(gray).float() / 255
    assert image.shape == (3, 10, 12)
    for channel in image:
        assert torch.equal(channel, expected)


def test_alpha_is_dropped_not_composited(tmp_path: Path) -> None:
    rgba = np.concatenate([_rgb(8, 8), np.zeros((8, 8, 1), np.uint8)], axis=2)  # fully transparent
    image = read_image(_save(tmp_path, "rgba.png", rgba))
    assert torch.equal(image, torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float() / 255)


def test_sixteen_bit_gray_keeps_its_precision(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
    path = _save(tmp_path, "deep.png", values)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert image[0, 0, 0] == 0.0 and image[0, 0, 2] == 1.0
    assert image[0, 0, 1] == pytest.approx(32768 / 65535, abs=1e-7)
    assert image[0, 0, 3] == pytest.approx(1 / 255, abs=1e-7)  # 257 / 65535: not truncated to 8 bits
    assert torch.equal(image[0], image[2])


def test_palette_becomes_its_colours(tmp_path: Path) -> None:
    palette_image = Image.new("P", (4, 2))
    palette_image.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    palette_image.putdata([0, 1, 1, 0, 1, 0, 0, 1])
    palette_image.save(tmp_path / "palette.png")
    image = read_image(tmp_path / "palette.png")
    assert image[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert image[:, 0, 1].tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    array = np.zeros((64, 80, 3), np.uint8)
    array[:32] = 255  # top half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = _save(tmp_path, "phone.jpg", array, exif=exif, quality=95)
    assert Image.open(path).size == (80, 64)
    assert image_size(path) == (64, 80)
    image = read_image(path)
    assert image.shape == (3, 80, 64)
    assert image[:, :, 40:].mean() > 0.95 and image[:, :, :24].mean() < 0.05  # the top went to the right


# ---------------------------------------------------------------- write_image and list_images


def test_write_then_read_is_exact_and_leaves_no_temp_files(tmp_path: Path) -> None:
    array = _rgb(17, 23, seed=3)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    target = tmp_path / "new" / "deeper" / "out.png"
    write_image(tensor, target)
    write_image(tensor, target)  # overwriting goes through the same temp-and-replace path
    assert torch.equal(read_image(target), tensor)
    assert os.listdir(target.parent) == ["out.png"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    write_image(torch.zeros(3, 4, 4), target)
    before = target.read_bytes()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(torch.ones(3, 4, 4), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.png"]


def test_write_refuses_wrong_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected a \(3, H, W\) tensor, got \(4, 4, 3\)"):
        write_image(torch.zeros(4, 4, 3), tmp_path / "x.png")
    with pytest.raises(ValueError, match="extension"):
        write_image(torch.zeros(3, 4, 4), tmp_path / "x.unknown")
    assert os.listdir(tmp_path) == []


def test_list_images_sorted_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.Jpeg", ".hidden.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [path.name for path in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.Jpeg"]


def test_list_images_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path.name} holds no images"):
        list_images(tmp_path)


# ---------------------------------------------------------------- the bundled sample set


def test_bundled_splits_verify_and_have_the_documented_sizes() -> None:
    sizes = {split: sample_paths(split) for split in samples.SPLITS}
    assert len(sizes["kodak5"]) == 5 and len(sizes["val"]) == 2 and len(sizes["train"]) >= 8
    assert all(image_size(path) == (512, 384) for path in sizes["kodak5"])
    assert len({path for paths in sizes.values() for path in paths}) == len(SAMPLES)


def test_bundled_images_have_captions_that_say_which_are_grayscale() -> None:
    assert len({sample.caption for sample in SAMPLES}) == len(SAMPLES)
    for split in samples.SPLITS:
        for path in sample_paths(split):
            image = read_image(path)
            gray = bool((image[0] == image[1]).all() and (image[1] == image[2]).all())
            assert gray == caption_for(path).startswith("a black-and-white"), path
            assert len(caption_for(path).split()) >= 5


def test_unknown_split_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'test'.*train, val, kodak5, unseen"):
        sample_paths("test")


def test_caption_for_a_foreign_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="not a file of the bundled sample set"):
        caption_for(tmp_path / "astronaut.png")


@pytest.fixture
def copied_val_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The val images copied under tmp_path, with the sample set pointed there."""
    copies = {}
    for sample in SAMPLES:
        if sample.split == "val":
            copies[sample.name] = tmp_path / sample.relative_path
            copies[sample.name].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(samples._location(sample), copies[sample.name])
    monkeypatch.setattr(samples, "_install_root", lambda package: tmp_path)
    return copies


def test_corrupted_sample_fails_its_checksum(copied_val_split: dict[str, Path]) -> None:
    assert sample_paths("val") == list(copied_val_split.values())  # intact copies pass
    china = copied_val_split["china"]
    data = bytearray(china.read_bytes())
    data[1000] ^= 0xFF
    china.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"china.jpg: bundled sample 'china' fails its checksum.*sklearn"):
        sample_paths("val")


def test_missing_sample_says_what_to_install(copied_val_split: dict[str, Path]) -> None:
    copied_val_split["chelsea"].unlink()
    expected = r"chelsea.png: .*missing.*skimage.*pip install scikit-image==0\.26\.0"
    with pytest.raises(ImageError, match=expected):
        sample_paths("val")


# ---------------------------------------------------------------- HRFolderDataset


@pytest.fixture
def hr_files(tmp_path: Path) -> list[Path]:
    return [_save(tmp_path, "wide.png", _rgb(40, 56, 1)), _save(tmp_path, "tall.png", _rgb(48, 36, 2))]


def test_hr_crops_have_the_requested_shape(hr_files: list[Path]) -> None:
    dataset = HRFolderDataset(hr_files, 32, 4, train=True, captions=lambda path: path.stem, repeat=3)
    assert len(dataset) == 6
    item = dataset[5]
    assert item["hr"].shape == (3, 32, 32) and item["hr"].dtype == torch.float32
    assert item["caption"] == "tall" and item["path"] == str(hr_files[1])
    assert HRFolderDataset(hr_files, 32, 4, train=False)[0]["caption"] == ""


def test_train_crops_vary_and_follow_the_torch_seed(hr_files: list[Path]) -> None:
    dataset = HRFolderDataset(hr_files, crop_size=32, scale=4, train=True)
    torch.manual_seed(0)
    first = [dataset[0]["hr"] for _ in range(6)]
    torch.manual_seed(0)
    again = [dataset[0]["hr"] for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(first[0], other) for other in first[1:])


def test_eval_crop_is_the_centre(hr_files: list[Path]) -> None:
    dataset = HRFolderDataset(hr_files, crop_size=32, scale=4, train=False)
    full = read_image(hr_files[0])  # 40 x 56 -> centre rows 4..36, columns 12..44
    assert torch.equal(dataset[0]["hr"], full[:, 4:36, 12:44])
    assert torch.equal(dataset[0]["hr"], dataset[0]["hr"])


def test_too_small_image_is_named_with_both_sizes(tmp_path: Path, hr_files: list[Path]) -> None:
    small = _save(tmp_path, "small.png", _rgb(30, 20))
    with pytest.raises(ImageError, match=r"small.png: image is 20x30, smaller than crop_size 32"):
        HRFolderDataset([*hr_files, small], crop_size=32, scale=4, train=True)


def test_crop_must_divide_by_scale(hr_files: list[Path]) -> None:
    with pytest.raises(ValueError, match="crop_size 30 is not divisible by scale 4"):
        HRFolderDataset(hr_files, crop_size=30, scale=4, train=True)


def test_decode_error_in_getitem_names_the_file(hr_files: list[Path]) -> None:
    dataset = HRFolderDataset(hr_files, crop_size=32, scale=4, train=False)
    _truncate(hr_files[1], hr_files[1].stat().st_size // 2)  # header intact, pixels cut
    with pytest.raises(ImageError, match="tall.png: file is truncated"):
        dataset[1]


def test_bundled_dataset_carries_captions_and_pickles() -> None:
    dataset = bundled_dataset("val", crop_size=64, scale=4, train=False, repeat=2)
    assert len(dataset) == 4
    item = dataset[1]
    assert item["hr"].shape == (3, 64, 64)
    assert item["caption"] == caption_for(item["path"])
    assert torch.equal(pickle.loads(pickle.dumps(dataset))[1]["hr"], item["hr"])


# ---------------------------------------------------------------- PairedFolderDataset


def _pooled(hr: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(hr.unsqueeze(0), 4).squeeze(0)


@pytest.fixture
def paired_dirs(tmp_path: Path) -> tuple[Path, Path]:
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for index, (height, width) in enumerate([(48, 64), (64, 40)]):
        hr = torch.from_numpy(_rgb(height, width, seed=10 + index)).permute(2, 0, 1).float() / 255
        write_image(hr, hr_dir / f"scene{index}_HR.png")
        write_image(_pooled(hr), lr_dir / f"scene{index}_LR4.png")
    return hr_dir, lr_dir


@pytest.mark.parametrize("train", [True, False])
def test_paired_crops_are_aligned(paired_dirs: tuple[Path, Path], train: bool) -> None:
    dataset = PairedFolderDataset(*paired_dirs, crop_size=32, scale=4, train=train)
    torch.manual_seed(1)
    for index in [0, 1] * 4:
        item = dataset[index]
        assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8)
        assert item["caption"] == "" and item["path"].endswith(f"scene{index}_HR.png")
        # LR was stored as 8-bit, so it matches the pooled HR crop to half a grey level.
        assert (item["lr"] - _pooled(item["hr"])).abs().max() <= 0.5 / 255 + 1e-6


def test_unmatched_files_are_listed(paired_dirs: tuple[Path, Path]) -> None:
    hr_dir, lr_dir = paired_dirs
    write_image(torch.zeros(3, 32, 32), hr_dir / "lonely_HR.png")
    write_image(torch.zeros(3, 8, 8), lr_dir / "stray_x4.png")
    with pytest.raises(ValueError, match=r"HR without LR: lonely_HR.png\. LR without HR: stray_x4.png"):
        PairedFolderDataset(hr_dir, lr_dir, crop_size=32, scale=4, train=True)


def test_wrong_lr_size_names_both_files(paired_dirs: tuple[Path, Path]) -> None:
    hr_dir, lr_dir = paired_dirs
    write_image(torch.zeros(3, 12, 15), lr_dir / "scene0_LR4.png")
    expected = (
        r"scene0_HR.png is 64x48 but its LR partner .*scene0_LR4.png is 15x12; at x4 the HR must be 60x48"
    )
    with pytest.raises(ImageError, match=expected):
        PairedFolderDataset(hr_dir, lr_dir, crop_size=32, scale=4, train=True)


@pytest.mark.parametrize(
    ("hr_name", "lr_name"),
    [
        ("Canon_001_HR.png", "Canon_001_LR4.png"),  # RealSR
        ("DSC_1454_x1.png", "DSC_1454_x4.png"),  # DRealSR
        ("0801.png", "0801x4.png"),  # DIV2K
    ],
)
def test_pair_key_matches_common_layouts(hr_name: str, lr_name: str) -> None:
    assert pair_key(Path(hr_name)) == pair_key(Path(lr_name))


def test_pair_key_leaves_ordinary_names_alone() -> None:
    assert pair_key(Path("fox12.png")) == "fox12"
