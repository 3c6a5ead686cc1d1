"""LR consistency after sampling: back-projection (the `backproject` knob) and the banded wavelet colour fix."""

from __future__ import annotations

import pytest
import torch

from spasemsr.data.images import read_image
from spasemsr.data.resize import bicubic_down, bicubic_up
from spasemsr.data.samples import sample_paths
from spasemsr.diffusion.consistency import back_project
from spasemsr.metrics.fidelity import lr_consistency, psnr_y


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    return read_image(sample_paths("kodak5")[0])[None, :, :128, :128]


def test_back_projection_restores_what_the_lr_observes(hr):
    lr = bicubic_down(hr, 4)
    shifted = (hr * 0.7 + 0.2).clamp(0, 1)  # a colour/contrast drift, the typical diffusion failure
    scores = [lr_consistency(back_project(shifted, lr, 4, n), lr).item() for n in (0, 1, 3)]
    assert scores[0] < 25 and scores[0] < scores[1] < scores[2] and scores[2] > 35
    assert psnr_y(back_project(shifted, lr, 4, 3), hr).item() > psnr_y(shifted, hr).item() + 5
    assert back_project(shifted, lr, 4, 0) is shifted


def test_back_projection_keeps_detail_above_the_lr_nyquist(hr):
    lr = bicubic_down(hr, 4)
    rows, cols = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checker = (0.05 * (1 - 2 * ((rows + cols) % 2))).to(hr.dtype).expand_as(hr)  # pixel-rate: invisible at LR size
    sr = (bicubic_up(lr * 0.8 + 0.1, hr.shape[-2:]) + checker).clamp(0, 1)  # drifted low band + fine detail

    def detail(image: torch.Tensor) -> float:  # how much of the checkerboard an image carries
        return ((image * checker).sum() / checker.pow(2).sum()).item()

    projected = back_project(sr, lr, 4, 3)
    assert lr_consistency(projected, lr).item() > lr_consistency(sr, lr).item() + 10
    assert detail(sr) > 0.99 and detail(projected) > 0.95


def test_back_projection_rejects_bad_arguments(hr):
    lr = bicubic_down(hr, 4)
    with pytest.raises(ValueError, match="backproject must be >= 0"):
        back_project(hr, lr, 4, -1)
    with pytest.raises(ValueError, match="not the LR"):
        back_project(hr, lr, 2, 1)


def test_wavelet_colour_fix_in_bands_equals_the_whole_image_filter():
    from spasemsr.diffusion.color_fix import _low_pass, _low_pass_whole, wavelet

    gen = torch.Generator().manual_seed(3)
    sr, ref = torch.rand(1, 3, 700, 90, generator=gen), torch.rand(1, 3, 700, 90, generator=gen)
    whole = _low_pass_whole(sr, 5)
    assert torch.allclose(_low_pass(sr, 5, band=128), whole, atol=1e-6)  # 6 bands, each with a 31-row halo
    assert not torch.allclose(_low_pass(sr, 5, band=128), _low_pass_whole(sr, 4), atol=1e-3)  # levels matter
    assert torch.allclose(wavelet(sr, ref), sr - whole + _low_pass_whole(ref, 5), atol=1e-5)
