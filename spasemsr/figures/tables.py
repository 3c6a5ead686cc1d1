"""The paper's LaTeX tables (booktabs): the result tables as the evaluation wrote them, plus the PD presets.

The study's ``.tex`` files (photo: kodak5 and ablation; probe: its ablation) come from
spasemsr.evaluation.table.write_tables next to their CSV, so they are copied, never re-typeset; the presets
table of the study's sweep goes through the same ``latex_table``.
"""

from __future__ import annotations

from pathlib import Path

from spasemsr.evaluation.table import latex_table
from spasemsr.figures.inputs import Input, read_json, require
from spasemsr.figures.studies import PHOTO, Study
from spasemsr.utils.atomic import atomic_write_text


def inputs(study: Study = PHOTO) -> tuple[Input, ...]:
    """The tables copied, and the exported front the presets table is read from."""
    return (*study.copied, study.front)


def presets_table(front: dict) -> str:
    """The sweep's presets (fidelity, balance, perception) as a booktabs table of their metric vectors."""
    rows = [{"name": f"{name} (trial {preset['trial']})", "means": preset["metrics"]}
            for name, preset in front["presets"].items()]
    return latex_table(rows)


def write_tables(results: Path, out: Path, study: Study = PHOTO) -> list[Path]:
    """``<out>/tables/*.tex``, each written atomically; returns their paths."""
    require(results, inputs(study))
    folder = out / "tables"
    written = []
    for item in study.copied:
        atomic_write_text(folder / item.name, item.path(results).read_text())
        written.append(folder / item.name)
    atomic_write_text(folder / "pd_presets.tex", presets_table(read_json(results, study.front)))
    return [*written, folder / "pd_presets.tex"]
