"""Peak memory and time of tiled x4 upscaling as the output grows (issue #7): memory should stay flat.

    python benchmarks/upscale_memory.py [--sizes 512 1024 2048] [--tile 256] [--steps 4] [--untiled-up-to 1024]

Each (size, tiling) case runs in a fresh subprocess (so peak RSS is that case's alone) that upscales an
LR of side size/4 (a bundled photo, resized) with the shipped tiny SpaSemSR and reports its peak RSS
(``ru_maxrss``) and the time of the sample call. Results are printed and written to
``benchmarks/results/upscale_memory.json`` with the machine, torch version and settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from dataclasses import replace
import torch
from spasemsr.data.images import read_image
from spasemsr.data.resize import bicubic_up
from spasemsr.data.samples import sample_paths
from spasemsr.loading import load_pipeline
size, tile, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pipeline = load_pipeline("weights/tiny/spasemsr")
photo = read_image(sample_paths("kodak5")[0])[None]
lr = bicubic_up(photo, (size // 4, size // 4)).clamp(0, 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
knobs = replace(pipeline.sampler, steps=steps, tile_size=tile, tile_overlap=64)
sr = pipeline(lr, torch.Generator().manual_seed(0), knobs)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"output": list(sr.shape[-2:]), "seconds": round(seconds, 2),
                  "peak_rss_mib": round(peak / 1024, 1), "rss_before_mib": round(before / 1024, 1)}))
"""


def run_case(size: int, tile: int, steps: int) -> dict:
    """One case in a fresh interpreter; returns its printed record."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(size), str(tile), str(steps)], capture_output=True,
                          text=True, check=True)
    return {"size": size, "tile": tile, "steps": steps, **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> None:
    """Run the cases, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--tile", type=int, default=256, help="HR pixels per tile")
    parser.add_argument("--steps", type=int, default=4, help="DDIM steps (time scales ~linearly)")
    parser.add_argument("--untiled-up-to", type=int, default=1024, help="also run untiled up to this size")
    parser.add_argument("--out", default="benchmarks/results/upscale_memory.json")
    args = parser.parse_args(argv)
    cases = [(size, args.tile) for size in args.sizes]
    cases += [(size, 0) for size in args.sizes if size <= args.untiled_up_to]
    rows = []
    for size, tile in cases:
        row = run_case(size, tile, args.steps)
        rows.append(row)
        label = f"tile {tile}" if tile else "untiled"
        print(f"{size}x{size} {label:>9}: peak RSS {row['peak_rss_mib']:8.1f} MiB "
              f"(model loaded: {row['rss_before_mib']:.1f}), {row['seconds']:.1f} s for {args.steps} steps", flush=True)
    record = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "torch": __import__("torch").__version__, "model": "weights/tiny/spasemsr", "cases": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
