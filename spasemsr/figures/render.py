"""``spasemsr figures``: every figure (PDF + PNG) and table of one study from result files alone, no model run.

Missing inputs: by default nothing is written and one error lists every absent file with the command
that makes it; ``skip_missing`` renders what the present files allow and prints a note per skipped item.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from spasemsr.figures import ablation_bars, comparison, knob_grid, pd_plane, tables
from spasemsr.figures.inputs import Input, MissingInputs, check
from spasemsr.figures.studies import Study, find_study
from spasemsr.figures.style import save_figure

FIGURES: dict[str, tuple[Callable[[Study], tuple[Input, ...]], Callable[[Path, Study], Figure]]] = {
    "pd_plane": (pd_plane.inputs, pd_plane.figure),
    "knob_grid": (knob_grid.inputs, knob_grid.figure),
    "comparison": (lambda study: comparison.INPUTS, lambda results, study: comparison.figure(results)),  # photo only
    "ablation_bars": (ablation_bars.inputs, ablation_bars.figure),
}
ITEMS = (*FIGURES, "tables")


def _inputs(name: str, study: Study) -> tuple[Input, ...]:
    return tables.inputs(study) if name == "tables" else FIGURES[name][0](study)


def _write(name: str, results: Path, out: Path, study: Study) -> list[Path]:
    if name == "tables":
        return tables.write_tables(results, out, study)
    return save_figure(FIGURES[name][1](results, study), out, name)


def render(results: str | Path, out: str | Path, only: Sequence[str] = (), skip_missing: bool = False,
           study: str | Study = "photo") -> list[Path]:
    """Write the study's chosen items (default: all) under ``out`` (or ``out/<study>``); returns the files written."""
    study = find_study(study)
    results, out = Path(results), Path(out) / study.out
    items = (*study.figures, "tables")
    unknown = sorted(set(only) - set(items))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown} for the {study.name} study; valid: {', '.join(items)}")
    names = [name for name in items if not only or name in only]
    missing = {name: check(results, _inputs(name, study)) for name in names}
    if not skip_missing and any(missing.values()):
        raise MissingInputs(dict.fromkeys(pair for pairs in missing.values() for pair in pairs))
    written: list[Path] = []
    for name in names:
        try:
            if missing[name]:
                raise MissingInputs(missing[name])
            written += _write(name, results, out, study)
        except MissingInputs as err:
            if not skip_missing:
                raise
            print(f"figures: skipped {name}: {err}", file=sys.stderr)
    return written
