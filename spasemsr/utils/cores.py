"""Share the machine's CPU cores among worker processes (ablation jobs, sweep workers)."""

from __future__ import annotations

import os

import torch


def threads_per_worker(workers: int) -> int:
    """Torch threads each of ``workers`` processes gets so that together they fill the cores, not oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def use_threads(threads: int) -> None:
    """A spawned worker's initialiser: its torch thread count."""
    torch.set_num_threads(threads)
