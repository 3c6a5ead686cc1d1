"""``spasemsr figures``: every figure (PDF + PNG) and table from result files alone, no model run.

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
from spasemsr.figures.style import save_figure

FIGURES: dict[str, tuple[tuple[Input, ...], Callable[[Path], Figure]]] = {
    "pd_plane": (pd_plane.INPUTS, pd_plane.figure),
    "knob_grid": (knob_grid.INPUTS, knob_grid.figure),
    "comparison": (comparison.INPUTS, comparison.figure),
    "ablation_bars": (ablation_bars.INPUTS, ablation_bars.figure),
}
ITEMS = (*FIGURES, "tables")


def _inputs(name: str) -> tuple[Input, ...]:
    return tables.INPUTS if name == "tables" else FIGURES[name][0]


def render(results: str | Path, out: str | Path, only: Sequence[str] = (), skip_missing: bool = False) -> list[Path]:
    """Write the chosen items (default: all) under ``out``; returns the files written."""
    results, out = Path(results), Path(out)
    unknown = sorted(set(only) - set(ITEMS))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; valid: {', '.join(ITEMS)}")
    names = [name for name in ITEMS if not only or name in only]
    missing = {name: check(results, _inputs(name)) for name in names}
    if not skip_missing and any(missing.values()):
        raise MissingInputs(dict.fromkeys(pair for pairs in missing.values() for pair in pairs))
    written: list[Path] = []
    for name in names:
        try:
            if missing[name]:
                raise MissingInputs(missing[name])
            written += tables.write_tables(results, out) if name == "tables" else save_figure(
                FIGURES[name][1](results), out, name)
        except MissingInputs as err:
            if not skip_missing:
                raise
            print(f"figures: skipped {name}: {err}", file=sys.stderr)
    return written
