"""Where a run's metric rows go: training.csv (training.v2.csv when an older version wrote other columns) and,
with `--tensorboard`, TensorBoard event files in the run folder. A failed write is a notice and training goes on:
rows wait in memory for the next write (`MetricsCsv`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mario_tui.engine.metrics import MetricsCsv
from mario_tui.engine.notices import WriteFailures, os_reason


class MetricsRecorder:
    """One run's metric rows, written by the coordinator thread."""

    def __init__(self, csv_path: Path, run_root: Path, learner_metrics: Sequence[str], columns: Sequence[str],
                 tensorboard: bool, failures: WriteFailures, log: Callable[[str], None]) -> None:
        """`learner_metrics`: the model's own figures (TensorBoard files them under learner/); `columns`: those
        and the other extra columns of training.csv (per-group gradient norms)."""
        self._failures, self._log = failures, log
        self.csv = MetricsCsv(csv_path, columns)
        if self.csv.path != csv_path:
            log(f"{csv_path.name} has other columns (written by an older version); new rows go to {self.csv.path.name}")
        self._events_name = run_root / "tensorboard events"
        self._tensorboard = None
        if tensorboard:
            from mario_tui.engine.tensorboard import TensorBoardScalars

            self._tensorboard = TensorBoardScalars(run_root, learner_metrics)

    @property
    def path(self) -> Path:
        """The CSV rows go to."""
        return self.csv.path

    def append(self, row: Mapping[str, float | int | str]) -> None:
        try:
            self.csv.append(row)
            self._failures.succeeded(self.csv.path)
        except OSError as exc:
            self._failures.failed(self.csv.path, exc, f"training goes on; {self.csv.pending} rows wait in memory "
                                  "for the next write")
        if self._tensorboard is not None:
            try:
                self._tensorboard.append(row, walltime=time.time())
                self._failures.succeeded(self._events_name)
            except OSError as exc:
                self._failures.failed(self._events_name, exc, "training goes on; these scalars are missing in "
                                      "TensorBoard (training.csv has them)")

    def close(self) -> None:
        writer, self._tensorboard = self._tensorboard, None
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                self._log(f"TensorBoard event file: the last scalars could not be written: {os_reason(exc)}")
