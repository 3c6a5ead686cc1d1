"""The Pareto front of a study, presets read off it, its 2-D hypervolume, and every trial as a table."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import optuna

from spasemsr.metrics.registry import cost_sign
from spasemsr.utils.atomic import atomic_path

PRESETS = ("fidelity", "balance", "perception")


def front_rows(study: optuna.Study) -> list[dict]:
    """The Pareto-optimal complete trials: number, knobs, objective values and full metric vector."""
    return [{"trial": t.number, "knobs": dict(t.params), "values": list(t.values), "metrics": t.user_attrs["metrics"]}
            for t in sorted(study.best_trials, key=lambda t: t.values[0])]


def trial_rows(study: optuna.Study) -> list[dict]:
    """Every trial (any state): number, state, knobs and metric vector ({} where none was stored), by number."""
    return [{"trial": t.number, "state": t.state.name, "knobs": dict(t.params),
             "metrics": dict(t.user_attrs.get("metrics", {}))} for t in study.get_trials(deepcopy=False)]


def write_trials_csv(rows: Sequence[dict], path: str | Path) -> None:
    """``rows`` of ``trial_rows`` as CSV (knob and metric columns sorted, empty cell where absent), atomically.

    The front files hold only the Pareto-optimal trials; figures that show the whole cloud read this one.
    """
    knobs = sorted({k for row in rows for k in row["knobs"]})
    metrics = sorted({k for row in rows for k in row["metrics"]})
    with atomic_path(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["trial", "state", *knobs, *metrics])
        for row in rows:
            writer.writerow([row["trial"], row["state"], *(row["knobs"].get(k, "") for k in knobs),
                             *(repr(row["metrics"][k]) if k in row["metrics"] else "" for k in metrics)])


def _costs(rows: Sequence[dict], objectives: Sequence[str]) -> list[tuple[float, float]]:
    """Each row's objectives as costs (lower is better): maximised metrics are negated."""
    signs = [cost_sign(name) for name in objectives]
    return [tuple(sign * value for sign, value in zip(signs, row["values"], strict=True)) for row in rows]


def presets(rows: Sequence[dict], objectives: Sequence[str]) -> dict[str, dict]:
    """``fidelity`` (best first objective), ``perception`` (best second) and ``balance`` (nearest the utopia point
    after scaling each objective to [0, 1] over the front) — the paper's separately trained variants as points."""
    costs = _costs(rows, objectives)
    low = [min(c[i] for c in costs) for i in range(2)]
    span = [max(c[i] for c in costs) - low[i] or 1.0 for i in range(2)]
    distance = [math.hypot((c[0] - low[0]) / span[0], (c[1] - low[1]) / span[1]) for c in costs]
    pick = {"fidelity": min(range(len(rows)), key=lambda i: costs[i][0]),
            "balance": min(range(len(rows)), key=lambda i: distance[i]),
            "perception": min(range(len(rows)), key=lambda i: costs[i][1])}
    return {name: {"trial": rows[i]["trial"], "knobs": rows[i]["knobs"], "metrics": rows[i]["metrics"]}
            for name, i in pick.items()}


def hypervolume_2d(rows: Sequence[dict], objectives: Sequence[str], reference: Sequence[float]) -> float:
    """Area dominated by the front and bounded by ``reference`` (in the metrics' own units, e.g. (10 dB, 20))."""
    ref = _costs([{"values": list(reference)}], objectives)[0]
    points = sorted(c for c in _costs(rows, objectives) if c[0] < ref[0] and c[1] < ref[1])
    area, ceiling = 0.0, ref[1]
    for x, y in points:  # ascending first cost; each point adds the strip below the best second cost so far
        if y < ceiling:
            area += (ref[0] - x) * (ceiling - y)
            ceiling = y
    return area


def refuse_other_weights(record: dict, path: Path, model: Path, remedy: str) -> None:
    """Raise unless the front ``record`` (read from ``path``) was swept on ``model``'s checkpoint and, where it records
    one, with the frozen prior now under it; ``remedy`` ends the message."""
    from spasemsr.evaluation.identity import backbone_sha256, weights_sha256

    ckpt = weights_sha256(model)
    if record["ckpt"] != ckpt:
        raise ValueError(f"{path} was swept on checkpoint {record['ckpt'][:16]} ({record['model']}), not on this "
                         f"model ({ckpt[:16]}); {remedy}")
    backbone = backbone_sha256(model)
    if record.get("backbone") and record["backbone"] != backbone:
        raise ValueError(f"{path} was swept with frozen prior {record['backbone'][:16]} under {record['model']}, not "
                         f"with this model's ({(backbone or 'none')[:16]}); {remedy}")


def preset_knobs(front_file: str | Path, name: str, model: Path) -> dict:
    """The knobs of preset ``name`` in an exported front, refused if the front was swept on other weights
    (``refuse_other_weights``)."""
    path = Path(front_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no exported sweep front (make one with `spasemsr sweep --export`)")
    record = json.loads(path.read_text())
    if name not in record["presets"]:
        raise ValueError(f"{path} has no preset {name!r}; valid: {sorted(record['presets'])}")
    refuse_other_weights(record, path, model, "sweep this model or pass its --ckpt")
    return dict(record["presets"][name]["knobs"])
