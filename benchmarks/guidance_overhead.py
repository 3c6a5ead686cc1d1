"""One SpaSemSR denoising step against the plain ControlNet + UNet step of the same backbone (issue #9, target <= 1.25).

    python -m benchmarks.guidance_overhead [--cases tiny sd2] [--sd2-lr 64 128] [--repeats 5] [--steps 4] [--profile]

Cases, each measured in this one process with the two steps interleaved (``--repeats`` pairs after a
warm-up, ``--tiny-repeats`` for the cheap tiny case; the ratio is the median of the per-pair ratios):

- ``tiny``: the shipped SpaSemSR against the shipped ControlNet-SR baseline (same prior, same ControlNet shape);
- ``sd2``: SpaSemSR on SD-2-base-shaped random modules against ``ControlledUNet`` over the very same UNet and
  ControlNet tensors.

Both steps get conditions computed beforehand (the guided one from ``SRPipeline.prepare`` on a photo), so the
ratio is the cost of the added attentions alone. That no text or visual encoding runs per step is checked on
the shipped tiny pipeline: hooks count the calls of the grounder, describer, DRM, text encoder, E_img, E_sem
and VAE in ``prepare`` and in a ``--steps``-step ``sample``. A case over the target (or every case with
``--profile``) gets a profile: seconds per added module (forward hooks) and the top operators (torch.profiler).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace

import torch
from torch import nn

from benchmarks.common import (
    add_common_args,
    environment,
    interleaved,
    paired_ratio,
    photo_lr,
    print_table,
    progress,
    setup,
    synchronize,
    write_json,
)
from benchmarks.models import latent_noise, sd2_pipeline, tiny_pipelines
from spasemsr.diffusion.control import ControlledUNet
from spasemsr.pipeline import SRPipeline

TARGET = 1.25
TIMESTEP = 500


def steps_of(pipeline: SRPipeline, plain: ControlledUNet, lr: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The guided and the plain denoiser call on the same z_t and t, conditions computed once beforehand."""
    prepared = pipeline.prepare(lr)
    plain_conditions = plain.conditions(prepared.lr, pipeline.scale)
    latents = latent_noise(pipeline, lr, torch.Generator().manual_seed(0))
    t = torch.full((1,), TIMESTEP, device=lr.device)
    knobs = pipeline.sampler
    return {
        "spasemsr": torch.no_grad()(lambda: pipeline.net.eps(latents, t, prepared.conditions, knobs)),
        "plain": torch.no_grad()(lambda: plain.eps(latents, t, plain_conditions, knobs)),
    }


def resolution_level(processor_name: str, levels: int) -> int:
    """Resolution level (0 = the full latent grid) of an attention processor from its module path."""
    block, index = processor_name.split(".")[:2]
    if block == "down_blocks":
        return int(index)
    return levels - 1 - int(index) if block == "up_blocks" else levels - 1


def added_modules(pipeline: SRPipeline, latent_hw: tuple[int, int]) -> dict[str, list[nn.Module]]:
    """SpaSemSR's additions to the ControlNet and UNet, grouped by kind and resolution level (tokens per image)."""
    from spasemsr.guidance.fusion.processors import ControlNetCrossAttnProcessor, UNetCrossAttnProcessor

    net = pipeline.net
    levels = len(pipeline.backbone.unet.config.block_out_channels)
    found: list[tuple[str, int, nn.Module]] = []
    for model in (net.unet, net.controlnet):
        for name, processor in model.attn_processors.items():
            level = resolution_level(name, levels)
            if isinstance(processor, UNetCrossAttnProcessor):
                found += [("SpaTextAttn (UNet, KV = e_spa)", level, processor.spa_text),
                          ("SemImgAttn (UNet decoder, KV = ControlNet features)", level, processor.sem_img)]
            elif isinstance(processor, ControlNetCrossAttnProcessor) and processor.branch is not None:
                branch = processor.branch
                found += [("degradation cross-attn (ControlNet, KV = e_deg)", level, branch.attend),
                          (f"{branch.fusion} fusion (ControlNet, Q = h_spa, KV = h_deg)", level, branch.fuse)]
    groups: dict[str, list[nn.Module]] = defaultdict(list)
    for kind, level, module in sorted(found, key=lambda item: item[:2]):
        if module is not None:
            tokens = (latent_hw[0] >> level) * (latent_hw[1] >> level)
            groups[f"{kind}, level {level} ({tokens} tokens)"].append(module)
    if net.fusion.c_img_in is not None:
        groups["c_img input conv (ControlNet)"].append(net.fusion.c_img_in)
    return dict(groups)


def module_seconds(step: Callable[[], object], groups: dict[str, list[nn.Module]], device: torch.device,
                   repeats: int) -> dict[str, float]:
    """Median seconds per step spent inside each group of modules (forward hooks, synchronised on CUDA)."""
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}
    handles = []

    def before(module: nn.Module, inputs: tuple) -> None:
        synchronize(device)
        started[id(module)] = time.perf_counter()

    for name, modules in groups.items():
        for module in modules:
            def after(module: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
                synchronize(device)
                spent[name] += time.perf_counter() - started[id(module)]

            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    per_step: dict[str, list[float]] = defaultdict(list)
    try:
        for _ in range(repeats):
            spent.clear()
            step()
            for name in groups:
                per_step[name].append(spent[name])
    finally:
        for handle in handles:
            handle.remove()
    return {name: round(statistics.median(values), 4) for name, values in per_step.items()}


def top_operators(step: Callable[[], object], device: torch.device, repeats: int, count: int = 8) -> list[dict]:
    """The operators with the most self time per step (torch.profiler over ``repeats`` steps), largest first."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            step()
        synchronize(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:count]
    return [{"op": e.key, "calls_per_step": e.count / repeats,
             "self_s_per_step": round(getattr(e, key) / 1e6 / repeats, 4)} for e in events]


def measure_case(name: str, pipeline: SRPipeline, plain: ControlledUNet, lr: torch.Tensor, device: torch.device,
                 repeats: int, profile: bool) -> dict:
    """Interleaved timings of the two steps, their ratio and, if asked or over target, the profile."""
    progress(f"guidance_overhead: {name}, LR {tuple(lr.shape[-2:])}, {repeats} interleaved pairs")
    steps = steps_of(pipeline, plain, lr)
    seconds = interleaved(steps, device, repeats)
    ratio = paired_ratio(seconds["spasemsr"], seconds["plain"])
    scale = pipeline.scale
    latent_hw = tuple(latent_noise(pipeline, lr, torch.Generator()).shape[-2:])
    record = {
        "case": name, "lr": list(lr.shape[-2:]), "hr": [s * scale for s in lr.shape[-2:]],
        "latent": list(latent_hw), "repeats": repeats,
        "median_s": {key: round(statistics.median(values), 4) for key, values in seconds.items()},
        "seconds": {key: [round(s, 4) for s in values] for key, values in seconds.items()},
        "ratio": round(ratio, 3), "met": ratio <= TARGET,
    }
    if profile or ratio > TARGET:
        progress(f"  profiling {name}")
        runs = max(1, repeats // 2)
        added = module_seconds(steps["spasemsr"], added_modules(pipeline, latent_hw), device, runs)
        record["added_module_seconds"] = added
        record["ratio_from_added_modules"] = round(1 + sum(added.values()) / record["median_s"]["plain"], 3)
        record["top_operators"] = {key: top_operators(step, device, runs) for key, step in steps.items()}
    return record


@contextlib.contextmanager
def call_counts(pipeline: SRPipeline) -> Iterator[dict[str, int]]:
    """Count calls of every encoder and per-image backend while the block runs."""
    counts: dict[str, int] = defaultdict(int)
    net, vae, conditioner = pipeline.net, pipeline.backbone.vae, pipeline.conditioner
    modules = {"text_encoder": net.text_encoder.model, "E_img": net.visual.img, "E_sem": net.visual.sem,
               "vae_encoder": vae.encoder, "vae_decoder": vae.decoder}
    handles = [module.register_forward_pre_hook(lambda *_, key=key: counts.__setitem__(key, counts[key] + 1))
               for key, module in modules.items() if module is not None]
    originals = {key: getattr(conditioner, key) for key in ("grounder", "describer", "drm")}

    def counted(key: str, fn: Callable) -> Callable:
        def call(*args: object, **kwargs: object) -> object:
            counts[key] += 1
            return fn(*args, **kwargs)
        return call

    for key, fn in originals.items():
        setattr(conditioner, key, counted(key, fn))
    pipeline.on_denoise = lambda: counts.__setitem__("denoiser", counts["denoiser"] + 1)
    try:
        yield counts
    finally:
        pipeline.on_denoise = None
        for key, fn in originals.items():
            setattr(conditioner, key, fn)
        for handle in handles:
            handle.remove()


def encoding_calls(pipeline: SRPipeline, lr: torch.Tensor, steps: int) -> dict:
    """Calls per phase: everything knob-independent must run in ``prepare``, only the denoiser per step."""
    with torch.no_grad(), call_counts(pipeline) as counts:
        prepared = pipeline.prepare(lr)
        in_prepare = dict(counts)
        counts.clear()
        pipeline.sample(prepared, torch.Generator().manual_seed(0), replace(pipeline.sampler, steps=steps))
        in_sample = dict(counts)
    encoders = ("text_encoder", "E_img", "E_sem", "grounder", "describer", "drm")
    return {"steps": steps, "prepare": in_prepare, "sample": in_sample,
            "per_step_encoding": any(in_sample.get(key, 0) for key in encoders)}


def main(argv: list[str] | None = None) -> None:
    """Measure the cases, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "guidance_overhead.json", repeats=5)
    parser.add_argument("--cases", nargs="+", default=["tiny", "sd2"], choices=["tiny", "sd2"])
    parser.add_argument("--tiny-lr", type=int, default=64, help="LR side of the tiny case")
    parser.add_argument("--tiny-repeats", type=int, default=20, help="interleaved pairs of the (cheap) tiny case")
    parser.add_argument("--sd2-lr", type=int, nargs="+", default=[0],
                        help="LR side(s) of the sd2 case (0: 64 on CPU, 128 = the paper's 512² HR on CUDA)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps of the call-count check")
    parser.add_argument("--profile", action="store_true", help="profile every case, not only those over target")
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    tiny, baseline = tiny_pipelines(device)
    calls = encoding_calls(tiny, photo_lr(args.tiny_lr, device), args.steps)
    cases = []
    if "tiny" in args.cases:
        cases.append(measure_case("tiny", tiny, baseline.net, photo_lr(args.tiny_lr, device), device,
                                  args.tiny_repeats, args.profile))
    del baseline
    if "sd2" in args.cases:
        pipeline, plain = sd2_pipeline(tiny, device)
        for side in args.sd2_lr:
            side = side or (128 if device.type == "cuda" else 64)
            cases.append(measure_case(f"sd2 HR {tiny.scale * side}", pipeline, plain, photo_lr(side, device), device,
                                      args.repeats, args.profile))
    worst = max(cases, key=lambda case: case["ratio"])
    rows = [[c["case"], f"{c['latent'][0]}x{c['latent'][1]}", f"{c['median_s']['spasemsr']:.4f}",
             f"{c['median_s']['plain']:.4f}", f"{c['ratio']:.3f}", "yes" if c["met"] else "NO"] for c in cases]
    print_table(f"guidance overhead per denoising step ({device.type}, {torch.get_num_threads()} threads, "
                f"target <= {TARGET})", ["case", "latent", "SpaSemSR s", "plain s", "ratio", "met"], rows)
    for case in cases:
        if "added_module_seconds" in case:
            print_table(f"{case['case']}: seconds per step inside the added modules (1 + their sum / plain step = "
                        f"{case['ratio_from_added_modules']:.3f})", ["module group", "s"],
                        list(case["added_module_seconds"].items()))
    print(f"calls in prepare: {calls['prepare']}\ncalls in a {calls['steps']}-step sample: {calls['sample']}"
          f"\nper-step encoding: {'YES' if calls['per_step_encoding'] else 'none'}")
    write_json(args.out, {
        "benchmark": "guidance_overhead", "target": TARGET, "ratio": worst["ratio"], "ratio_case": worst["case"],
        "met": all(c["met"] for c in cases), "device": device.type, "cases": cases, "encoding_calls": calls,
        "environment": environment(device),
    })


if __name__ == "__main__":
    main()
