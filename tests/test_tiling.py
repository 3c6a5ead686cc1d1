"""Tiled sampling and VAE: tiles cover the grid on the UNet's multiple, blending is exact, results match whole."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spasemsr.diffusion.tiling import Window, blend, gaussian_weight, windows
from spasemsr.evaluation.datasets import bundled_set
from spasemsr.metrics.fidelity import psnr_y

SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "tiny" / "spasemsr"


def test_windows_cover_the_grid_on_the_unet_multiple():
    tiles = windows(40, 24, tile=16, overlap=6, multiple=4)
    covered = torch.zeros(40, 24)
    for w in tiles:
        assert w.top % 4 == 0 and w.left % 4 == 0 and (w.height, w.width) == (16, 16)
        covered[w.top:w.top + w.height, w.left:w.left + w.width] += 1
    assert bool((covered >= 1).all()) and int(covered.max()) >= 2
    assert windows(8, 8, tile=16, overlap=4, multiple=4) == [Window(0, 0, 8, 8)]  # a small grid is one tile
    for bad in ({"tile": 10, "overlap": 2}, {"tile": 16, "overlap": 16}):
        with pytest.raises(ValueError):
            windows(40, 24, multiple=4, **bad)


def test_blending_is_exact_for_consistent_tiles():
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tiles = windows(24, 40, tile=16, overlap=8, multiple=4)
    assert torch.allclose(blend(tiles, lambda w: x[(..., *w.scaled(1))], 1, x.shape), x, atol=1e-12)
    up = F.interpolate(x, scale_factor=4, mode="nearest")  # outputs on a 4x finer grid (as VAE decoding)
    assert torch.allclose(blend(tiles, lambda w: up[(..., *w.scaled(4))], 4, up.shape), up, atol=1e-12)
    weight = gaussian_weight(8, 6, torch.device("cpu"), torch.float64)[0, 0]
    assert weight.shape == (8, 6) and torch.allclose(weight, weight.flip(0)) and weight[3:5, 2:4].min() == weight.max()


@pytest.fixture(scope="module")
def shipped():
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline(SHIPPED)
    image = next(iter(bundled_set("kodak5", "realesrgan").head(1, 256)))
    return pipeline, pipeline.prepare(image.lr[None])


def _sample(pipeline, prepared, **knobs):
    return pipeline.sample(prepared, torch.Generator().manual_seed(0), replace(pipeline.sampler, steps=4, **knobs))


def test_tiled_sampling_matches_whole_and_has_no_seams(shipped):
    pipeline, prepared = shipped
    whole = _sample(pipeline, prepared)
    assert torch.equal(_sample(pipeline, prepared, tile_size=256), whole)  # one tile covers it: the whole path
    tiled = _sample(pipeline, prepared, tile_size=128, tile_overlap=64)
    assert not torch.equal(tiled, whole) and psnr_y(tiled, whole).item() > 35
    # a seam is extra gradient across a tile border (latent 16/32/48 -> pixel 64/128/192) beyond what the
    # untiled image has on the same rows and columns
    def border_gradient(image: torch.Tensor) -> float:
        borders = [63, 127, 191]
        gx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))[borders]
        gy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1, 3))[borders]
        return (gx.mean() + gy.mean()).item()

    assert border_gradient(tiled) < 1.2 * border_gradient(whole)
    abutting = _sample(pipeline, prepared, tile_size=128, tile_overlap=0)  # no overlap to blend: visible seams
    assert border_gradient(abutting) > 1.5 * border_gradient(whole)
    calls = []
    pipeline.on_denoise = lambda: calls.append(1)  # what upscale's per-tile progress bar counts
    try:
        _sample(pipeline, prepared, tile_size=128, tile_overlap=64)
        assert len(calls) == 4 * 9  # 4 steps x 3x3 tiles of 32 latent pixels, stride 16, on a 64 grid
    finally:
        pipeline.on_denoise = None
    with pytest.raises(ValueError, match="multiple of 16"):
        _sample(pipeline, prepared, tile_size=100)
    conditioner, called = pipeline.conditioner, []
    pipeline.conditioner = lambda *args: called.append(1) or conditioner(*args)
    try:  # a bad tiling is refused by prepare before the conditioner (DRM, grounder, ...) runs
        with pytest.raises(ValueError, match="multiple of 16"):
            pipeline.prepare(prepared.lr, replace(pipeline.sampler, tile_size=100))
    finally:
        pipeline.conditioner = conditioner
    assert called == []


def test_mixed_precision_is_close_to_float32_and_returns_float32(shipped):
    pipeline, prepared = shipped
    full = _sample(pipeline, prepared, tile_size=128, tile_overlap=64)
    pipeline.precision = torch.bfloat16  # CPU autocast; CUDA runs float16 through the same path
    try:
        mixed = _sample(pipeline, prepared, tile_size=128, tile_overlap=64)
    finally:
        pipeline.precision = torch.float32
    assert mixed.dtype == torch.float32 and bool(torch.isfinite(mixed).all())
    assert not torch.equal(mixed, full) and psnr_y(mixed, full).item() > 40  # measured 60 dB


def test_the_start_latent_is_encoded_once_in_prepare_and_reused_while_the_tiling_matches(shipped):
    pipeline, prepared = shipped
    encodes = []
    hook = pipeline.backbone.vae.encoder.register_forward_hook(lambda *_: encodes.append(1))
    try:
        first = _sample(pipeline, prepared)
        _sample(pipeline, prepared, w_spa=0.5, start_t=0.6)
        assert encodes == []  # any knobs with the prepared (whole-image) tiling reuse the prepared start latent
        _sample(pipeline, prepared, tile_size=128, tile_overlap=64)
        assert len(encodes) == 9  # another tiling: encoded again, tile by tile (3x3 tiles)
    finally:
        hook.remove()
    fresh = pipeline.sample(replace(prepared, start=None), torch.Generator().manual_seed(0),
                            replace(pipeline.sampler, steps=4))
    assert torch.equal(fresh, first)  # the cached start is exactly what sampling would encode itself
