"""Batched random blur kernels for the Real-ESRGAN degradation model.

Every kernel of a batch is drawn on a common ``KERNEL_PAD`` x ``KERNEL_PAD`` grid and zeroed outside
its own odd support, which equals zero-padding a ``size`` x ``size`` kernel to the common size, so a
whole batch blurs with one ``kornia.filters.filter2d`` call. Kernels sum to 1.

Parameter conventions (one float32 tensor of shape (B,) per name, see ``KERNEL_PARAMS``):
``type`` indexes ``KERNEL_TYPES``; ``size`` is the odd support in pixels; ``sigma_x``/``sigma_y`` are
standard deviations in pixels along the kernel's principal axes before rotation; ``rotation`` is in
radians; ``beta`` is the shape exponent of generalised and plateau kernels; ``omega`` is the sinc
cutoff in radians per pixel. A parameter that does not shape an image's kernel is NaN (sigmas and
rotation of a sinc, rotation of an isotropic kernel, beta of a plain Gaussian, omega of a non-sinc).
"""

import math

import torch
from torch import Tensor

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
)
KERNEL_PAD = 21
KERNEL_PARAMS = ("type", "size", "sigma_x", "sigma_y", "rotation", "beta", "omega")
_SINC = KERNEL_TYPES.index("sinc")


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> Tensor:
    """Draw ``n`` values from U[low, high) on the generator's device, the one source of randomness."""
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _split_uniform(generator: torch.Generator, n: int, low: float, high: float) -> Tensor:
    """Half the draws below 1 and half above, as Real-ESRGAN samples shape exponents."""
    mid = min(max(1.0, low), high)
    below = torch.rand(n, generator=generator, device=generator.device) < 0.5
    return torch.where(below, uniform(generator, n, low, mid), uniform(generator, n, mid, high))


def _odd_sizes(generator: torch.Generator, n: int, size_range: tuple[int, int]) -> Tensor:
    """Uniform odd kernel sizes in ``size_range`` (both ends odd, inclusive)."""
    low, high = size_range
    if low % 2 == 0 or high % 2 == 0 or not 1 <= low <= high <= KERNEL_PAD:
        raise ValueError(f"kernel size_range must be odd values within [1, {KERNEL_PAD}], got {size_range}")
    steps = torch.randint(0, (high - low) // 2 + 1, (n,), generator=generator, device=generator.device)
    return low + 2 * steps


def _is(kind: Tensor, *names: str) -> Tensor:
    """Mask of images whose kernel type is one of ``names``."""
    wanted = torch.tensor([KERNEL_TYPES.index(name) for name in names], device=kind.device)
    return torch.isin(kind.long(), wanted)


def build_kernels(params: dict[str, Tensor], pad_to: int = KERNEL_PAD) -> Tensor:
    """Render (B, pad_to, pad_to) kernels from per-image parameters; kept separate from sampling so
    an estimated parameter set can be turned back into the kernel it describes."""
    kind = params["type"].long()[:, None, None]
    device = kind.device

    def column(name: str, fill: float) -> Tensor:
        return torch.nan_to_num(params[name].float(), nan=fill)[:, None, None]

    radius = (pad_to - 1) // 2
    axis = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    # Rotate the grid into the principal axes: q = x^T Sigma^-1 x, Sigma = R diag(sx^2, sy^2) R^T.
    theta = column("rotation", 0.0)
    u = torch.cos(theta) * xx + torch.sin(theta) * yy
    v = -torch.sin(theta) * xx + torch.cos(theta) * yy
    q = (u / column("sigma_x", 1.0)) ** 2 + (v / column("sigma_y", 1.0)) ** 2
    q_beta = q.pow(column("beta", 1.0))
    smooth = torch.where(
        _is(kind, "plateau_iso", "plateau_aniso"), 1.0 / (q_beta + 1.0), torch.exp(-0.5 * q_beta)
    )
    # Circular lowpass (2-D sinc): omega J1(omega r) / (2 pi r), with its limit omega^2 / (4 pi) at r = 0.
    omega = column("omega", 1.0)
    r = torch.hypot(xx, yy)
    r_safe = torch.where(r > 0, r, torch.ones_like(r))
    sinc = torch.where(
        r > 0,
        omega * torch.special.bessel_j1(omega * r_safe) / (2 * math.pi * r_safe),
        omega**2 / (4 * math.pi),
    )
    kernel = torch.where(kind == _SINC, sinc, smooth)
    half = ((params["size"].float() - 1) / 2)[:, None, None]
    kernel = torch.where((xx.abs() <= half) & (yy.abs() <= half), kernel, torch.zeros_like(kernel))
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def sample_kernels(
    batch: int,
    generator: torch.Generator,
    kernel_prob: tuple[float, ...],
    sinc_prob: float,
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
    size_range: tuple[int, int] = (7, KERNEL_PAD),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Draw one Real-ESRGAN blur kernel per image: a sinc with ``sinc_prob``, else one of the six
    Gaussian-family types by ``kernel_prob``. Every draw is made for every image, so the generator's
    consumption does not depend on the outcome."""
    if len(kernel_prob) != _SINC:
        raise ValueError(
            f"kernel_prob needs one weight per type of {KERNEL_TYPES[:_SINC]}, got {kernel_prob}"
        )
    g, n = generator, batch
    size = _odd_sizes(g, n, size_range)
    is_sinc = torch.rand(n, generator=g, device=g.device) < sinc_prob
    weights = torch.tensor(kernel_prob, dtype=torch.float32, device=g.device)
    kind = torch.multinomial(weights, n, replacement=True, generator=g)
    kind = torch.where(is_sinc, torch.full_like(kind, _SINC), kind)
    sigma_x, sigma_y = uniform(g, n, *sigma_range), uniform(g, n, *sigma_range)
    rotation = uniform(g, n, -math.pi, math.pi)
    beta_g, beta_p = _split_uniform(g, n, *betag_range), _split_uniform(g, n, *betap_range)
    # Real-ESRGAN lets small sinc kernels cut only down to pi/3, so their ringing still fits the support.
    omega = torch.where(size < 13, uniform(g, n, math.pi / 3, math.pi), uniform(g, n, math.pi / 5, math.pi))

    nan = torch.full((n,), math.nan, device=g.device)
    aniso = _is(kind, "aniso", "generalized_aniso", "plateau_aniso")
    params = {
        "type": kind.float(),
        "size": size.float(),
        "sigma_x": torch.where(is_sinc, nan, sigma_x),
        "sigma_y": torch.where(is_sinc, nan, torch.where(aniso, sigma_y, sigma_x)),
        "rotation": torch.where(aniso, rotation, nan),
        "beta": torch.where(
            _is(kind, "generalized_iso", "generalized_aniso"),
            beta_g,
            torch.where(_is(kind, "plateau_iso", "plateau_aniso"), beta_p, nan),
        ),
        "omega": torch.where(is_sinc, omega, nan),
    }
    return build_kernels(params), params


def sample_sinc_kernels(
    batch: int,
    generator: torch.Generator,
    size_range: tuple[int, int] = (7, KERNEL_PAD),
    omega_range: tuple[float, float] = (math.pi / 3, math.pi),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Draw one sinc kernel per image, Real-ESRGAN's final ringing/overshoot filter."""
    size = _odd_sizes(generator, batch, size_range)
    omega = uniform(generator, batch, *omega_range)
    nan = torch.full((batch,), math.nan, device=generator.device)
    params = {
        "type": torch.full_like(omega, _SINC),
        "size": size.float(),
        "sigma_x": nan,
        "sigma_y": nan,
        "rotation": nan,
        "beta": nan,
        "omega": omega,
    }
    return build_kernels(params), params


def identity_kernels(batch: int, device: torch.device, pad_to: int = KERNEL_PAD) -> Tensor:
    """Centred unit impulses: blurring with them leaves an image exactly unchanged."""
    kernel = torch.zeros(batch, pad_to, pad_to, device=device)
    kernel[:, pad_to // 2, pad_to // 2] = 1.0
    return kernel
