"""PSNR-Y and NIQE of every registered sampler at 10 and 20 steps, under the PD sweep's protocol (issue #16, item 3).

    python -m benchmarks.samplers [--experiment experiments/pd_sweep.yaml] [--samplers ddim euler ...]
                                  [--steps 10 20] [--seeds 0 1 2] [--images 0]

The sweep file's model (the shipped tiny SpaSemSR) scores the sweep file's set (``eval``: kodak5,
Real-ESRGAN LR, 256² HR cuts) under its fixed knobs (the bare model: no colour fix, no back-projection),
every other knob at the model's own setting. Each image is prepared once (``SRPipeline.prepare``: DRM,
grounder, describer, encoders, start latent) and sampled under every (sampler, steps, seed) with a fresh
``torch.Generator().manual_seed(seed)``, as a sweep trial does. A setting's score is the mean over the
images for each seed; the table gives the mean and the (sample) standard deviation of that over the seeds,
and the median seconds of one ``sample`` call (denoising + VAE decode, without ``prepare``). Written to
``benchmarks/results/samplers.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from benchmarks.common import add_common_args, environment, print_table, progress, setup, timed, write_json

METRICS = ("psnr_y", "niqe")


def _spread(values: list[float]) -> dict[str, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "std": round(std, 4)}


def main(argv: list[str] | None = None) -> None:
    """Prepare each image once, sample it under every setting, score, print the table and write the JSON."""
    from spasemsr.config.knobs import knob_overrides
    from spasemsr.metrics.registry import compute, usable
    from spasemsr.registries import SAMPLERS
    from spasemsr.sweep.spec import load_sweep_spec
    from spasemsr.weights.exports import load_pipeline, read_export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "samplers.json", repeats=None)
    parser.add_argument("--experiment", default="experiments/pd_sweep.yaml", help="its model and `eval` protocol")
    parser.add_argument("--samplers", nargs="+", default=None, help="registered names (default: every one)")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=0, help="first N images of the set (0: as the spec says)")
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    names = args.samplers or list(SAMPLERS.names())
    for name in names:
        SAMPLERS.check(name)
    spec = load_sweep_spec(args.experiment)
    if args.images:
        spec.eval.images = args.images
    scale = read_export(spec.model).data.scale
    dataset = spec.eval.dataset(scale)
    for metric in METRICS:
        ready, reason = usable(metric, dataset.smallest, scale)
        if not ready:
            raise SystemExit(f"metric {metric} cannot score this set: {reason}")
    progress(f"samplers: {spec.model} on {spec.eval.data} ({spec.eval.lr} LR, crop {spec.eval.crop}), "
             f"samplers {names}, steps {args.steps}, seeds {args.seeds}")
    pipeline = load_pipeline(spec.model, device=device)
    base = replace(pipeline.sampler, **knob_overrides(spec.eval.knobs))
    settings = [(name, steps) for name in names for steps in args.steps]
    scores = {(name, steps, seed): {m: [] for m in METRICS} for name, steps in settings for seed in args.seeds}
    seconds: dict[tuple[str, int], list[float]] = {setting: [] for setting in settings}
    prepare_s = []
    images = list(dataset)
    with torch.no_grad():
        for index, image in enumerate(images):
            started = time.perf_counter()
            prepared = pipeline.prepare(image.lr[None].to(device))
            prepare_s.append(time.perf_counter() - started)
            progress(f"  image {index + 1}/{len(images)} {image.name}")
            for name, steps in settings:
                knobs = replace(base, name=name, steps=steps)
                for seed in args.seeds:
                    out: dict[str, torch.Tensor] = {}

                    def run(knobs=knobs, seed=seed, out=out, prepared=prepared) -> None:
                        generator = torch.Generator(device.type).manual_seed(seed)
                        out["sr"] = pipeline.sample(prepared, generator, replace(knobs, seed=seed))

                    seconds[(name, steps)].append(timed(run, device))
                    sr = out["sr"].cpu()
                    for metric in METRICS:
                        value = float(compute(metric, sr, hr=image.hr[None], lr=prepared.lr.cpu(), scale=scale)[0])
                        scores[(name, steps, seed)][metric].append(value)
    rows = []
    for name, steps in settings:
        per_seed = {m: [round(statistics.fmean(scores[(name, steps, seed)][m]), 4) for seed in args.seeds]
                    for m in METRICS}
        rows.append({"sampler": name, "steps": steps, **{m: _spread(per_seed[m]) for m in METRICS},
                     "per_seed": per_seed,
                     "per_image": {m: [[round(v, 4) for v in scores[(name, steps, seed)][m]] for seed in args.seeds]
                                   for m in METRICS},
                     "seconds_per_image": round(statistics.median(seconds[(name, steps)]), 3)})
    print_table(f"samplers on {len(images)} {spec.eval.data} cuts ({spec.eval.crop}² HR, {spec.eval.lr} LR), "
                f"mean ± std over seeds {args.seeds} ({device.type}, {torch.get_num_threads()} threads)",
                ["sampler", "steps", "PSNR-Y (dB)", "NIQE", "s / image"],
                [[row["sampler"], row["steps"], f"{row['psnr_y']['mean']:.2f} ± {row['psnr_y']['std']:.2f}",
                  f"{row['niqe']['mean']:.2f} ± {row['niqe']['std']:.2f}", f"{row['seconds_per_image']:.2f}"]
                 for row in rows])
    print(f"prepare (once per image): {statistics.median(prepare_s):.2f} s median")
    write_json(args.out, {
        "benchmark": "samplers", "device": device.type, "experiment": args.experiment, "model": spec.model,
        "data": spec.eval.data, "lr": spec.eval.lr, "crop": spec.eval.crop, "images": len(images),
        "image_names": [image.name for image in images], "knobs": dict(spec.eval.knobs),
        "seeds": list(args.seeds), "metrics": list(METRICS), "rows": rows,
        "prepare_s_median": round(statistics.median(prepare_s), 3), "environment": environment(device),
    })


if __name__ == "__main__":
    main()
