"""Samplers as a config choice (``sampler.name``): every registered one runs the pipeline, DDIM is unchanged.

The pipeline here is a tiny random prior with a ControlNet made from its UNet (16² LR -> 64² SR, latent 16²),
built in-process; the benchmark test loads the shipped tiny SpaSemSR.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from spasemsr.config.schema import SamplerConfig
from spasemsr.registries import SAMPLERS
from tests.conftest import REPO

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_ancestral": EulerAncestralDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}
CPU = torch.device("cpu")
STEPS = 4


def test_every_shipped_sampler_is_registered():
    assert set(SCHEDULERS) <= set(SAMPLERS.names())


@pytest.fixture(scope="module")
def train_config(prior_dir):
    from spasemsr.diffusion.backbone import load_backbone

    return load_backbone(prior_dir).train_scheduler.config


@pytest.fixture(scope="module")
def tiny(prior_dir, tiny_cfg):
    """(pipeline, prepared 16² LR) on the random tiny prior; the ControlNet's zero convolutions woken."""
    from spasemsr.diffusion.backbone import load_backbone, vae_downscale
    from spasemsr.diffusion.control import ControlledUNet, controlnet_from_unet
    from spasemsr.pipeline import SRPipeline

    torch.manual_seed(0)
    backbone = load_backbone(prior_dir).freeze()
    controlnet = controlnet_from_unet(backbone.unet, list(tiny_cfg.profile.control_embedding_channels),
                                      vae_downscale(backbone.vae))
    for module in (controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
        for p in module.parameters():
            torch.nn.init.normal_(p, std=0.02)  # the LR then reaches the denoiser
    prompt = torch.randn(1, 4, backbone.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    net = ControlledUNet(backbone.unet, controlnet.eval().requires_grad_(False), prompt)
    pipeline = SRPipeline(backbone, net, 4, SamplerConfig(steps=STEPS))
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    return pipeline, pipeline.prepare(lr)


def _sample(tiny, seed: int = 0, **knobs) -> torch.Tensor:
    pipeline, prepared = tiny
    return pipeline.sample(prepared, torch.Generator().manual_seed(seed), replace(pipeline.sampler, **knobs))


def _counting_denoiser(tiny) -> list[int]:
    calls: list[int] = []
    tiny[0].on_denoise = lambda: calls.append(1)
    return calls


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_sampler_gives_finite_sr_whole_truncated_and_tiled(tiny, train_config, name):
    below_half = sum(int(t) <= 0.5 * 999 for t in SAMPLERS.build(name, train_config, STEPS).timesteps(1.0, CPU))
    cases = [({}, STEPS), ({"start_t": 0.5}, below_half),
             ({"tile_size": 32, "tile_overlap": 16}, STEPS * 9)]  # 3x3 latent tiles of 8 (stride 4) on 16²
    try:
        for knobs, denoiser_calls in cases:
            calls = _counting_denoiser(tiny)
            sr = _sample(tiny, name=name, **knobs)
            assert sr.shape == (1, 3, 64, 64) and bool(torch.isfinite(sr).all()), (name, knobs)
            assert 0.0 <= float(sr.min()) and float(sr.max()) <= 1.0
            assert len(calls) == denoiser_calls, (name, knobs)
    finally:
        tiny[0].on_denoise = None
    assert 0 < below_half < STEPS


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_sampler_is_deterministic_for_a_fixed_generator(tiny, name):
    first = _sample(tiny, seed=3, name=name)
    assert torch.equal(_sample(tiny, seed=3, name=name), first)
    assert not torch.equal(_sample(tiny, seed=4, name=name), first)


def test_the_samplers_differ_except_ddim_and_euler(tiny):
    """Deterministic DDIM is Euler's method on the probability-flow ODE in sigma (Karras et al. 2022, sec. 3), and
    both run the prior's "leading" timesteps down to sigma 0, so those two agree to rounding; the others differ."""
    outputs = {name: _sample(tiny, name=name) for name in SCHEDULERS}
    assert (outputs["ddim"] - outputs["euler"]).abs().max() < 1e-4
    for a in SCHEDULERS:
        for b in SCHEDULERS:
            if a < b and {a, b} != {"ddim", "euler"}:
                assert (outputs[a] - outputs[b]).abs().max() > 1e-3, (a, b)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_sampler_runs_its_own_scheduler_on_the_priors_schedule(tiny, train_config, monkeypatch, name):
    sampler = SAMPLERS.build(name, train_config, STEPS)
    assert type(sampler.scheduler) is SCHEDULERS[name]
    for key in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type"):
        assert sampler.scheduler.config[key] == train_config[key], key
    if name == "dpmpp_2m":
        assert sampler.scheduler.config.algorithm_type == "dpmsolver++" and sampler.scheduler.config.solver_order == 2
    steps = {cls: [] for cls in SCHEDULERS.values()}
    for cls in SCHEDULERS.values():
        def counted(self, *args, _step=cls.step, _cls=cls, **kwargs):
            steps[_cls].append(sorted(kwargs))
            return _step(self, *args, **kwargs)

        monkeypatch.setattr(cls, "step", functools.wraps(cls.step)(counted))
    _sample(tiny, name=name, eta=0.3)
    assert {cls: len(calls) for cls, calls in steps.items() if calls} == {SCHEDULERS[name]: STEPS}
    expected = {"ddim": ["eta", "generator"], "unipc": []}.get(name, ["generator"])
    assert steps[SCHEDULERS[name]][0] == expected  # eta and generator only where step takes them


def _zero_denoiser():
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def denoise(latents, t):
        seen.append((latents.clone(), t.clone()))
        return torch.zeros_like(latents)

    return seen, denoise


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_sampling_starts_from_the_lr_latent_noised_to_the_first_timestep(train_config, name):
    """Whatever the scheduler's parametrisation, the denoiser's first input is the VP z_t of the LR latent at the
    first timestep kept (``start_t`` truncating the schedule); without an LR latent it is pure noise."""
    alphas = DDIMScheduler.from_config(train_config).alphas_cumprod
    shape = (1, 4, 8, 8)
    init = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for steps, start_t in ((10, 1.0), (10, 0.5), (10, 0.25), (3, 0.7)):
        sampler = SAMPLERS.build(name, train_config, steps)
        seen, denoise = _zero_denoiser()
        sampler.sample(denoise, shape, torch.Generator().manual_seed(0), CPU, start_t=start_t, init_latents=init)
        kept = [t for t in sampler.scheduler.timesteps if float(t) <= start_t * 999]
        assert [float(t[0]) for _, t in seen] == [float(t) for t in kept], (steps, start_t)
        a = alphas[int(kept[0])]
        assert torch.allclose(seen[0][0], a.sqrt() * init + (1 - a).sqrt() * noise, atol=1e-5), (steps, start_t)
        if hasattr(sampler.scheduler, "step_index"):  # its counter reached the schedule's end, not past or short
            assert sampler.scheduler.step_index == len(sampler.scheduler.timesteps)
    seen, denoise = _zero_denoiser()
    SAMPLERS.build(name, train_config, 10).sample(denoise, shape, torch.Generator().manual_seed(0), CPU)
    ratio = seen[0][0] / noise
    assert torch.allclose(ratio, ratio.flatten()[0]) and 0.99 < float(ratio.flatten()[0]) <= 1.0 + 1e-6
    if name == "ddim":
        assert torch.equal(seen[0][0], noise)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_an_exact_denoiser_recovers_the_clean_latent(train_config, name):
    """For data at one point x0 the exact ε is (z_t - √ᾱ x0)/√(1-ᾱ); every sampler must land on x0, from any start.

    This checks what each scheduler is fed (the scaled z_t and the timestep) and where it starts on its schedule.
    """
    alphas = DDIMScheduler.from_config(train_config).alphas_cumprod
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    init = x0 + 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))

    def exact(z, t):
        a = alphas[t.round().long()].view(-1, 1, 1, 1)
        return (z - a.sqrt() * x0) / (1 - a).sqrt()

    for steps, start_t in ((1, 1.0), (4, 1.0), (10, 1.0), (10, 0.5), (10, 0.3)):
        out = SAMPLERS.build(name, train_config, steps).sample(exact, x0.shape, torch.Generator().manual_seed(0), CPU,
                                                               start_t=start_t, init_latents=init)
        assert torch.allclose(out, x0, atol=1e-5), (steps, start_t, float((out - x0).abs().max()))


def test_sampler_errors(train_config):
    with pytest.raises(ValueError, match="sampler.steps must be >= 1, got 0"):
        SAMPLERS.build("euler", train_config, 0)
    sampler = SAMPLERS.build("dpmpp_2m", train_config, 2)
    _, denoise = _zero_denoiser()
    shape, init = (1, 4, 8, 8), torch.zeros(1, 4, 8, 8)
    for start_t in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"sampler.start_t must be in \(0, 1\]"):
            sampler.sample(denoise, shape, torch.Generator(), CPU, start_t=start_t, init_latents=init)
    with pytest.raises(ValueError, match="start_t < 1 needs init_latents"):
        sampler.sample(denoise, shape, torch.Generator(), CPU, start_t=0.5)
    with pytest.raises(ValueError, match="start_t=0.1 leaves none of the 2 sampling steps"):
        sampler.sample(denoise, shape, torch.Generator(), CPU, start_t=0.1, init_latents=init)
    with pytest.raises(ValueError, match=r"unknown sampler 'heun'"):
        SAMPLERS.build("heun", train_config, 2)


class ReferenceDDIM:
    """The DDIM loop as it stood before the samplers were a choice, written against diffusers directly."""

    def __init__(self, scheduler_config, steps: int, eta: float = 0.0) -> None:
        self.scheduler, self.steps, self.eta = DDIMScheduler.from_config(scheduler_config), steps, eta

    def sample(self, denoise, shape, generator, device, dtype=torch.float32, start_t=1.0, init_latents=None):
        scheduler = self.scheduler
        scheduler.set_timesteps(self.steps, device=device)
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
        timesteps = scheduler.timesteps
        if start_t < 1.0:
            timesteps = timesteps[timesteps <= start_t * (scheduler.config.num_train_timesteps - 1)]
        latents = scheduler.add_noise(init_latents, noise, timesteps[:1])
        for t in timesteps:
            eps = denoise(latents, t.expand(shape[0]))
            latents = scheduler.step(eps, t, latents, eta=self.eta, generator=generator).prev_sample
        return latents


@pytest.fixture
def reference_ddim():
    SAMPLERS.register("reference_ddim", ReferenceDDIM)
    try:
        yield "reference_ddim"
    finally:
        SAMPLERS.unregister("reference_ddim")


def test_ddim_is_bit_identical_to_the_diffusers_loop(tiny, reference_ddim):
    for knobs in ({}, {"start_t": 0.5}, {"eta": 0.7}, {"start_t": 0.6, "eta": 1.0}, {"steps": 7},
                  {"tile_size": 32, "tile_overlap": 16}):
        expected = _sample(tiny, name=reference_ddim, **knobs)
        assert torch.equal(_sample(tiny, name="ddim", **knobs), expected), knobs
    assert "reference_ddim" in SAMPLERS


class ToySampler:
    """Denoises the clean LR latent ``steps`` times at a fixed t and returns it untouched; counts its calls."""

    built: list[tuple[int, float]] = []
    runs: list[int] = []

    def __init__(self, scheduler_config, steps: int, eta: float = 0.0) -> None:
        self.steps = steps
        ToySampler.built.append((steps, eta))

    def sample(self, denoise, shape, generator, device, dtype=torch.float32, start_t=1.0, init_latents=None):
        for _ in range(self.steps):
            denoise(init_latents, torch.full((shape[0],), 500, device=device))
        ToySampler.runs.append(self.steps)
        return init_latents


@pytest.fixture
def toy_sampler():
    ToySampler.built, ToySampler.runs = [], []
    SAMPLERS.register("toy", ToySampler)
    try:
        yield ToySampler
    finally:
        SAMPLERS.unregister("toy")
    assert "toy" not in SAMPLERS


def test_a_sampler_registered_elsewhere_is_chosen_by_the_config(tiny, toy_sampler):
    from spasemsr.config import load_config
    from spasemsr.pipeline import sampler_settings

    cfg = load_config(REPO / "configs" / "spasemsr.yaml", ["sampler.name=toy", "sampler.steps=3"])
    knobs = sampler_settings(cfg.sampler, tile_size=0)
    assert knobs.name == "toy" and knobs.steps == 3
    calls = _counting_denoiser(tiny)
    try:
        sr = tiny[0].sample(tiny[1], torch.Generator().manual_seed(0), knobs)
    finally:
        tiny[0].on_denoise = None
    assert toy_sampler.built == [(3, 0.0)] and toy_sampler.runs == [3] and len(calls) == 3
    assert sr.shape == (1, 3, 64, 64) and bool(torch.isfinite(sr).all())


def test_samplers_benchmark_records_each_setting(tmp_path, monkeypatch):
    from benchmarks.samplers import main

    monkeypatch.chdir(REPO)  # the script names weights/ and experiments/ relative to the repo
    out = tmp_path / "samplers.json"
    main(["--samplers", "ddim", "euler", "--steps", "1", "--seeds", "0", "1", "--images", "1", "--device", "cpu",
          "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["benchmark"] == "samplers" and record["images"] == 1 and record["seeds"] == [0, 1]
    rows = {(row["sampler"], row["steps"]): row for row in record["rows"]}
    assert set(rows) == {("ddim", 1), ("euler", 1)}
    for row in rows.values():
        assert len(row["per_seed"]["psnr_y"]) == 2 and row["psnr_y"]["mean"] > 10 and row["niqe"]["mean"] > 0
        assert row["seconds_per_image"] > 0
