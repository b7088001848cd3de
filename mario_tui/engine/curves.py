"""A run's learning curves as arrays, read from its training.csv (finished or still being written): what the run
comparison draws. Reads only small files (no torch), so the Launch screen can open it at once."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mario_tui.engine.metrics import newer_columns_path
from mario_tui.engine.registry import REGISTRY
from mario_tui.engine.runs import CONFIG_FILE, CSV_FILE

X_AXES = {"updates": "update", "env_steps": "agent step", "minutes": "minutes"}
"""The x axes a comparison can use (column → axis label); `minutes` is the run's training wall-clock."""

CURVE_COLUMNS = ("updates", "env_steps", "elapsed_s", "reward_mean", "x_pos_mean", "eval_updates", "eval_x_mean")


@dataclass
class RunCurves:
    """One run's rows, column by column (NaN where a row has no value); the evaluation as its own short series."""

    name: str
    folder: Path
    model: str
    loss_name: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    eval_at: dict[str, np.ndarray] = field(default_factory=dict)
    """Each x axis at the rows where a new evaluation first appears; `eval_x` holds those evaluations' mean x."""
    eval_x: np.ndarray = field(default_factory=lambda: np.empty(0))
    signature: tuple[tuple[str, int, int], ...] = ()
    """The CSV files' (name, size, mtime_ns) when read: a live run is re-read only when it changed."""

    @property
    def rows(self) -> int:
        return int(self.columns["updates"].size) if "updates" in self.columns else 0

    def x(self, axis: str) -> np.ndarray:
        if axis == "minutes":
            return self.columns["elapsed_s"] / 60.0
        return self.columns[axis]

    def last(self, column: str) -> float:
        """The last finite value of `column` (NaN when none)."""
        values = self.columns.get(column, np.empty(0))
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if finite.size else math.nan


def csv_files(folder: Path) -> list[Path]:
    """training.csv, then the training.v2.csv an upgrade with other columns started beside it."""
    base = folder / CSV_FILE
    return [p for p in (base, newer_columns_path(base)) if p.is_file()]


def csv_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in csv_files(folder):
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def load_curves(folder: Path | str) -> RunCurves:
    """Read a run folder's curves. A missing or damaged file gives an empty curve, never an exception: a live run
    may be half-way through writing a row, and a comparison must still show the other runs."""
    folder = Path(folder)
    model = "?"
    try:
        model = str(json.loads((folder / CONFIG_FILE).read_text()).get("model", "?"))
    except (OSError, ValueError, AttributeError):
        pass
    entry = REGISTRY.get(model)
    loss_name = entry.headline[0] if entry is not None else REGISTRY["ddqn"].headline[0]  # the dashboard's loss
    signature = csv_signature(folder)
    rows: list[dict[str, str]] = []
    for path in csv_files(folder):
        try:
            text = path.read_text(encoding="utf-8")
            complete = text[: text.rfind("\n") + 1]  # a live run may be half-way through writing its last row
            rows.extend(csv.DictReader(io.StringIO(complete, newline="")))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    wanted = (*CURVE_COLUMNS, loss_name)
    table = {name: np.array([_number(row.get(name)) for row in rows], dtype=np.float64) for name in wanted}
    order = np.argsort(table["updates"], kind="stable")
    finite = np.isfinite(table["updates"][order])  # a half-written last row has no update count: left out
    columns = {name: values[order][finite] for name, values in table.items()}
    curves = RunCurves(folder.name, folder, model, loss_name, columns, signature=signature)
    _index_evaluations(curves)
    return curves


def _index_evaluations(curves: RunCurves) -> None:
    """The eval_* columns repeat the last evaluation in every row: keep the first row of each."""
    evaluated = curves.columns["eval_updates"]
    first = np.isfinite(evaluated) & np.concatenate(([True], evaluated[1:] != evaluated[:-1]))
    curves.eval_x = curves.columns["eval_x_mean"][first]
    curves.eval_at = {axis: curves.x(axis)[first] for axis in X_AXES}
    curves.eval_at["updates"] = evaluated[first]  # on updates: the update whose weights were evaluated


def _number(text: str | None) -> float:
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan
