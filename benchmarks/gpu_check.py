"""``make gpu-check``: the one prepared script for a GPU machine (about 6-8 minutes on one GPU), CUDA parts only.

    python -m benchmarks.gpu_check [--out benchmarks/results/gpu_check.json] [--sections ...]

Sections, each a fresh process with its own time limit, its output tail and seconds recorded:

- ``cuda-tests``: the test suite's CUDA subset (``pytest -m cuda``);
- ``tiny-training``: 200 SpaSemSR training steps of the tiny profile on the GPU (``trainer=gpu``, bf16-mixed);
- ``sd2-sample``: a 2-step SpaSemSR sample on SD-2-shaped random modules in fp16 and in bf16 (time, peak);
- ``upscale``: ``spasemsr upscale --device cuda`` of a bundled kodak5 image with the shipped weights;
- ``bench``: ``make bench`` ratios on CUDA (guidance overhead) and ``training_memory`` measured on the GPU
  (``torch.cuda.max_memory_allocated`` of real SD-2-shaped training steps, every memory option, batch 1 and 2).

Without a CUDA device every section is reported as skipped with the reason and the script exits 0, so its
CPU dry run is part of the test suite. The record is printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, environment, print_table, write_json
from benchmarks.training_memory import CASES

KODAK = "kodak5"


def _sd2_sample() -> dict:
    """Two DDIM steps of SpaSemSR at SD-2 shapes on CUDA, fp16 and bf16 autocast: seconds and peak GiB."""
    from dataclasses import replace

    from benchmarks.common import photo_lr
    from benchmarks.models import sd2_pipeline, tiny_pipelines

    device = torch.device("cuda")
    tiny, _ = tiny_pipelines(device)
    pipeline, _ = sd2_pipeline(tiny, device)
    lr = photo_lr(128, device)
    results = {}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        pipeline.precision = dtype
        torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        sr = pipeline(lr, torch.Generator(device).manual_seed(0), replace(pipeline.sampler, steps=2))
        torch.cuda.synchronize(device)
        results[name] = {"seconds": round(time.perf_counter() - started, 2), "output": list(sr.shape),
                         "finite": bool(torch.isfinite(sr).all()),
                         "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}
    return results


def sections(work: Path, results: Path) -> dict[str, tuple[list[list[str]], int]]:
    """Section name -> (its commands, run in order, and the section's time limit in seconds)."""
    from spasemsr.data.samples import sample_paths

    python = sys.executable
    photo = str(sample_paths(KODAK)[0])
    bench = [[python, "-m", "benchmarks.guidance_overhead", "--device", "cuda", "--repeats", "3",
              "--out", str(results / "guidance_overhead_cuda.json")],
             [python, "-m", "benchmarks.training_memory", "--device", "cuda", "--step-cases", *CASES,
              "--out", str(results / "training_memory_cuda.json")]]
    return {
        "cuda-tests": ([[python, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]], 120),
        "tiny-training": ([[python, "-m", "spasemsr", "train", "--config", "configs/spasemsr.yaml", "trainer=gpu",
                            "trainer.max_steps=200", "trainer.val_every_n_steps=200", "trainer.ckpt_every_n_steps=100",
                            f"run.root={work / 'runs'}", "data.num_workers=2"]], 150),
        "sd2-sample": ([[python, "-m", "benchmarks.gpu_check", "--inline", "sd2-sample"]], 90),
        "upscale": ([[python, "-m", "spasemsr", "upscale", photo, "--out", str(work / "upscale"), "--device", "cuda",
                      "--quiet"]], 60),
        "bench": (bench, 240),
    }


def run_section(commands: list[list[str]], limit: int) -> dict:
    """Run one section's commands within its time limit; its status, seconds and the tail of what they printed."""
    started, output, status = time.perf_counter(), "", "passed"
    for command in commands:
        left = limit - (time.perf_counter() - started)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=max(left, 1),
                                  env=dict(os.environ, HF_HUB_OFFLINE="1"))
        except subprocess.TimeoutExpired as err:
            output += (err.stdout or b"").decode(errors="replace")  # bytes, whatever text= says
            status = f"timed out after {limit} s"
            break
        output += done.stdout + done.stderr
        if done.returncode:
            status = f"failed (exit {done.returncode}): {' '.join(command[1:4])}"
            break
    return {"status": status, "seconds": round(time.perf_counter() - started, 1), "tail": output[-2500:]}


def main(argv: list[str] | None = None) -> int:
    """Run (or, without CUDA, skip) every section; print the table, write the JSON; exit 1 if one failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS), help="folder for gpu_check.json and the CUDA benchmarks")
    parser.add_argument("--sections", nargs="+", help="run only these sections")
    parser.add_argument("--inline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inline == "sd2-sample":
        print(json.dumps(_sd2_sample()))
        return 0
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as work:
        plan = sections(Path(work), Path(args.results))
        chosen = args.sections or list(plan)
        unknown = sorted(set(chosen) - set(plan))
        if unknown:
            parser.error(f"unknown sections {unknown}; valid: {list(plan)}")
        results = {}
        for name in chosen:
            if not cuda:
                results[name] = {"status": "skipped: no CUDA device visible (torch.cuda.is_available() is False)"}
                continue
            print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
            results[name] = run_section(*plan[name])
    print_table("gpu-check", ["section", "status", "seconds"],
                [[name, r["status"], r.get("seconds")] for name, r in results.items()])
    device = torch.device("cuda" if cuda else "cpu")
    write_json(Path(args.results) / "gpu_check.json",
               {"benchmark": "gpu_check", "environment": environment(device), "sections": results})
    return 0 if all(r["status"] == "passed" or r["status"].startswith("skipped") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
