"""The paper's LaTeX tables (booktabs): the result tables as the evaluation wrote them, plus the PD presets.

The kodak5 and ablation ``.tex`` files come from spasemsr.evaluation.table.write_tables next to their
CSV, so they are copied, never re-typeset; the presets table goes through the same ``latex_table``.
"""

from __future__ import annotations

from pathlib import Path

from spasemsr.evaluation.table import latex_table
from spasemsr.figures.inputs import ABLATE, EVAL, FRONT, Input, read_json, require
from spasemsr.utils.atomic import atomic_write_text

COPIED = (Input("kodak5_realesrgan.tex", EVAL), Input("kodak5_bicubic.tex", EVAL), Input("ablation.tex", ABLATE))
INPUTS = (*COPIED, FRONT)


def presets_table(front: dict) -> str:
    """The sweep's presets (fidelity, balance, perception) as a booktabs table of their metric vectors."""
    rows = [{"name": f"{name} (trial {preset['trial']})", "means": preset["metrics"]}
            for name, preset in front["presets"].items()]
    return latex_table(rows)


def write_tables(results: Path, out: Path) -> list[Path]:
    """``<out>/tables/*.tex``, each written atomically; returns their paths."""
    require(results, INPUTS)
    folder = out / "tables"
    written = []
    for item in COPIED:
        atomic_write_text(folder / item.name, item.path(results).read_text())
        written.append(folder / item.name)
    atomic_write_text(folder / "pd_presets.tex", presets_table(read_json(results, FRONT)))
    return [*written, folder / "pd_presets.tex"]
