"""Seconds per PD-sweep trial against seconds per plain evaluation pass of the same images (issue #9, target <= 1.1).

    python -m benchmarks.sweep_throughput [--experiment experiments/pd_sweep.yaml] [--images 2] [--steps 10]

Both sides run in this one process on one loaded pipeline, interleaved (``--repeats`` pairs after a
warm-up; the ratio is the median of the per-pair ratios), with the same knobs, seed, images and metrics:

- trial: ``SweepObjective(trial)`` on a fixed trial (every searched knob at its neutral value, ``--steps``
  steps): the sweep's per-trial work, its model and conditions loaded once in ``SweepObjective.__init__``;
- plain pass: what ``spasemsr evaluate`` does per image, without the PNG round-trip: ``prepare`` (DRM,
  grounder, describer, encoders) + ``sample`` + the same metrics.

One trial is also profiled (cProfile): cumulative seconds in the pipeline's stages show what a trial still
repeats. ``SweepObjective.__init__`` (model load + every image's conditions) is timed once.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import optuna
import torch

from benchmarks.common import (
    add_common_args,
    environment,
    interleaved,
    paired_ratio,
    print_table,
    progress,
    setup,
    write_json,
)
from spasemsr.config.knobs import NEUTRAL_KNOBS

if TYPE_CHECKING:
    from spasemsr.config.schema import SamplerConfig
    from spasemsr.sweep.objective import SweepObjective
    from spasemsr.sweep.spec import SweepSpec

TARGET = 1.1
STAGES = {  # (file suffix, function) -> label, for the cProfile breakdown of one trial
    ("spasemsr/pipeline.py", "prepare"): "prepare (conditions)",
    ("spasemsr/pipeline.py", "sample"): "sample (whole)",
    ("spasemsr/diffusion/latents.py", "clean_latents"): "VAE encode of the start latent",
    ("spasemsr/guidance/denoiser.py", "eps"): "denoiser (all steps)",
    ("spasemsr/diffusion/latents.py", "decode"): "VAE decode",
    ("spasemsr/diffusion/color_fix.py", "color_fix"): "colour fix",
    ("spasemsr/diffusion/consistency.py", "back_project"): "back-projection",
    ("spasemsr/metrics/registry.py", "compute"): "metrics",
}


def fixed_params(spec: SweepSpec, steps: int) -> dict[str, object]:
    """A value for every searched knob: neutral where the knob has one, else ``steps`` or the range's top."""
    params = {}
    for name, dim in spec.space.items():
        if dim.choices:
            value = dim.choices[0]
        elif name == "steps":
            value = steps
        else:
            value = NEUTRAL_KNOBS.get(name, dim.high)
        params[name] = value
    return params


def plain_pass(objective: SweepObjective, settings: SamplerConfig, device: str) -> None:
    """Per image: conditions, sampling and the objective's metrics, as ``evaluate`` does minus the PNG files."""
    from spasemsr.metrics.registry import compute

    pipeline = objective.pipeline
    for image, _ in objective.images:
        lr = image.lr[None].to(device)
        prepared = pipeline.prepare(lr)
        sr = pipeline.sample(prepared, torch.Generator(device).manual_seed(objective.spec.seed), settings).cpu()
        for name in objective.metrics:
            compute(name, sr, hr=image.hr[None], lr=lr.cpu(), scale=pipeline.scale)


def stage_seconds(call: Callable[[], object]) -> dict[str, float]:
    """Cumulative seconds per pipeline stage in one call (cProfile; nested stages overlap their parents)."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    stats = pstats.Stats(profiler)
    found: dict[str, float] = {}
    for (path, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for (suffix, name), label in STAGES.items():
            if function == name and path.endswith(suffix):
                found[label] = round(found.get(label, 0.0) + cumulative, 3)
    ordered = {label: found[label] for label in STAGES.values() if label in found}
    return {"total (profiled)": round(stats.total_tt, 3), **ordered}


def main(argv: list[str] | None = None) -> None:
    """Set the sweep up, time trials against plain passes, profile a trial, print and write the JSON."""
    from spasemsr.config.knobs import knob_overrides
    from spasemsr.sweep.objective import SweepObjective
    from spasemsr.sweep.spec import load_sweep_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "sweep_throughput.json", repeats=3)
    parser.add_argument("--experiment", default="experiments/pd_sweep.yaml")
    parser.add_argument("--images", type=int, default=2, help="first N images of the sweep's set (0: as the spec says)")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps of the fixed trial")
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    spec = load_sweep_spec(args.experiment)
    if args.images:
        spec.eval.images = args.images
    progress(f"sweep_throughput: setting up {args.experiment} ({spec.model})")
    started = time.perf_counter()
    objective = SweepObjective(spec, device.type)
    setup_s = time.perf_counter() - started
    params = fixed_params(spec, args.steps)
    settings = replace(objective.base, **knob_overrides(params), seed=spec.seed)
    progress(f"  {len(objective.images)} images, metrics {objective.metrics}, knobs {params}")
    cases = {"trial": lambda: objective(optuna.trial.FixedTrial(params)),
             "plain_pass": lambda: plain_pass(objective, settings, device.type)}
    with torch.no_grad():
        seconds = interleaved(cases, device, args.repeats)
        progress("  profiling one trial and one plain pass")
        profiles = {name: stage_seconds(call) for name, call in cases.items()}
    ratio = paired_ratio(seconds["trial"], seconds["plain_pass"])
    medians = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
    images = len(objective.images)
    print_table(f"sweep throughput ({device.type}, {torch.get_num_threads()} threads, {images} images, "
                f"{args.steps} steps, target <= {TARGET})", ["case", "median s", "s per image"],
                [[name, f"{m:.3f}", f"{m / images:.3f}"] for name, m in medians.items()])
    print(f"ratio trial / plain pass: {ratio:.3f} ({'met' if ratio <= TARGET else 'MISSED'}); "
          f"sweep set-up (load + conditions of every image, once): {setup_s:.2f} s")
    print_table("cProfile cumulative seconds by stage", ["stage", *profiles],
                [[label, *(profiles[name].get(label) for name in profiles)]
                 for label in ["total (profiled)", *STAGES.values()]])
    write_json(args.out, {
        "benchmark": "sweep_throughput", "target": TARGET, "ratio": round(ratio, 3), "met": ratio <= TARGET,
        "device": device.type, "experiment": args.experiment, "model": spec.model, "images": images,
        "crop": spec.eval.crop, "metrics": objective.metrics, "knobs": params, "repeats": args.repeats,
        "median_s": medians, "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
        "setup_s": round(setup_s, 3), "stage_seconds": profiles, "environment": environment(device),
    })


if __name__ == "__main__":
    main()
