"""training.csv: one row per `csv_every` coordinator updates; appended (never rewritten) on resume."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

BASE_COLUMNS = (
    "wall_time", "elapsed_s", "updates", "env_steps", "episodes", "frames_per_s", "updates_per_s", "lr",
    "grad_norm", "grads_applied", "dropped_stale", "dropped_nonfinite", "policy_lag_mean", "policy_lag_max",
    "reward_mean", "x_pos_mean", "best_x_pos", "workers_alive", "restarts",
    "eval_updates", "eval_x_mean", "eval_x_max", "eval_flag_rate", "eval_return", "eval_best_x",
)
"""The eval_* columns repeat the last periodic evaluation (of the weights at update `eval_updates`) in every row
until the next one; `eval_best_x` is best.pt's score."""


def best_flags_text(stats: dict[str, float]) -> str:
    """`, flags 20%` after best.pt's score when its evaluation reached the flag: best.pt ranks flags first, so a
    best below the last evaluation's x needs this to make sense."""
    rate = stats.get("eval_best_flag_rate", math.nan)
    return f", flags {rate:.0%}" if math.isfinite(rate) and rate > 0 else ""


def newer_columns_path(path: Path) -> Path:
    """Where rows with other columns go when `path` was written by an older version: training.v2.csv."""
    return path.with_name(path.stem + ".v2" + path.suffix)


class MetricsCsv:
    """Appends rows with a fixed header; if the file exists with another header, new columns go to a new file."""

    def __init__(self, path: Path, learner_metrics: Sequence[str]) -> None:
        self.columns = list(BASE_COLUMNS) + [m for m in learner_metrics if m not in BASE_COLUMNS]
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            if header != self.columns:
                self.path = newer_columns_path(self.path)
        self._pending: list[dict[str, str]] = []

    MAX_PENDING = 100_000  # rows kept while the file cannot be written (about 50 MB): beyond, the oldest go

    def append(self, row: Mapping[str, float | int | str]) -> None:
        """Append `row`, and any rows an earlier failed write left pending. On an OSError (disk full) the file
        is cut back to where it was, so it never ends in half a row, and the rows wait for the next append."""
        self._pending.append({k: _fmt(v) for k, v in row.items()})
        del self._pending[: max(0, len(self._pending) - self.MAX_PENDING)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            writer.writeheader()
        writer.writerows(self._pending)
        data = buffer.getvalue().encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        self._pending.clear()

    @property
    def pending(self) -> int:
        """Rows not yet in the file (a write failed)."""
        return len(self._pending)


def _fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    return str(value)


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))
