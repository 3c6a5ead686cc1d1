"""Where the time of one large tiled upscale goes, stage by stage (issue #15, item 5).

    python -m benchmarks.upscale_stages [--lr 2000 1500] [--tile 256] [--steps 2] [--grounding-side 1024]

The shipped tiny SpaSemSR upscales a bundled photo resized to an LR of ``--lr`` W H pixels (x4 output),
tiled, with the shipped sampler's other knobs. Each stage is timed by wrapping the function that does it
(so the split adds no work): the DRM over LR tiles, the grounder, the describer, the text and visual
encoders, the LR-start latent, the denoiser (per step: every tile of it), the VAE decode, the colour fix
and the back-projection. Denoising time is linear in ``--steps``, so a few steps measure it. Written to
``benchmarks/results/upscale_stages.json``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from benchmarks.common import add_common_args, environment, peak_rss_mib, print_table, setup, synchronize, write_json
from spasemsr.weights.table import default_path

MODEL = default_path("tiny_spasemsr")


def _photo(width: int, height: int, device: torch.device) -> torch.Tensor:
    """The first kodak5 photo (4:3) resized to ``width`` x ``height``: a large real LR."""
    from spasemsr.data.images import read_image
    from spasemsr.data.samples import sample_paths

    photo = read_image(sample_paths("kodak5")[0])[None]
    return F.interpolate(photo, size=(height, width), mode="bicubic").clamp(0, 1).to(device)


class StageTimer:
    """Seconds and calls per stage, collected by wrapping the callables that run each stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            synchronize(self.device)
            started = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            return out

        return timed


def measure(lr_size: tuple[int, int], tile: int, steps: int, device: torch.device,
            grounding_side: int | None = None) -> dict:
    """Run one upscale with every stage wrapped; seconds per stage, in the order they run.

    ``grounding_side`` overrides the model's (0: the grounder sees the full-size DRM output, as before #15).
    """
    import spasemsr.pipeline as pipeline_module
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline(MODEL, device=device)
    timer = StageTimer(device)
    conditioner = pipeline.conditioner
    if grounding_side is not None:
        conditioner.grounding_side = grounding_side
    conditioner.drm = timer.wrap("DRM (per LR tile)", conditioner.drm)
    conditioner.grounder = timer.wrap("grounder", conditioner.grounder)
    conditioner.describer = timer.wrap("describer", conditioner.describer)
    net = pipeline.net
    net.conditions = timer.wrap("text + visual encoders", net.conditions)
    pipeline._start_latents = timer.wrap("LR-start latent (VAE encode)", pipeline._start_latents)
    net.eps = timer.wrap("denoiser (all tiles, all steps)", net.eps)
    originals = {name: getattr(pipeline_module, name) for name in ("decode", "color_fix", "back_project")}
    for name, label in (("decode", "VAE decode (per tile)"), ("color_fix", "colour fix"),
                        ("back_project", "back-projection")):
        setattr(pipeline_module, name, timer.wrap(label, originals[name]))
    try:
        lr = _photo(*lr_size, device)
        knobs = replace(pipeline.sampler, steps=steps, tile_size=tile, tile_overlap=64)
        started = time.perf_counter()
        sr = pipeline(lr, torch.Generator(device).manual_seed(0), knobs)
        synchronize(device)
        total = time.perf_counter() - started
    finally:
        for name, fn in originals.items():
            setattr(pipeline_module, name, fn)
    stages = {name: {"seconds": round(seconds, 2), "calls": timer.calls[name]}
              for name, seconds in timer.seconds.items()}
    return {"lr": list(lr_size), "output": list(sr.shape[-2:])[::-1], "tile": tile, "steps": steps,
            "total_seconds": round(total, 1), "stages": stages, "peak_rss_mib": round(peak_rss_mib(), 1),
            "knobs": {"color_fix": knobs.color_fix, "backproject": knobs.backproject},
            "grounding_side": conditioner.grounding_side}


def main(argv: list[str] | None = None) -> None:
    """Measure, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=int, nargs=2, default=[2000, 1500], metavar=("W", "H"))
    parser.add_argument("--tile", type=int, default=256, help="HR pixels per tile")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps (the denoiser's time is linear in them)")
    parser.add_argument("--grounding-side", type=int, help="override the model's (0: full-size DRM output)")
    add_common_args(parser, "upscale_stages.json", repeats=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    record = measure(tuple(args.lr), args.tile, args.steps, device, args.grounding_side)
    total = record["total_seconds"]
    print_table(f"upscale --tile {args.tile}, LR {args.lr[0]}x{args.lr[1]} -> {record['output'][0]}x"
                f"{record['output'][1]}, {args.steps} steps ({device.type}, {args.threads} threads): {total} s",
                ["stage", "seconds", "share", "calls"],
                [[name, s["seconds"], f"{s['seconds'] / total:.0%}", s["calls"]]
                 for name, s in record["stages"].items()])
    write_json(args.out, {"benchmark": "upscale_stages", "model": MODEL, "environment": environment(device),
                          **record})


if __name__ == "__main__":
    main()
