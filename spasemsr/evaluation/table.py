"""Tables of several runs' means (Markdown and CSV), with directions read from the metric registry.

A row is a run's ``metrics.json`` dict; its label is ``row["name"]`` if set, else the method it records.
Columns are the metrics any row scored, in registry order; a run that could not score a metric shows
``n/a`` (its metrics.json says why). The best value of each column is bold, ties included. A row aggregated over
seeds carries ``spread`` (std per metric), shown as ``mean ± std`` and as ``<metric>_std`` columns in the CSV.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from spasemsr.config.knobs import KNOBS
from spasemsr.metrics.registry import METRICS, lower_better
from spasemsr.utils.atomic import atomic_path, atomic_write_text


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (n - 1) of at least two values: the spread every seed comparison states."""
    mean = sum(values) / len(values)
    return mean, (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5


def seed_mean(records: Sequence[dict]) -> dict:
    """One table row of one method's per-seed records: their mean per metric, the std (n - 1) under ``spread``."""
    metrics = [m for m in records[0]["means"] if all(m in r["means"] for r in records)]
    stats = {m: mean_std([r["means"][m] for r in records]) for m in metrics}
    mean, spread = {m: s[0] for m, s in stats.items()}, {m: s[1] for m, s in stats.items()}
    seeds = [r["record"]["seed"] for r in records]
    return {**records[0], "means": mean, "spread": spread,
            "record": {**records[0]["record"], "seed": ",".join(map(str, seeds))}}


def _label(row: dict) -> str:
    return row.get("name") or row["record"]["method"]


def _columns(rows: Sequence[dict]) -> list[str]:
    scored = {name for row in rows for name in row["means"]}
    return [name for name in METRICS if name in scored]


def _best(rows: Sequence[dict], metric: str) -> float | None:
    values = [row["means"][metric] for row in rows if metric in row["means"] and not math.isnan(row["means"][metric])]
    if not values:
        return None
    return min(values) if lower_better(metric) else max(values)


def _cells(rows: Sequence[dict], columns: list[str], bold: str) -> list[list[str]]:
    """Each row's values to 4 significant digits, ``n/a`` where not scored, the best per column in ``bold``."""
    best = {metric: _best(rows, metric) for metric in columns}
    table = []
    for row in rows:
        cells = []
        for metric in columns:
            value, spread = row["means"].get(metric), row.get("spread", {}).get(metric)
            text = "n/a" if value is None else f"{value:.4g}" + ("" if spread is None else f" ± {spread:.2g}")
            cells.append(bold.format(text) if value is not None and value == best[metric] else text)
        table.append(cells)
    return table


def results_table(rows: Sequence[dict]) -> str:
    """A Markdown table: one line per run, one column per metric (↑ higher / ↓ lower is better), best in bold."""
    columns = _columns(rows)
    lines = [
        "| method | " + " | ".join(f"{m} {'↓' if lower_better(m) else '↑'}" for m in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row, cells in zip(rows, _cells(rows, columns, "**{}**"), strict=True):
        lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in text).replace("~", r"\textasciitilde{}")


def latex_table(rows: Sequence[dict]) -> str:
    """The same table for a paper: booktabs rules, $\\uparrow$/$\\downarrow$ per metric, best in \\textbf."""
    columns = _columns(rows)
    arrows = [r"$\downarrow$" if lower_better(m) else r"$\uparrow$" for m in columns]
    lines = [
        r"\begin{tabular}{l" + "r" * len(columns) + "}",
        r"\toprule",
        "Method & " + " & ".join(f"{_tex(m)} {a}" for m, a in zip(columns, arrows, strict=True)) + r" \\",
        r"\midrule",
    ]
    for row, cells in zip(rows, _cells(rows, columns, r"\textbf{{{}}}"), strict=True):
        lines.append(f"{_tex(_label(row))} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _knob_note(knobs: dict | None) -> str:
    """Steps, a swapped DRM and the knobs that differ from their defaults, e.g. ', knobs steps=20 backproject=3'."""
    if not knobs:
        return ""
    moved = [f"{k}={v}" for k, v in knobs.items()
             if k in ("steps", "drm") or (k in KNOBS and v != KNOBS[k].default)]
    return ", knobs " + " ".join(moved)


def protocol_notes(rows: Sequence[dict]) -> str:
    """The lines that go under a table: each run's dataset hash, checkpoint and config, and every metric's variant."""
    lines = []
    for row in rows:
        record = row["record"]
        data = record["dataset"]
        backbone = f", backbone {record['backbone'][:16]}" if record.get("backbone") else ""
        lines.append(f"- {_label(row)}: dataset {data['name']} (lr {data['lr']}, sha256 {data['hash'][:16]}), "
                     f"ckpt {record['ckpt'][:16]}{backbone}, config {record['config'] or 'n/a'}, seed {record['seed']}"
                     + _knob_note(record.get("knobs")))
    variants = {name: spec["variant"] for row in rows for name, spec in row["protocol"]["metrics"].items()}
    lines += [f"- {variants[name]}" for name in _columns(rows) if name in variants]
    absent = sorted({name for row in rows for name in row["unavailable"]}, key=list(METRICS).index)
    if absent:
        lines.append(f"- not scored in some or all runs (reasons under `unavailable` in their metrics.json): "
                     f"{', '.join(absent)}")
    return "\n".join(lines) + "\n"


def write_results_csv(rows: Sequence[dict], path: str | Path) -> None:
    """The same table as CSV (full precision, empty cell for n/a) plus each run's record, atomically."""
    columns = _columns(rows)
    spread = [m for m in columns if any(m in row.get("spread", {}) for row in rows)]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["method", *columns, *(f"{m}_std" for m in spread), "dataset", "lr", "dataset_hash", "ckpt",
                         "config", "seed", "knobs"])
        for row in rows:
            record = row["record"]
            means = [repr(row["means"][m]) if m in row["means"] else "" for m in columns]
            stds = [repr(row["spread"][m]) if m in row.get("spread", {}) else "" for m in spread]
            writer.writerow([_label(row), *means, *stds, record["dataset"]["name"], record["dataset"]["lr"],
                             record["dataset"]["hash"],
                             record["ckpt"], record["config"] or "", record["seed"], json.dumps(record["knobs"])])


def write_tables(rows: Sequence[dict], stem: str | Path, title: str, footer: Sequence[str] = ()) -> None:
    """``<stem>.md`` (table, protocol notes, ``footer`` lines), ``<stem>.csv`` and ``<stem>.tex``, atomically."""
    stem = Path(stem)
    notes = protocol_notes(rows) + "".join(f"- {line}\n" for line in footer)
    atomic_write_text(stem.with_suffix(".md"), f"# {title}\n\n{results_table(rows)}\n{notes}")
    write_results_csv(rows, stem.with_suffix(".csv"))
    atomic_write_text(stem.with_suffix(".tex"), latex_table(rows))
