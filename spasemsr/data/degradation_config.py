"""The ``degradation`` config section: every range and probability of the Real-ESRGAN pipeline, checked."""

import math
from dataclasses import dataclass, field

from spasemsr.data.kernels import KERNEL_PARAMS

RESIZE_MODES = ("area", "bilinear", "bicubic")
_BLUR = tuple(f"_{name}" for name in KERNEL_PARAMS)
PARAM_KEYS = (
    *(f"blur1{k}" for k in _BLUR),
    "resize1_scale", "resize1_mode", "noise1_type", "noise1_level", "noise1_gray", "jpeg1_quality",
    "blur2_applied", *(f"blur2{k}" for k in _BLUR),
    "resize2_scale", "resize2_mode", "noise2_type", "noise2_level", "noise2_gray", "jpeg2_quality",
    "final_order", "final_resize_mode", "final_sinc_applied", "final_sinc_size", "final_sinc_omega",
)  # fmt: skip


def _check_range(
    name: str, value: tuple[float, float], low: float = -math.inf, high: float = math.inf
) -> None:
    """Reject a (min, max) pair that is reversed or leaves [low, high]."""
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {value}")


def _check_prob(name: str, value: tuple[float, ...], n: int) -> None:
    """Reject a weight vector of the wrong length or with no positive mass."""
    if len(value) != n or min(value) < 0 or sum(value) <= 0:
        raise ValueError(f"{name} must be {n} non-negative weights, not all zero, got {value}")


@dataclass(frozen=True)
class BlurConfig:
    """One blur stage: a sinc with ``sinc_prob``, else a type drawn by ``kernel_prob`` (weights of
    KERNEL_TYPES[:6]: iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso)."""

    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sigma_range: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    size_range: tuple[int, int] = (7, 21)

    def __post_init__(self) -> None:
        _check_prob("kernel_prob", self.kernel_prob, 6)
        _check_range("sigma_range", self.sigma_range, low=1e-3)
        _check_range("betag_range", self.betag_range, low=1e-3)
        _check_range("betap_range", self.betap_range, low=1e-3)


@dataclass(frozen=True)
class ResizeConfig:
    """One resize stage; its scale and mode are drawn once per batch."""

    updown_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    scale_range: tuple[float, float] = (0.15, 1.5)
    mode_prob: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # over RESIZE_MODES

    def __post_init__(self) -> None:
        _check_prob("updown_prob", self.updown_prob, 3)
        _check_prob("mode_prob", self.mode_prob, len(RESIZE_MODES))
        _check_range("scale_range", self.scale_range, low=1e-3)


@dataclass(frozen=True)
class NoiseConfig:
    """One noise stage: Gaussian with ``gaussian_prob``, else Poisson; gray with ``gray_prob``."""

    gaussian_prob: float = 0.5
    sigma_range: tuple[float, float] = (1.0, 30.0)  # 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        _check_range("sigma_range", self.sigma_range, low=0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, low=0.0)


# Defaults are Real-ESRGAN's options/train_realesrgan_x4plus.yml (xinntao/Real-ESRGAN); the final
# order probability 0.5 and the uniform resize modes are hard-coded in its realesrgan_model.py.
@dataclass(frozen=True)
class DegradationConfig:
    """Every range and probability of the two degradation orders and the final stage."""

    blur1: BlurConfig = field(default_factory=BlurConfig)
    resize1: ResizeConfig = field(default_factory=ResizeConfig)
    noise1: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg1_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    blur2: BlurConfig = field(default_factory=lambda: BlurConfig(sigma_range=(0.2, 1.5)))
    resize2: ResizeConfig = field(
        default_factory=lambda: ResizeConfig(updown_prob=(0.3, 0.4, 0.3), scale_range=(0.3, 1.2))
    )
    noise2: NoiseConfig = field(
        default_factory=lambda: NoiseConfig(sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))
    )
    jpeg2_range: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    final_jpeg_first_prob: float = 0.5  # probability of final_order = 1
    final_mode_prob: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    # Antialias bilinear/bicubic downsampling; Real-ESRGAN does not (False reproduces its aliasing).
    antialias: bool = True

    def __post_init__(self) -> None:
        _check_range("jpeg1_range", self.jpeg1_range, 0.0, 100.0)
        _check_range("jpeg2_range", self.jpeg2_range, 0.0, 100.0)
        _check_prob("final_mode_prob", self.final_mode_prob, len(RESIZE_MODES))
