"""The kodak5 benchmark: every shipped method under both LR recipes, one table per recipe.

``python -m spasemsr.evaluation.suite --out experiments/results [--steps N] [--sets kodak5,unseen] [--lr L]``
evaluates bicubic, the DRM, the pretrained Real-ESRGAN x4plus and RealSR, the ControlNet-SR baseline and
SpaSemSR (each as shipped and raw; SpaSemSR also with its fidelity preset and from an x4plus start) from
``weights/tiny/`` on kodak5 (and, asked for, the ``unseen`` photos no training or tuning reads) with
``lr=realesrgan`` and ``lr=bicubic`` (``--lr`` picks), writing ``<out>/<set>_<lr>.md`` and ``.csv`` and each
run's files under ``<out>/<set>_<lr>/<method>/``. A method whose weights folder is missing is skipped with a
message on stderr and a line in the table file, never silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spasemsr.evaluation.datasets import BUNDLED_SETS, LR_RECIPES, EvalSet, bundled_set
from spasemsr.evaluation.evaluate import evaluate, seed_folder
from spasemsr.evaluation.table import seed_mean, write_tables
from spasemsr.metrics.artifacts import dark_dots
from spasemsr.sweep import SHIPPED_FRONT
from spasemsr.sweep.front import preset_knobs
from spasemsr.weights.table import TINY

RAW = {"color_fix": "none", "backproject": 0}
"""Knobs of the bare model: its sample as decoded, without colour fix or back-projection (sampler=raw)."""
DRM_START = {"start_image": "drm", "start_t": 0.5}
"""Restore-then-generate: sampling starts from the DRM's restoration noised half-way (start_t fixed a priori, not
tuned on any evaluation set)."""


@dataclass(frozen=True)
class SuiteMethod:
    folder: str  # under the results folder
    label: str  # in the table
    kind: str  # restorer | diffusion
    weights: str | None  # folder under the shipped root, None for bicubic
    knobs: dict = field(default_factory=dict)  # over the export's own sampler settings
    drm: str | None = None  # a DRM swapped into the export (``evaluate --drm``), None: the export's own
    preset: str | None = None  # knobs of this sweep preset of the model (SHIPPED_FRONT) under ``knobs``


METHODS: tuple[SuiteMethod, ...] = (
    SuiteMethod("bicubic", "bicubic", "restorer", None),
    SuiteMethod("drm", "DRM", "restorer", "drm/drm"),
    SuiteMethod("realesrgan_x4plus", "Real-ESRGAN x4plus", "restorer", None),
    SuiteMethod("realsr_df2k", "RealSR (DF2K)", "restorer", None),
    SuiteMethod("controlnet_sr_raw", "ControlNet-SR (raw)", "diffusion", "controlnet_sr", RAW),
    SuiteMethod("controlnet_sr", "ControlNet-SR", "diffusion", "controlnet_sr"),
    SuiteMethod("spasemsr_raw", "SpaSemSR (raw)", "diffusion", "spasemsr", RAW),
    SuiteMethod("spasemsr", "SpaSemSR", "diffusion", "spasemsr"),
    SuiteMethod("spasemsr_fidelity_raw", "SpaSemSR, fidelity preset (raw)", "diffusion", "spasemsr", RAW,
                preset="fidelity"),
    SuiteMethod("spasemsr_fidelity", "SpaSemSR, fidelity preset", "diffusion", "spasemsr", preset="fidelity"),
    SuiteMethod("spasemsr_x4plus_start_raw", "SpaSemSR, x4plus start (raw)", "diffusion", "spasemsr",
                {**RAW, **DRM_START}, "realesrgan_x4plus"),
    SuiteMethod("spasemsr_x4plus_start", "SpaSemSR, x4plus start", "diffusion", "spasemsr", DRM_START,
                "realesrgan_x4plus"),
)
"""Every row of the tables: bicubic, the real pretrained peers (Real-ESRGAN x4plus, RealSR, from PyPI wheels), our
models; the diffusion models both as shipped (configs/sampler/consistent.yaml) and raw, SpaSemSR also with the
knobs of its PD sweep's fidelity preset (``upscale --preset fidelity``: swept on kodak5's 256-px top-left crops, so
``unseen`` is its clean test) and started from Real-ESRGAN x4plus's restoration (restore-then-generate, with x4plus
as its DRM for grounding too)."""


def suite_method(folder: str, kind: str, path: Path | None) -> str:
    """The method string `evaluate` takes: bicubic, drm:PATH or the export folder."""
    if path is None:
        return folder
    return str(path) if kind == "diffusion" else f"{folder}:{path}"


def bundled_sets(names: Sequence[str] = ("kodak5",), recipes: Sequence[str] = LR_RECIPES) -> dict[str, EvalSet]:
    """The named bundled sets under the LR recipes (default: all), keyed by the name their table files get."""
    return {f"{name}_{lr}": bundled_set(name, lr) for name in names for lr in recipes}


def hr_dark_dots(dataset: EvalSet) -> str:
    """The table line giving the HR's own dark-dot count: the level an SR's ``dark_dots`` is held to."""
    counts = [float(dark_dots(image.hr[None], dataset.scale)[0]) for image in dataset]
    return f"HR itself: dark_dots {sum(counts) / len(counts):.4g} per image (the level an SR should not exceed)"


def _seeds_of(entry: SuiteMethod, seeds: Sequence[int]) -> list[int]:
    """Restorers are deterministic: one run (the first seed); diffusion rows run every seed."""
    return list(seeds) if entry.kind == "diffusion" else list(seeds[:1])


def _row(entry: SuiteMethod, runs: list[dict]) -> dict:
    """A table row: the one run, or the mean over seeds with their std beside it."""
    return {"name": entry.label, **(runs[0] if len(runs) == 1 else seed_mean(runs))}


def _setting(result: dict) -> tuple:
    """What a seed's run must share with the others to be averaged with them: weights, backbone, knobs but the seed."""
    record = result["record"]
    return record["ckpt"], record.get("backbone"), {k: v for k, v in (record["knobs"] or {}).items() if k != "seed"}


def _kept_row(folder: Path, entry: SuiteMethod, dataset: EvalSet, seeds: Sequence[int]) -> dict | None:
    """The row earlier runs left in ``folder`` for this very set: over those of ``seeds`` that were run with the
    same checkpoint and knobs as the first one found (its record lists them), None if there is none."""
    runs = []
    for seed in _seeds_of(entry, seeds):
        path = seed_folder(folder, seed) / "metrics.json"
        result = json.loads(path.read_text()) if path.is_file() else None
        if result is None or result["record"]["dataset"]["hash"] != dataset.hash:
            continue
        if runs and _setting(result) != _setting(runs[0]):
            continue
        runs.append(result)
    return _row(entry, runs) if runs else None


def run_suite(out: str | Path, steps: int | None = None, weights: str | Path = TINY,
              sets: dict[str, EvalSet] | None = None, device: str = "cpu",
              rescore: bool = False, only: Sequence[str] | None = None,
              seeds: Sequence[int] = (0,), presets: str | Path = SHIPPED_FRONT) -> dict[str, list[dict]]:
    """Evaluate every method whose weights exist on every set; write the tables; return the rows per set.

    ``only`` (suite folder names) evaluates just those rows; the tables then keep the other rows' results from
    earlier runs in ``out`` (their own records, for the same set), or list them as not evaluated. Diffusion rows
    run once per sampler seed in ``seeds`` and show the mean ± std over them. A preset row takes its knobs from the
    exported front ``presets``, and is skipped (with a line in the table) if that front was swept on other weights.
    """
    out, weights = Path(out), Path(weights)
    unknown = sorted(set(only or ()) - {entry.folder for entry in METHODS})
    if unknown:
        raise ValueError(f"unknown suite methods {unknown}; valid: {[entry.folder for entry in METHODS]}")
    tables = {}
    for label, dataset in (sets or bundled_sets()).items():
        rows, skipped = [], []
        for entry in METHODS:
            if only and entry.folder not in only:
                kept = _kept_row(out / label / entry.folder, entry, dataset, seeds)
                if kept is None:
                    skipped.append(f"{entry.label} not evaluated (not in --only, and no earlier result of this set)")
                else:
                    rows.append(kept)
                continue
            path = weights / entry.weights if entry.weights else None
            if path is not None and not path.is_dir():
                skipped.append(f"{entry.label} skipped: {path} is missing "
                               "(`make weights-tiny` builds the shipped weights)")
                print(f"{label}: {skipped[-1]}", file=sys.stderr)
                continue
            try:
                preset = preset_knobs(presets, entry.preset, path) if entry.preset else {}
            except (FileNotFoundError, ValueError) as error:  # no front, or one swept on another checkpoint
                skipped.append(f"{entry.label} skipped: {error}")
                print(f"{label}: {skipped[-1]}", file=sys.stderr)
                continue
            method = suite_method(entry.folder, entry.kind, path)
            knobs = {**preset, **entry.knobs, **({"steps": steps} if steps and entry.kind == "diffusion" else {})}
            swap, entry_seeds = (f", drm {entry.drm}" if entry.drm else ""), _seeds_of(entry, seeds)
            print(f"{label}: evaluating {entry.label} ({method}, knobs {knobs}{swap}, seeds {entry_seeds})")
            runs = [evaluate(method, dataset, None, seed_folder(out / label / entry.folder, seed), knobs, seed,
                             device=device, rescore=rescore, drm=entry.drm) for seed in entry_seeds]
            rows.append(_row(entry, runs))
        write_tables(rows, out / label, title=label, footer=[hr_dark_dots(dataset), *skipped])
        tables[label] = rows
    return tables


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the suite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results", help="folder for the tables and per-run results")
    parser.add_argument("--steps", type=int, help="sampler steps of the diffusion models (default: their config)")
    parser.add_argument("--weights", default=str(TINY), help="the shipped weights folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rescore", action="store_true", help="score the saved SR images again (no sampling)")
    parser.add_argument("--only", help="comma-separated suite methods to evaluate (the others' earlier results are "
                                       f"kept in the tables): {', '.join(entry.folder for entry in METHODS)}")
    parser.add_argument("--sets", default="kodak5", help=f"comma-separated bundled sets: {', '.join(BUNDLED_SETS)}")
    parser.add_argument("--lr", default=",".join(LR_RECIPES), help="comma-separated LR recipes (default: all)")
    parser.add_argument("--seeds", default="0", help="comma-separated sampler seeds of the diffusion rows (mean ± std)")
    args = parser.parse_args(argv)
    only, names, recipes, seeds = ([part.strip() for part in text.split(",")] if text else None
                                   for text in (args.only, args.sets, args.lr, args.seeds))
    sets = bundled_sets(names, recipes)
    run_suite(args.out, args.steps, args.weights, sets, device=args.device, rescore=args.rescore, only=only,
              seeds=[int(seed) for seed in seeds])
    return 0


if __name__ == "__main__":
    sys.exit(main())
