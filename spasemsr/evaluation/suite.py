"""The kodak5 benchmark: every shipped method under both LR recipes, one table per recipe.

``python -m spasemsr.evaluation.suite --out experiments/results [--steps N]`` evaluates bicubic, the DRM,
the ControlNet-SR baseline and SpaSemSR from ``weights/tiny/`` on kodak5 with ``lr=realesrgan`` and
``lr=bicubic``, writing ``<out>/kodak5_<lr>.md`` and ``.csv`` and each run's files under
``<out>/kodak5_<lr>/<method>/``. A method whose weights folder is missing is skipped with a message on
stderr and a line in the table file, never silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spasemsr.evaluation.datasets import LR_RECIPES, EvalSet, bundled_set
from spasemsr.evaluation.runner import evaluate
from spasemsr.evaluation.table import protocol_notes, results_table, write_results_csv
from spasemsr.training.ship import SHIPPED
from spasemsr.utils.atomic import atomic_write_text

METHODS: tuple[tuple[str, str, str, str | None], ...] = (
    ("bicubic", "bicubic", "restorer", None),
    ("drm", "DRM", "restorer", "drm/drm"),
    ("controlnet_sr", "ControlNet-SR", "diffusion", "controlnet_sr"),
    ("spasemsr", "SpaSemSR", "diffusion", "spasemsr"),
)
"""(folder under the results, label in the table, kind, weights folder under the shipped root or None)."""


def _method(folder: str, kind: str, path: Path | None) -> str:
    """The method string `evaluate` takes: bicubic, drm:PATH or the export folder."""
    if path is None:
        return folder
    return str(path) if kind == "diffusion" else f"{folder}:{path}"


def kodak5_sets() -> dict[str, EvalSet]:
    """kodak5 under every LR recipe, keyed by the name its table files get."""
    return {f"kodak5_{lr}": bundled_set("kodak5", lr) for lr in LR_RECIPES}


def run_suite(out: str | Path, steps: int | None = None, weights: str | Path = SHIPPED,
              sets: dict[str, EvalSet] | None = None, device: str = "cpu") -> dict[str, list[dict]]:
    """Evaluate every method whose weights exist on every set; write the tables; return the rows per set."""
    out, weights = Path(out), Path(weights)
    tables = {}
    for label, dataset in (sets or kodak5_sets()).items():
        rows, skipped = [], []
        for folder, name, kind, sub in METHODS:
            path = weights / sub if sub else None
            if path is not None and not path.is_dir():
                skipped.append(f"{name} skipped: {path} is missing (`make weights-tiny` builds the shipped weights)")
                print(f"{label}: {skipped[-1]}", file=sys.stderr)
                continue
            method = _method(folder, kind, path)
            knobs = {"steps": steps} if steps and kind == "diffusion" else {}
            print(f"{label}: evaluating {name} ({method})")
            rows.append({"name": name, **evaluate(method, dataset, None, out / label / folder, knobs, device=device)})
        text = f"# {label}\n\n{results_table(rows)}\n{protocol_notes(rows)}" + "".join(f"- {s}\n" for s in skipped)
        atomic_write_text(out / f"{label}.md", text)
        write_results_csv(rows, out / f"{label}.csv")
        tables[label] = rows
    return tables


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the suite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results", help="folder for the tables and per-run results")
    parser.add_argument("--steps", type=int, help="sampler steps of the diffusion models (default: their config)")
    parser.add_argument("--weights", default=str(SHIPPED), help="the shipped weights folder")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    run_suite(args.out, args.steps, args.weights, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
