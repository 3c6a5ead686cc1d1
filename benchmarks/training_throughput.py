"""Training throughput (images/s) and peak memory of the tiny profile's trainable stages (issue #9).

    python -m benchmarks.training_throughput [--tasks spasemsr controlnet_sr drm] [--repeats 12] [--warmup 3]

Each task trains in a fresh interpreter (so its peak memory is its own) through the same Lightning
``Trainer`` that ``spasemsr train`` builds, from its shipped config (configs/<task>.yaml: bundled data,
the tiny profile's batch size and crops, online Real-ESRGAN degradation) for ``--warmup`` + ``--repeats`` optimiser
steps, without validation or checkpoints. A callback notes the time at the end of every training batch;
an interval between two of them is one whole loop iteration (data, degradation, forward, backward,
optimiser step, logging). Images/s = batch size / median interval after the warm-up. Peak memory is the
child's peak RSS (the whole training process: frozen prior, text encoder, teacher, data) and, on CUDA,
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.common import (
    add_common_args,
    environment,
    peak_rss_mib,
    print_table,
    progress,
    run_child,
    setup,
    synchronize,
    write_json,
)

CONFIGS = {"spasemsr": "configs/spasemsr.yaml", "controlnet_sr": "configs/controlnet_sr.yaml",
           "drm": "configs/tiny_drm.yaml"}
NEVER = 10**9  # a step count no benchmark run reaches: no validation, no checkpoint


class BatchClock(Callback):
    """Timestamps at the end of each training batch (synchronised on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        synchronize(self.device)
        self.ends.append(time.perf_counter())


def train_record(task: str, steps: int, warmup: int, device: torch.device) -> dict:
    """Train ``task`` for ``warmup + steps`` steps in a temporary run folder; its throughput and memory."""
    from spasemsr.config import load_config
    from spasemsr.data.datamodule import SRDataModule
    from spasemsr.registries import TASKS
    from spasemsr.training.run import build_trainer

    with tempfile.TemporaryDirectory() as root:
        overrides = [f"run.root={root}", f"trainer.max_steps={warmup + steps + 1}", "trainer.resume=never",
                     f"trainer.val_every_n_steps={NEVER}", f"trainer.ckpt_every_n_steps={NEVER}"]
        if device.type == "cuda":
            overrides.insert(0, "trainer=gpu")
        cfg = load_config(CONFIGS[task], overrides)
        module = TASKS.get(cfg.model.name).module_class(cfg)
        datamodule = SRDataModule(cfg.data, cfg.degradation, cfg.seed, degrade=module.needs_lr)
        trainer = build_trainer(cfg, Path(root) / cfg.run.name)
        clock = BatchClock(device)
        trainer.callbacks.append(clock)
        trainer.fit(module, datamodule=datamodule)
    intervals = [b - a for a, b in pairwise(clock.ends)][warmup:]
    batch = cfg.data.batch_size
    record = {
        "task": task, "config": CONFIGS[task], "batch_size": batch, "crop": cfg.data.crop_size,
        "precision": cfg.trainer.precision, "warmup_steps": warmup, "steps": len(intervals),
        "step_s": [round(s, 4) for s in intervals], "median_step_s": round(statistics.median(intervals), 4),
        "images_per_s": round(batch / statistics.median(intervals), 3),
        "trainable_params_m": round(sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    if device.type == "cuda":
        record["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return record


def main(argv: list[str] | None = None) -> None:
    """Train each task in its own process, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "training_throughput.json", repeats=12)
    parser.add_argument("--tasks", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--warmup", type=int, default=3, help="first loop iterations left out (start-up)")
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        device = setup(args.device, args.threads)
        record = train_record(args.child, args.repeats, args.warmup, device)
        print(json.dumps({**record, "environment": environment(device)}))
        return
    tasks = []
    for task in args.tasks:
        progress(f"training_throughput: {task} ({args.warmup} + {args.repeats} steps)")
        tasks.append(run_child("benchmarks.training_throughput", [
            "--child", task, "--device", args.device, "--threads", str(args.threads),
            "--repeats", str(args.repeats), "--warmup", str(args.warmup)]))
    env = tasks[0]["environment"]
    rows = [[t["task"], t["batch_size"], t["crop"], t["precision"], f"{t['median_step_s']:.3f}",
             f"{t['images_per_s']:.2f}", f"{t['peak_rss_mib']:.0f}", t.get("cuda_max_allocated_mib")] for t in tasks]
    print_table(f"training throughput, tiny profile ({env['device']}, {env['torch_threads']} threads, "
                f"median of {args.repeats} steps)",
                ["task", "batch", "crop", "precision", "s/step", "images/s", "peak RSS MiB", "CUDA MiB"], rows)
    write_json(args.out, {"benchmark": "training_throughput", "tasks": tasks})


if __name__ == "__main__":
    main()
