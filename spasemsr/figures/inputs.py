"""The result files each figure reads, the command that makes each one, and one error naming every file missing."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EVAL = "make eval"
ABLATE = "make ablate"
SWEEP = "make sweep"
FIGURE_DATA = "make figure-data"
FIGURE_DATA_DIR = "figure_data"
"""Folder under the results folder holding the small committed crops and JSON that ``make figure-data`` writes."""


@dataclass(frozen=True)
class Input:
    """A file under the results folder and the command that produces it."""

    name: str
    producer: str

    def path(self, results: Path) -> Path:
        """Where the file lies under ``results``."""
        return results / self.name


class MissingInputs(FileNotFoundError):
    """Result files a figure needs are absent; the message names each with the command that makes it."""

    def __init__(self, missing: Iterable[tuple[Path, str]]) -> None:
        self.missing = list(missing)
        listed = "; ".join(f"{path} (made by `{producer}`)" for path, producer in self.missing)
        super().__init__(f"missing result files: {listed}")


FRONT = Input("pd_sweep_front.json", SWEEP)
"""The exported PD sweep (front, presets, study identity) that ``make sweep`` writes."""


def check(results: Path, inputs: Iterable[Input]) -> list[tuple[Path, str]]:
    """The inputs absent under ``results``, as (path, producing command)."""
    return [(item.path(results), item.producer) for item in inputs if not item.path(results).is_file()]


def require(results: Path, inputs: Iterable[Input]) -> None:
    """Raise ``MissingInputs`` if any of ``inputs`` is absent."""
    missing = check(results, inputs)
    if missing:
        raise MissingInputs(missing)


def read_json(results: Path, item: Input) -> dict:
    """A JSON input, or ``MissingInputs`` naming it."""
    require(results, [item])
    return json.loads(item.path(results).read_text())


def read_csv(results: Path, item: Input) -> list[dict[str, str]]:
    """A CSV input as rows of strings, or ``MissingInputs`` naming it."""
    require(results, [item])
    with item.path(results).open(newline="") as stream:
        return list(csv.DictReader(stream))


def number(cell: str) -> float | None:
    """A CSV cell as a float, None when empty (a metric the run could not score)."""
    return float(cell) if cell else None
