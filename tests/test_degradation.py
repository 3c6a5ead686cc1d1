"""Real-ESRGAN degradation: seeded, batched, and honest about the parameters it reports."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from kornia.filters import filter2d

from spasemsr.data.degradation import RealESRGANDegradation, add_noise
from spasemsr.data.degradation_config import PARAM_KEYS, BlurConfig, DegradationConfig, NoiseConfig, ResizeConfig
from spasemsr.data.kernels import (
    KERNEL_TYPES,
    build_kernels,
    identity_kernels,
    sample_kernels,
    sample_sinc_kernels,
)

PI = math.pi


def _hr(batch: int = 8, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random images with some edges, so blur, resize and JPEG all have work to do."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 8, size // 8, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="nearest").clamp(0, 1)


def _degrade(
    cfg: DegradationConfig | None = None, seed: int = 0, hr: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module = RealESRGANDegradation(cfg or DegradationConfig(), scale=4)
    return module(_hr() if hr is None else hr, torch.Generator().manual_seed(seed))


def _within(values: torch.Tensor, low: float, high: float) -> bool:
    values = values[~values.isnan()]
    return bool(((values >= low - 1e-5) & (values <= high + 1e-5)).all())


@pytest.fixture(scope="module")
def many() -> dict[str, torch.Tensor]:
    """Parameters of 128 images degraded with the Real-ESRGAN defaults."""
    return _degrade(hr=_hr(batch=128, size=32))[1]


def test_same_seed_gives_bit_identical_output_and_other_seed_differs() -> None:
    lr_a, p_a = _degrade(seed=7)
    lr_b, p_b = _degrade(seed=7)
    lr_c, p_c = _degrade(seed=8)
    assert torch.equal(lr_a, lr_b)
    for key in PARAM_KEYS:
        torch.testing.assert_close(p_a[key], p_b[key], rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(lr_a, lr_c)
    assert not torch.allclose(p_a["jpeg1_quality"], p_c["jpeg1_quality"])


def test_output_is_quarter_size_in_unit_range_and_8bit() -> None:
    lr, params = _degrade()
    assert lr.shape == (8, 3, 16, 16) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    assert set(params) == set(PARAM_KEYS) and len(PARAM_KEYS) == len(set(PARAM_KEYS))
    assert all(v.shape == (8,) and v.dtype == torch.float32 for v in params.values())


def test_sampled_parameters_stay_in_the_default_ranges(many: dict[str, torch.Tensor]) -> None:
    p = many
    for stage, sigma_hi in (("blur1", 3.0), ("blur2", 1.5)):
        size = p[f"{stage}_size"][~p[f"{stage}_size"].isnan()]
        assert bool((size % 2 == 1).all()) and _within(size, 7, 21)
        assert _within(p[f"{stage}_sigma_x"], 0.2, sigma_hi) and _within(p[f"{stage}_sigma_y"], 0.2, sigma_hi)
        assert _within(p[f"{stage}_rotation"], -PI, PI) and _within(p[f"{stage}_omega"], PI / 5, PI)
        kind = p[f"{stage}_type"]
        generalised = (kind == KERNEL_TYPES.index("generalized_iso")) | (
            kind == KERNEL_TYPES.index("generalized_aniso")
        )
        plateau = (kind == KERNEL_TYPES.index("plateau_iso")) | (kind == KERNEL_TYPES.index("plateau_aniso"))
        assert _within(p[f"{stage}_beta"][generalised], 0.5, 4) and _within(p[f"{stage}_beta"][plateau], 1, 2)
        sinc = kind == KERNEL_TYPES.index("sinc")
        assert p[f"{stage}_sigma_x"][sinc].isnan().all() and not p[f"{stage}_omega"][sinc].isnan().any()
    assert p["blur2_type"][p["blur2_applied"] == 0].isnan().all()
    assert _within(p["resize1_scale"], 0.15, 1.5) and _within(p["resize2_scale"], 0.3, 1.2)
    for stage, sigma_hi, poisson_hi in (("noise1", 30, 3), ("noise2", 25, 2.5)):
        gaussian = p[f"{stage}_type"] == 0
        assert _within(p[f"{stage}_level"][gaussian], 1, sigma_hi)
        assert _within(p[f"{stage}_level"][~gaussian], 0.05, poisson_hi)
    assert _within(p["jpeg1_quality"], 30, 95) and _within(p["jpeg2_quality"], 30, 95)
    applied = p["final_sinc_applied"] == 1
    assert _within(p["final_sinc_omega"], PI / 3, PI) and p["final_sinc_omega"][~applied].isnan().all()


def test_per_image_probabilities_are_roughly_respected(many: dict[str, torch.Tensor]) -> None:
    rates = {
        "blur2_applied": 0.8,
        "final_sinc_applied": 0.8,
        "final_order": 0.5,
        "noise1_type": 0.5,
        "noise1_gray": 0.4,
    }
    for key, expected in rates.items():
        assert abs(many[key].mean().item() - expected) < 0.15, key
    assert len(set(many["noise2_level"].tolist())) == 128  # drawn per image, not per batch


def test_kernel_types_appear_at_their_configured_rates() -> None:
    probs = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    _, params = sample_kernels(4000, torch.Generator().manual_seed(0), probs, 0.1, (0.2, 3), (0.5, 4), (1, 2))
    counts = torch.bincount(params["type"].long(), minlength=len(KERNEL_TYPES)).float() / 4000
    expected = torch.tensor([0.9 * q for q in probs] + [0.1])
    assert torch.allclose(counts, expected, atol=0.025)


def test_kernels_sum_to_one_and_are_zero_outside_their_support() -> None:
    kernels, params = sample_kernels(
        256, torch.Generator().manual_seed(1), (1, 1, 1, 1, 1, 1), 0.2, (0.2, 3), (0.5, 4), (1, 2)
    )
    assert kernels.shape == (256, 21, 21)
    assert torch.allclose(kernels.sum(dim=(1, 2)), torch.ones(256), atol=1e-5)
    for kernel, size in zip(kernels, params["size"].long().tolist(), strict=True):
        pad = (21 - size) // 2
        outside = torch.ones(21, 21, dtype=torch.bool)
        outside[pad : 21 - pad, pad : 21 - pad] = False
        assert (kernel[outside] == 0).all() and (kernel[~outside] != 0).any()


def test_isotropic_kernels_are_symmetric_and_sinc_rings() -> None:
    nan = torch.tensor([math.nan, math.nan])
    iso = {
        "type": torch.tensor([0.0, 4.0]),
        "size": torch.tensor([21.0, 15.0]),
        "sigma_x": torch.tensor([2.5, 1.5]),
        "sigma_y": torch.tensor([2.5, 1.5]),
        "rotation": nan,
        "beta": torch.tensor([math.nan, 1.5]),
        "omega": nan,
    }
    for kernel in build_kernels(iso):
        assert torch.allclose(kernel, kernel.T, atol=1e-7)
        assert torch.allclose(kernel, kernel.flip(0), atol=1e-7)
    aniso = dict(
        iso,
        type=torch.tensor([1.0, 1.0]),
        sigma_y=torch.tensor([0.5, 0.5]),
        rotation=torch.tensor([0.3, 1.0]),
    )
    assert not torch.allclose(build_kernels(aniso)[0], build_kernels(aniso)[0].T, atol=1e-4)
    sinc = build_kernels(dict(iso, type=torch.tensor([6.0, 6.0]), omega=torch.tensor([PI / 2, PI / 4])))
    assert (sinc.amin(dim=(1, 2)) < 0).all() and torch.allclose(sinc[0], sinc[0].T, atol=1e-7)
    final, params = sample_sinc_kernels(16, torch.Generator().manual_seed(0))
    assert torch.allclose(final.sum(dim=(1, 2)), torch.ones(16), atol=1e-5)
    assert _within(params["omega"], PI / 3, PI)


def test_reported_kernel_parameters_rebuild_the_same_kernels() -> None:
    probs = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    kernels, params = sample_kernels(
        64, torch.Generator().manual_seed(2), probs, 0.1, (0.2, 3), (0.5, 4), (1, 2)
    )
    assert torch.equal(build_kernels(params), kernels)


def test_config_ranges_drive_the_sampled_parameters() -> None:
    cfg = DegradationConfig(
        jpeg1_range=(90, 90),
        jpeg2_range=(40, 40),
        blur1=BlurConfig(kernel_prob=(1, 0, 0, 0, 0, 0), sinc_prob=0.0, sigma_range=(1.0, 1.0)),
        noise1=NoiseConfig(gaussian_prob=1.0, sigma_range=(5, 5)),
        resize1=ResizeConfig(updown_prob=(0, 1, 0), scale_range=(0.5, 0.5), mode_prob=(0, 0, 1)),
        second_blur_prob=0.0,
        final_sinc_prob=0.0,
    )
    _, p = _degrade(cfg)
    assert (p["jpeg1_quality"] == 90).all() and (p["jpeg2_quality"] == 40).all()
    assert (
        (p["blur1_type"] == 0).all() and (p["blur1_sigma_x"] == 1).all() and (p["blur1_sigma_y"] == 1).all()
    )
    assert (p["noise1_type"] == 0).all() and (p["noise1_level"] == 5).all()
    assert (p["resize1_scale"] == 0.5).all() and (p["resize1_mode"] == 2).all()
    assert (p["blur2_applied"] == 0).all() and p["blur2_sigma_x"].isnan().all()
    assert (p["final_sinc_applied"] == 0).all() and p["final_sinc_omega"].isnan().all()


def test_tiny_intermediate_images_still_degrade() -> None:
    """A 0.15x first resize of a 32-pixel crop leaves 4 pixels, under the 21-tap kernel radius."""
    cfg = DegradationConfig(resize1=ResizeConfig(updown_prob=(0, 1, 0), scale_range=(0.15, 0.15)))
    lr, _ = _degrade(cfg, hr=_hr(batch=4, size=32))
    assert lr.shape == (4, 3, 8, 8) and torch.isfinite(lr).all()


def test_zero_noise_level_adds_nothing_and_gray_noise_is_shared() -> None:
    x, g = _hr(batch=4, size=32), torch.Generator().manual_seed(0)
    poisson = torch.tensor([False, True, False, True])
    assert torch.equal(add_noise(x, poisson, torch.zeros(4), poisson, g), x)
    flat = torch.full((4, 3, 32, 32), 0.5)
    noisy = add_noise(
        flat, torch.zeros(4, dtype=torch.bool), torch.full((4,), 10.0), torch.tensor([1, 1, 0, 0]), g
    )
    residual = noisy - flat
    assert abs(residual.std().item() * 255 - 10) < 0.5
    assert torch.equal(residual[:2, 0], residual[:2, 1]) and not torch.equal(residual[2:, 0], residual[2:, 1])


def test_identity_kernels_leave_images_unchanged() -> None:
    x = _hr(batch=3, size=32)
    assert torch.equal(filter2d(x, identity_kernels(3, x.device)), x)


def test_invalid_config_and_input_are_rejected() -> None:
    with pytest.raises(ValueError, match="jpeg1_range"):
        replace(DegradationConfig(), jpeg1_range=(95, 30))
    with pytest.raises(ValueError, match="kernel_prob"):
        BlurConfig(kernel_prob=(1, 0, 0))
    with pytest.raises(ValueError, match="divisible by 4"):
        _degrade(hr=torch.rand(2, 3, 30, 32))
