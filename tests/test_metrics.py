"""The metric registry: BasicSR-style fidelity agrees with pyiqa, NIQE runs offline, absent weights are reported."""

from __future__ import annotations

import math
import os
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyiqa  # noqa: E402  (after HF_HUB_OFFLINE, so the hub client reads it)

from spasemsr.data.images import read_image  # noqa: E402
from spasemsr.data.resize import bicubic_down  # noqa: E402
from spasemsr.data.samples import sample_paths  # noqa: E402
from spasemsr.metrics import fidelity  # noqa: E402
from spasemsr.metrics.availability import MetricUnavailable  # noqa: E402
from spasemsr.metrics.color import rgb_to_y  # noqa: E402
from spasemsr.metrics.niqe import NIQE_PARAMS  # noqa: E402
from spasemsr.metrics.pyiqa_backend import no_downloads  # noqa: E402
from spasemsr.metrics.registry import METRICS, available, compute, lower_better  # noqa: E402

LEARNED = ("lpips", "dists", "musiq", "maniqa", "clipiqa", "pi")


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, so the degraded copy needs nothing beyond torch."""
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=img.dtype) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)
    padded = F.pad(img, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(padded, taps.view(3, 1, 1, -1), groups=3), taps.view(3, 1, -1, 1), groups=3)


def _to_8bit(img: torch.Tensor) -> torch.Tensor:
    return (img.clamp(0, 1) * 255).round() / 255


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    """Three bundled Kodak photos, centre 256x256 crops (the files are 8-bit, so already quantised)."""
    images = [read_image(path) for path in sample_paths("kodak5")[:3]]
    return torch.stack([img[:, 64:320, 128:384] for img in images])


@pytest.fixture(scope="module")
def degraded(hr: torch.Tensor) -> torch.Tensor:
    """A blurred, noisy 8-bit copy (seeded), standing in for an SR output."""
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))
    return _to_8bit(_blur(hr, 1.2) + 0.02 * noise)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch.hub, pyiqa and the HF hub at empty folders, so 'absent' holds on any machine."""
    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as pyiqa_download

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pyiqa_download, "DEFAULT_CACHE_DIR", str(tmp_path / "torch" / "hub" / "pyiqa"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def test_rgb_to_y_is_bt601_studio_range():
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    y = rgb_to_y(corners.view(3, 3, 1, 1)).flatten()
    assert torch.allclose(y, torch.tensor([16 / 255, 235 / 255, (16 + 65.481) / 255], dtype=torch.float64))


def test_psnr_y_matches_pyiqa_ycbcr_psnr_and_psnry(hr, degraded):
    # eps=0: pyiqa's default 1e-8 on the [0, 1] MSE shifts a 35 dB score by about 1.3e-4 dB.
    ycbcr = pyiqa.create_metric("psnr", test_y_channel=True, color_space="ycbcr", crop_border=4, eps=0.0, device="cpu")
    ours = fidelity.psnr_y(degraded, hr, crop=4)
    assert ours.shape == (3,) and bool((ours > 20).all())
    assert torch.allclose(ours, ycbcr(degraded.double(), hr.double()).flatten(), rtol=0, atol=1e-4)
    # pyiqa's `psnry` preset takes Y from YIQ: full range, so every difference is 255/219 larger than
    # on the studio-range BT.601 Y and it reads exactly 20 log10(255/219) dB lower.
    psnry = pyiqa.create_metric("psnry", crop_border=4, eps=0.0, device="cpu")
    gap = ours - psnry(degraded.double(), hr.double()).flatten()
    assert torch.allclose(gap, torch.full_like(gap, 20 * math.log10(255 / 219)), rtol=0, atol=1e-4)


def test_ssim_y_matches_pyiqa_ssim(hr, degraded):
    theirs = pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", crop_border=4, device="cpu")
    ours = fidelity.ssim_y(degraded, hr, crop=4)
    assert bool((ours < 0.99).all()) and bool((ours > 0.3).all())
    assert torch.allclose(ours, theirs(degraded.double(), hr.double()).flatten(), rtol=0, atol=1e-4)
    # invented texture (here: the mirrored photo) is locally anti-correlated with the truth, where pyiqa
    # clamps the contrast-structure term at 0; agreeing there too pins that choice
    invented = hr.flip(-1)
    ours = fidelity.ssim_y(invented, hr, crop=4)
    assert torch.allclose(ours, theirs(invented.double(), hr.double()).flatten(), rtol=0, atol=1e-4)
    assert bool((ours < 0.6).all())


def test_identical_images_give_inf_psnr_and_unit_ssim(hr):
    assert torch.isinf(fidelity.psnr_y(hr, hr)).all() and torch.isinf(fidelity.psnr_rgb(hr, hr)).all()
    assert torch.allclose(fidelity.ssim_y(hr, hr), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(fidelity.ms_ssim(hr, hr), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-6)


def test_rgb_fidelity_orders_and_guards(hr, degraded):
    assert bool((fidelity.psnr_rgb(degraded, hr) < 40).all())
    assert bool((fidelity.ms_ssim(degraded, hr) < 1).all())
    with pytest.raises(ValueError, match="176 pixels"):
        fidelity.ms_ssim(hr[..., :128, :128], hr[..., :128, :128])
    with pytest.raises(ValueError, match="same shape"):
        fidelity.psnr_y(hr[..., :128], hr)


def test_lr_consistency_flags_hallucination(hr):
    from spasemsr.restore.baselines import bicubic_upscale

    lr = _to_8bit(bicubic_down(hr, 4))
    faithful = bicubic_upscale(lr, 4)
    blobs = torch.rand((3, 3, 64, 64), generator=torch.Generator().manual_seed(1)) - 0.5
    hallucinated = (faithful + 0.2 * F.interpolate(blobs, scale_factor=4, mode="nearest")).clamp(0, 1)
    good = compute("lr_consistency", faithful, lr=lr, scale=4)
    bad = compute("lr_consistency", hallucinated, lr=lr, scale=4)
    assert bool((good > 35).all()), good
    assert bool((bad < good - 10).all()), (good, bad)
    with pytest.raises(ValueError, match="upscaled x4"):
        fidelity.lr_consistency(faithful[..., :200], lr, 4)


def test_niqe_is_pyiqa_with_vendored_params_and_prefers_sharp(hr):
    direct = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(NIQE_PARAMS))
    ours = compute("niqe", hr)
    assert ours.shape == (3,)
    assert torch.equal(ours, direct(hr).flatten().double())
    blurred = compute("niqe", _to_8bit(_blur(hr, 2.0)))
    assert bool((ours < blurred).all()), (ours, blurred)


def test_piqe_runs_offline(hr, degraded):
    scores = compute("piqe", torch.cat([hr, degraded]))
    assert scores.shape == (6,) and bool(torch.isfinite(scores).all())


@pytest.mark.parametrize("name", LEARNED)
def test_learned_metrics_report_missing_files(name, hr, empty_caches):
    ready, reason = available(name)
    assert not ready
    for file in METRICS[name].weights:
        assert file.name in reason
    assert str(empty_caches) in reason and "pyiqa downloads them" in reason
    with pytest.raises(MetricUnavailable, match=name):
        compute(name, hr, hr=hr)


def test_weights_on_disk_are_detected_and_clip_digest_checked(empty_caches):
    (file,) = METRICS["musiq"].weights
    file.location().parent.mkdir(parents=True)
    file.location().write_bytes(b"stand-in")
    assert available("musiq")[0]
    (clip,) = METRICS["clipiqa"].weights
    clip.location().parent.mkdir(parents=True)
    clip.location().write_bytes(b"not the RN50 checkpoint")  # CLIP would re-download a file with the wrong digest
    assert not available("clipiqa")[0]


def test_pinned_weight_names_match_the_installed_loaders():
    import torchvision.models as tv
    from pyiqa.archs import clip_model, dists_arch, lpips_arch, maniqa_arch, musiq_arch, niqe_arch, nrqm_arch
    from timm.models import get_pretrained_cfg

    def names(metric: str) -> set[str]:
        return {file.name for file in METRICS[metric].weights}

    def base(url: str) -> str:
        return url.rsplit("/", 1)[-1]

    alexnet = tv.AlexNet_Weights.IMAGENET1K_V1.url
    assert names("lpips") == {base(lpips_arch.default_model_urls["0.1_alex"]), base(alexnet)}
    assert names("dists") == {base(dists_arch.default_model_urls["url"]), base(tv.VGG16_Weights.IMAGENET1K_V1.url)}
    assert names("musiq") == {base(musiq_arch.default_model_urls["koniq10k"])}
    assert base(maniqa_arch.default_model_urls["koniq"]) in names("maniqa")
    (hub_file,) = [file for file in METRICS["maniqa"].weights if file.store == "hf"]
    assert hub_file.repo == get_pretrained_cfg("vit_base_patch8_224").hf_hub_id
    (clip,) = METRICS["clipiqa"].weights
    assert clip_model._MODELS["RN50"].endswith(f"{clip.sha256}/{clip.name}")
    assert names("pi") == {base(nrqm_arch.default_model_urls["url"]), base(niqe_arch.default_model_urls["url"])}


def test_directions_and_kinds():
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    expected_lower = {"niqe", "piqe", "lpips", "dists", "pi", "dark_dots", "new_dark_dots"}
    assert {name for name in METRICS if lower_better(name)} == expected_lower
    for name in ("niqe", "piqe", *LEARNED):
        assert METRICS[name].lower_better == DEFAULT_CONFIGS[name].get("lower_better", False), name
    kinds = {name: spec.kind for name, spec in METRICS.items()}
    assert [n for n, k in kinds.items() if k == "full_ref"] == ["psnr_y", "ssim_y", "psnr_rgb", "ms_ssim",
                                                                  "new_dark_dots", "texture_acc", "lpips", "dists"]
    assert kinds["lr_consistency"] == "lr_ref"
    assert all(spec.variant.startswith(f"{name}: ") for name, spec in METRICS.items())


def test_unknown_metric_and_missing_reference(hr):
    with pytest.raises(ValueError, match="valid metrics are: psnr_y, ssim_y.*niqe.*maniqa"):
        compute("psnr", hr, hr=hr)
    with pytest.raises(ValueError, match="hr= the ground truth"):
        compute("psnr_y", hr)
    with pytest.raises(ValueError, match="lr= the LR input"):
        compute("lr_consistency", hr)


def test_download_guard_refuses_and_restores(tmp_path):
    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as pyiqa_download
    import torch.hub

    originals = (torch.hub.download_url_to_file, pyiqa_download.download_url_to_file, urllib.request.urlopen)
    unroutable = "http://127.0.0.1:9/never.pth"  # nothing listens there, so even a broken guard fetches nothing
    with no_downloads("example"):
        assert hf_constants.is_offline_mode()
        with pytest.raises(MetricUnavailable, match="never.pth"):
            pyiqa_download.load_file_from_url(unroutable, model_dir=str(tmp_path))
        with pytest.raises(MetricUnavailable, match="never.pth"):
            torch.hub.load_state_dict_from_url(unroutable, model_dir=str(tmp_path))
        with pytest.raises(MetricUnavailable):
            urllib.request.urlopen(unroutable)
    assert (torch.hub.download_url_to_file, pyiqa_download.download_url_to_file, urllib.request.urlopen) == originals


@pytest.mark.parametrize("scale", [2, 4])
def test_each_metric_scores_down_to_its_declared_smallest_size_and_not_below(scale):
    from spasemsr.metrics.registry import METRICS, available, compute, too_small

    probed = [name for name, spec in METRICS.items() if spec.min_side is not None and available(name)[0]]
    assert {"psnr_y", "ssim_y", "lr_consistency", "niqe"} <= set(probed)

    def scores(name: str, side: int) -> bool:
        g = torch.Generator().manual_seed(side)
        sr, hr = torch.rand(1, 3, side, side, generator=g), torch.rand(1, 3, side, side, generator=g)
        lr = torch.rand(1, 3, max(side // scale, 1), max(side // scale, 1), generator=g)
        try:
            compute(name, sr, hr=hr, lr=lr, scale=scale)
        except (ValueError, RuntimeError):
            return False
        return True

    for name in probed:
        smallest = METRICS[name].min_side(scale)
        assert scores(name, smallest), (name, smallest)
        assert too_small(name, smallest, smallest + 5, scale) is None
        if smallest > scale:  # below it the metric cannot score, and says so up front
            assert not scores(name, smallest - scale if name == "lr_consistency" else smallest - 1), name
            assert f"at least {smallest} pixels" in too_small(name, smallest - 1, 500, scale)


def _flat_with_dots(centres: list[tuple[int, int]], side: int = 64, size: int = 2) -> torch.Tensor:
    """A flat mid-grey image with dark size x size squares (60 grey levels below) at ``centres``."""
    img = torch.full((1, 3, side, side), 0.5)
    for y, x in centres:
        img[..., y:y + size, x:x + size] = 0.5 - 60 / 255
    return img


def test_dark_dots_counts_small_dark_blobs_and_only_those():
    from spasemsr.metrics.artifacts import DARK_DOT_AREA

    three = _flat_with_dots([(10, 10), (30, 40), (50, 20)])
    assert compute("dark_dots", three).item() == 3
    assert compute("dark_dots", _flat_with_dots([])).item() == 0
    assert compute("dark_dots", _flat_with_dots([(20, 20)], size=1)).item() == 0  # one pixel: below the area
    assert DARK_DOT_AREA[1] < 49 and compute("dark_dots", _flat_with_dots([(10, 10)], size=7)).item() == 0  # a blob
    assert compute("dark_dots", _flat_with_dots([(1, 1), (60, 60)])).item() == 0  # inside the border crop
    shallow = _flat_with_dots([(10, 10)])
    shallow[..., 10:12, 10:12] = 0.5 - 10 / 255
    assert compute("dark_dots", shallow).item() == 0


def test_new_dark_dots_ignores_the_dots_the_hr_already_has():
    hr = _flat_with_dots([(10, 10)])
    sr = _flat_with_dots([(10, 10), (40, 40)])
    assert compute("dark_dots", sr).item() == 2
    assert compute("new_dark_dots", sr, hr=hr).item() == 1
    assert compute("new_dark_dots", hr, hr=hr).item() == 0
