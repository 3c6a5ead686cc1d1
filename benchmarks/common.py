"""Plumbing every benchmark script shares: device and threads, timing, memory probes, the record, the output.

Timings are wall-clock seconds around a callable, with ``torch.cuda.synchronize`` on both sides when the
device is CUDA; a reported time is the median of several calls after a warm-up call. Memory is the peak
of the warm-up call above the level before it: ``torch.cuda.max_memory_allocated`` on CUDA, and on CPU
the resident set size sampled every 2 ms from ``/proc/self/statm`` after returning freed memory to the OS
(Linux; elsewhere it is reported as absent). Comparisons run their cases interleaved in one process, so
that load from other work on the machine slows every case alike.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path("benchmarks/results")
_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0


def add_common_args(parser: argparse.ArgumentParser, out: str, repeats: int | None) -> None:
    """The options every script takes: device, threads, repeats (unless ``None``: one run per case), output file."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (intra-op CPU threads)")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help="timed repeats per case (median reported)")
    parser.add_argument("--out", default=str(RESULTS / out), help="where the JSON record is written")


def setup(device: str, threads: int) -> torch.device:
    """Fix the thread count (recorded with every result) and resolve ``auto`` to CUDA when present."""
    torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timer read after it covers the work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_mib() -> float | None:
    """The process's current resident set size, or None where /proc is absent."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * _PAGE_MIB
    except OSError:
        return None


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_free_memory() -> None:
    """Hand memory freed by earlier work back to the OS (glibc ``malloc_trim``), so the RSS rises again on reuse.

    Without it a block whose tensors fit in memory an earlier block freed shows no RSS growth at all.
    """
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


class PeakMemory:
    """Peak memory (MiB) above the level at entry while the block runs; ``peak_mib`` is None if unmeasurable.

    On CPU this is a sampled RSS: a lower bound of what the block allocates, exact for its large tensors.
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = self._high = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            release_free_memory()
            start = rss_mib()
            if start is not None:
                self._start = self._high = start
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._high = max(self._high, rss_mib() or 0.0)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._start
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._high = max(self._high, rss_mib() or 0.0)
            self.peak_mib = self._high - self._start


@dataclass
class Measurement:
    """Seconds of each timed repeat, and the peak memory (MiB above the level before it) of the warm-up call."""

    seconds: list[float]
    peak_mib: float | None

    @property
    def median(self) -> float:
        """The reported time: robust to a repeat slowed by other work on the machine."""
        return statistics.median(self.seconds)

    def record(self) -> dict:
        """JSON form (rounded)."""
        return {"median_s": round(self.median, 4), "seconds": [round(s, 4) for s in self.seconds],
                "peak_mib": None if self.peak_mib is None else round(self.peak_mib, 1)}


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, synchronised on CUDA."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> Measurement:
    """Time ``repeats`` calls after one warm-up call, whose peak memory is the one reported.

    The warm-up absorbs first-call costs (lazy inits, allocator growth); probing memory only there keeps
    the RSS sampler's thread out of the timed calls.
    """
    with PeakMemory(device) as memory:
        fn()
    return Measurement([timed(fn, device) for _ in range(repeats)], memory.peak_mib)


def interleaved(cases: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each case per repeat, the cases run back to back and their order reversed every other repeat.

    Neighbouring calls see the same machine load, so per-repeat ratios between cases stay meaningful on a
    shared machine; alternating the order cancels a drift within a repeat.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for repeat in range(repeats):
        order = list(cases) if repeat % 2 == 0 else list(reversed(cases))
        for name in order:
            seconds[name].append(timed(cases[name], device))
    return seconds


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-repeat ratios (each pair measured back to back)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def photo_lr(side: int, device: torch.device) -> torch.Tensor:
    """A real photo (the first bundled kodak5 image) resized to an LR of ``side``² pixels, (1, 3, side, side)."""
    from spasemsr.data.images import read_image
    from spasemsr.data.samples import sample_paths

    photo = read_image(sample_paths("kodak5")[0])[None]
    return F.interpolate(photo, size=(side, side), mode="bicubic", antialias=True).clamp(0, 1).to(device)


def environment(device: torch.device) -> dict:
    """What a figure depends on besides the code: machine, threads, device, versions, and the run's note."""
    import diffusers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            cpu = next(line.split(":", 1)[1].strip() for line in stream if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "note": os.environ.get("BENCH_NOTE", ""),  # e.g. the load other work put on the machine meanwhile
    }


def write_json(path: str | Path, record: dict) -> Path:
    """Write ``record`` (indented, atomically: a killed run leaves the previous record whole) and say where."""
    from spasemsr.utils.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    print(f"written to {path}")
    return path


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned text table (numbers as given, None as '-')."""
    cells = [[str(h) for h in header]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def run_child(module: str, argv: Sequence[str]) -> dict:
    """Run ``python -m module argv`` in a fresh interpreter (its own peak memory); its last stdout line is JSON.

    The child's stderr (progress, warnings) passes through to ours.
    """
    done = subprocess.run([sys.executable, "-m", module, *argv], stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"python -m {module} {' '.join(argv)} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def progress(message: str) -> None:
    """A progress line on stderr (stdout of a child process carries only its JSON)."""
    print(message, file=sys.stderr, flush=True)


def fmt(value: float | None, digits: int = 3) -> str | None:
    """A number for a table cell, None kept as None."""
    return None if value is None else f"{value:.{digits}f}"
