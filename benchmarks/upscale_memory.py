"""Peak memory and time of tiled x4 upscaling as the output grows (issue #7): memory should stay flat.

    python -m benchmarks.upscale_memory [--sizes 512 1024 2048] [--tile 256] [--steps 4] [--untiled-up-to 1024]

Each (size, tiling) case runs in a fresh interpreter (so its peak memory is that case's alone) that upscales
an LR of side size/4 (a bundled photo, resized) with the shipped tiny SpaSemSR and reports its peak RSS
(``ru_maxrss``; on CUDA also ``max_memory_allocated``) and the time of the upscaling call. Results are
printed and written to ``benchmarks/results/upscale_memory.json`` with the environment and settings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from benchmarks.common import (
    add_common_args,
    environment,
    peak_rss_mib,
    photo_lr,
    print_table,
    run_child,
    setup,
    synchronize,
    write_json,
)
from spasemsr.weights.table import default_path

MODEL = default_path("tiny_spasemsr")


def child(size: int, tile: int, steps: int, device: torch.device) -> dict:
    """One case, in this (fresh) interpreter: load, upscale once, report time and peak memory."""
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline(MODEL, device=device)
    lr = photo_lr(size // pipeline.scale, device)
    before = peak_rss_mib()
    knobs = replace(pipeline.sampler, steps=steps, tile_size=tile, tile_overlap=64)
    synchronize(device)
    started = time.perf_counter()
    sr = pipeline(lr, torch.Generator(device).manual_seed(0), knobs)
    synchronize(device)
    record = {"output": list(sr.shape[-2:]), "seconds": round(time.perf_counter() - started, 2),
              "peak_rss_mib": round(peak_rss_mib(), 1), "rss_before_mib": round(before, 1)}
    if device.type == "cuda":
        record["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return record


def main(argv: list[str] | None = None) -> None:
    """Run the cases, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--tile", type=int, default=256, help="HR pixels per tile")
    parser.add_argument("--steps", type=int, default=4, help="DDIM steps (time scales ~linearly)")
    parser.add_argument("--untiled-up-to", type=int, default=1024, help="also run untiled up to this size")
    parser.add_argument("--child", type=int, nargs=2, metavar=("SIZE", "TILE"), help=argparse.SUPPRESS)
    add_common_args(parser, "upscale_memory.json", repeats=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    if args.child:
        print(json.dumps(child(*args.child, args.steps, device)))
        return
    cases = [(size, args.tile) for size in args.sizes]
    cases += [(size, 0) for size in args.sizes if size <= args.untiled_up_to]
    rows = []
    for size, tile in cases:
        argv = ["--child", str(size), str(tile), "--steps", str(args.steps), "--device", args.device,
                "--threads", str(args.threads)]
        rows.append({"size": size, "tile": tile, "steps": args.steps, **run_child("benchmarks.upscale_memory", argv)})
    print_table(f"tiled x4 upscaling, {MODEL} ({device.type}, {args.threads} threads, {args.steps} steps)",
                ["output", "tiling", "peak RSS MiB", "model loaded MiB", "seconds"],
                [[f"{r['size']}x{r['size']}", f"tile {r['tile']}" if r["tile"] else "untiled", r["peak_rss_mib"],
                  r["rss_before_mib"], r["seconds"]] for r in rows])
    write_json(args.out, {"benchmark": "upscale_memory", "model": MODEL, "environment": environment(device),
                          "cases": rows})


if __name__ == "__main__":
    main()
