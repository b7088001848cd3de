"""training.csv: one row per `csv_every` coordinator updates; appended (never rewritten) on resume."""

from __future__ import annotations

import csv
import math
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


class MetricsCsv:
    """Appends rows with a fixed header; if the file exists with another header, new columns go to a new file."""

    def __init__(self, path: Path, learner_metrics: Sequence[str]) -> None:
        self.columns = list(BASE_COLUMNS) + [m for m in learner_metrics if m not in BASE_COLUMNS]
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as handle:
                header = next(csv.reader(handle), [])
            if header != self.columns:
                self.path = self.path.with_name(self.path.stem + ".v2" + self.path.suffix)
        self._new = not self.path.exists() or self.path.stat().st_size == 0

    def append(self, row: Mapping[str, float | int | str]) -> None:
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            if self._new:
                writer.writeheader()
                self._new = False
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    return str(value)


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))
