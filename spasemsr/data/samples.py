"""The bundled sample set: real photos that ship inside installed packages, pinned by checksum.

Tests, the demo and the `tiny` profile need natural images without any download. scikit-image,
scikit-learn and pyiqa install a few photos with their wheels; this module lists them with a fixed
split and a hand-written caption each (the text condition for the diffusion prior), and checks every
file's SHA-256 before use so a different package version cannot silently change the data.
Licences and sources are tabulated in docs/DATA.md.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from spasemsr.data.images import ImageError


@dataclass(frozen=True)
class SampleImage:
    """One bundled photo. `relative_path` is relative to the folder the package is installed into
    (site-packages), because pyiqa's wheel puts its images in top-level folders beside `pyiqa/`."""

    name: str
    package: str
    relative_path: str
    sha256: str
    split: str
    caption: str
    licence: str
    source: str


# import name -> (distribution to install, version whose files the checksums below were taken from)
_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "skimage": ("scikit-image", "0.26.0"),
    "sklearn": ("scikit-learn", "1.9.1"),
    "pyiqa": ("pyiqa", "0.1.16"),
    "matplotlib": ("matplotlib", "3.11.2"),
}

# kodak5: the test set every table uses; unseen: photos no training, tuning or sweep ever reads (a second test)
SPLITS: tuple[str, ...] = ("train", "val", "kodak5", "unseen")

_SKIMAGE_SRC = "scikit-image data, per the docstring of skimage.data."
_SKLEARN_LICENCE = "CC-BY 2.0 (sklearn/datasets/images/README.txt)"
_KODAK_LICENCE = "not stated by pyiqa (pyiqa itself: PolyForm-Noncommercial-1.0.0)"
_KODAK_SRC = (
    "pyiqa names no source; by content Kodak kodim{n}, the image TID2013 uses as reference {tid} "
    "(TID2013 names, 512x384 BMP)"
)
_PYIQA_TEST_LICENCE = "not stated by pyiqa"

# Fields in order: name, package, relative_path, sha256, split, caption, licence, source.
SAMPLES: tuple[SampleImage, ...] = (
    SampleImage(
        "astronaut", "skimage", "skimage/data/astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "train",
        "a smiling astronaut in an orange spacesuit beside a helmet, with an American flag and a model "
        "space shuttle behind her",
        "public domain (NASA); 'No known copyright restrictions'",
        _SKIMAGE_SRC + "astronaut(): NASA Great Images database",
    ),
    SampleImage(
        "chelsea", "skimage", "skimage/data/chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "val",
        "a close-up of a tabby cat with green eyes and long white whiskers",
        "CC0 (photographer Stefan van der Walt)", _SKIMAGE_SRC + "chelsea()",
    ),
    SampleImage(
        "coffee", "skimage", "skimage/data/coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "train",
        "a cup of espresso on a red saucer with a small spoon, on a wooden table",
        "CC0 (photographer Rachel Michetti)", _SKIMAGE_SRC + "coffee(): Pikolo Espresso Bar",
    ),
    SampleImage(
        "rocket", "skimage", "skimage/data/rocket.jpg",
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "train",
        "a white rocket on its launch pad at dusk between tall lattice towers, lit by floodlights",
        "public domain (released by SpaceX)", _SKIMAGE_SRC + "rocket(): SpaceX, DSCOVR on Falcon 9",
    ),
    SampleImage(
        "motorcycle_left", "skimage", "skimage/data/motorcycle_left.png",
        "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", "train",
        "a red motorcycle parked in a garage in front of metal shelves with cardboard boxes",
        "not stated by scikit-image",
        _SKIMAGE_SRC + "stereo_motorcycle(): Middlebury 2014 stereo, left view, 4x down",
    ),
    SampleImage(
        "motorcycle_right", "skimage", "skimage/data/motorcycle_right.png",
        "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797", "train",
        "a red motorcycle parked in a garage beside a wooden bench, metal shelves with boxes behind it",
        "not stated by scikit-image",
        _SKIMAGE_SRC + "stereo_motorcycle(): Middlebury 2014 stereo, right view, 4x down",
    ),
    SampleImage(
        "hubble_deep_field", "skimage", "skimage/data/hubble_deep_field.jpg",
        "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4", "train",
        "a telescope view of deep space full of small distant galaxies on a black background",
        "public domain (NASA)", _SKIMAGE_SRC + "hubble_deep_field(): HubbleSite, eXtreme Deep Field",
    ),
    SampleImage(
        "immunohistochemistry", "skimage", "skimage/data/ihc.png",
        "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef", "train",
        "a microscope image of stained tissue, brown glands among pale blue cell nuclei",
        "'No known copyright restrictions'", _SKIMAGE_SRC + "immunohistochemistry(): CMMI",
    ),
    SampleImage(
        "retina", "skimage", "skimage/data/retina.jpg",
        "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6", "train",
        "a fundus photograph of a human retina, an orange disc with red blood vessels branching from a bright spot, "
        "on black",
        "CC0 1.0 (Wikimedia Commons, per skimage.data.retina)",
        _SKIMAGE_SRC + "retina(): Wikimedia Commons, Fundus_photograph_of_normal_left_eye.jpg (M. Haggstrom)",
    ),
    *(SampleImage(name, "skimage", f"skimage/data/{name}.png", sha, split, caption, licence, _SKIMAGE_SRC + source)
      for name, sha, split, caption, licence, source in (
        ("camera", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", "unseen",
         "a black-and-white photo of a man in a coat looking into a camera on a tripod, on a lawn",
         "CC0 (photographer Lav Varshney)", "camera()"),
        ("moon", "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577", "train",
         "a black-and-white photo of the cratered surface of the moon", "not stated by scikit-image", "moon()"),
        ("coins", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba", "unseen",
         "a black-and-white photo of rows of ancient Greek coins on a grey background",
         "'No known copyright restrictions'", "coins(): Brooklyn Museum Collection"),
        ("brick", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", "train",
         "a black-and-white close-up of a brick wall", "CC0", "brick(): CC0Textures Bricks25"),
        ("grass", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", "train",
         "a black-and-white close-up of blades of grass", "CC0", "grass(): DeviantArt, linolafett Grass-01"),
        ("gravel", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", "train",
         "a black-and-white close-up of gravel stones", "CC0", "gravel(): CC0Textures Gravel04"),
        ("page", "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3", "train",
         "a black-and-white scan of a page of printed text, unevenly lit", "not stated by scikit-image", "page()"),
        ("text", "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1", "train",
         "a black-and-white photo of handwritten equations on lined paper, seen at a slant",
         "public domain ('No known copyright restrictions')", "text(): Wikipedia File:Corner.png"),
        ("cell", "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515", "train",
         "a black-and-white microscope image of a round bright cell floating on a grey banded background",
         "CC0", "cell(): quantitative phase image (Mueller et al.)"),
    )),
    SampleImage(
        "china", "sklearn", "sklearn/datasets/images/china.jpg",
        "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "val",
        "a tall Chinese temple tower with tiled roofs among trees, overlooking a lake on a hazy day",
        _SKLEARN_LICENCE, "Flickr, danielbuechele (photo 6061409035), via scikit-learn",
    ),
    SampleImage(
        "flower", "sklearn", "sklearn/datasets/images/flower.jpg",
        "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "train",
        "an orange dahlia in full bloom against a dark green blurred background",
        _SKLEARN_LICENCE, "Flickr, vultilion (photo 6056698931), via scikit-learn",
    ),
    SampleImage(
        "SPAQ_10241", "pyiqa", "tests/test_efficiency_img_dir/SPAQ_10241.jpg",
        "92e543ec9c71767b1faedbd0d1a1d84ab73de64baaf29c23916adc8e83e4aa12", "train",
        "a dark street on a rainy night under a streetlight, with trees and wet paving stones",
        _PYIQA_TEST_LICENCE, "pyiqa test image; SPAQ smartphone photo dataset, judging by the file name",
    ),
    SampleImage(
        "frame_4wrwr48cdk6rbcjl", "pyiqa", "tests/test_efficiency_img_dir/frame_4wrwr48cdk6rbcjl.jpg",
        "e7ee583b795f997f85b03a16aa797f3495e2fe025563fc34300bd09f6c16b3ae", "train",
        "a formal garden with trimmed hedges, wooden benches and a fountain topped by a blue glass sculpture",
        _PYIQA_TEST_LICENCE, "pyiqa test image (a video frame); origin not stated",
    ),
    SampleImage(
        "frame_7gzdcz9sif0ekg31", "pyiqa", "tests/test_efficiency_img_dir/frame_7gzdcz9sif0ekg31.jpg",
        "9897370815d5a363b232da26e1074acf1f07712bc2f1c273a33ce1b12a6d9dc0", "train",
        "a woman in a long dress walking along a beach at sunset, the sun low over the sea",
        _PYIQA_TEST_LICENCE, "pyiqa test image (a video frame); origin not stated",
    ),
    SampleImage(
        "grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "unseen",
        "a portrait of a woman in a dark navy uniform with ribbons and a white collar, before a dark background",
        "not stated by matplotlib (by content an official US Navy portrait: a US government work)",
        "matplotlib sample_data (matplotlib.cbook.get_sample_data): portrait of Grace Hopper",
    ),
    SampleImage(
        "kodim03", "pyiqa", "ResultsCalibra/ref_dir/I03.bmp",
        "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8", "kodak5",
        "brightly coloured caps hanging on a wooden wall under a blue sky",
        _KODAK_LICENCE, _KODAK_SRC.format(n="03", tid="I03"),
    ),
    SampleImage(
        "kodim04", "pyiqa", "ResultsCalibra/ref_dir/I04.bmp",
        "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f", "kodak5",
        "a portrait of a young blonde woman with blue eyes wearing a red hat and a red scarf",
        _KODAK_LICENCE, _KODAK_SRC.format(n="04", tid="I04"),
    ),
    SampleImage(
        "kodim06", "pyiqa", "ResultsCalibra/ref_dir/I06.bmp",
        "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061", "kodak5",
        "a small weathered sailing boat on green sea water near a shore with palm trees",
        _KODAK_LICENCE, _KODAK_SRC.format(n="06", tid="I06"),
    ),
    SampleImage(
        "kodim08", "pyiqa", "ResultsCalibra/ref_dir/I08.bmp",
        "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab", "kodak5",
        "half-timbered houses with steep red tiled roofs, dormer windows and green shutters",
        _KODAK_LICENCE, _KODAK_SRC.format(n="08", tid="I08"),
    ),
    SampleImage(
        "kodim19", "pyiqa", "ResultsCalibra/ref_dir/I19.bmp",
        "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b", "kodak5",
        "a white lighthouse behind a white picket fence with a red life ring and a coin-operated telescope",
        _KODAK_LICENCE, _KODAK_SRC.format(n="19", tid="I19"),
    ),
)


def _install_hint(package: str) -> str:
    distribution, version = _DISTRIBUTIONS[package]
    try:
        installed = f"installed: {distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        installed = f"{distribution} is not installed"
    return f"{installed}; run `pip install {distribution}=={version}`"


@cache
def _install_root(package: str) -> Path:
    """The folder `package` is installed into, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = _install_hint(package)
        raise ImageError(f"bundled sample set: package {package!r} is not importable; {hint}")
    return Path(next(iter(spec.submodule_search_locations))).parent


def _location(sample: SampleImage) -> Path:
    return _install_root(sample.package) / sample.relative_path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(sample: SampleImage) -> Path:
    """The sample's path, after checking the file is there and is byte-for-byte the expected one."""
    path = _location(sample)
    if not path.is_file():
        raise ImageError(
            f"{path}: bundled sample {sample.name!r} is missing; package {sample.package} should ship it "
            f"as {sample.relative_path} ({_install_hint(sample.package)})"
        )
    found = _sha256(path)
    if found != sample.sha256:
        raise ImageError(
            f"{path}: bundled sample {sample.name!r} fails its checksum (expected sha256 {sample.sha256}, "
            f"found {found}); the file from package {sample.package} differs from the pinned one "
            f"({_install_hint(sample.package)})"
        )
    return path


def sample_paths(split: str) -> list[Path]:
    """Verified paths of one split (see `SPLITS`), in the order of `SAMPLES`."""
    if split not in SPLITS:
        raise ValueError(f"unknown bundled split {split!r}; valid splits are {', '.join(SPLITS)}")
    return [_verified(sample) for sample in SAMPLES if sample.split == split]


def caption_for(path: str | os.PathLike[str]) -> str:
    """The hand-written caption of a bundled sample, looked up by its (resolved) file path."""
    wanted = Path(path).resolve()
    for sample in SAMPLES:
        try:
            location = _location(sample)
        except ImageError:
            continue  # a package that is not installed cannot own this path
        if location.resolve() == wanted:
            return sample.caption
    raise KeyError(
        f"{path} is not a file of the bundled sample set; caption_for knows only the files sample_paths() "
        "returns"
    )
