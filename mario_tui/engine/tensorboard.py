"""`--tensorboard`: the scalars of training.csv as TensorBoard event files in the run folder, so that
`tensorboard --logdir checkpoints` shows every run (each run folder is one TensorBoard run).

TensorBoard is an optional dependency (the `tensorboard` extra); torch's SummaryWriter writes the files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INSTALL_HINT = ("needs the optional tensorboard package: uv sync --extra tensorboard (in a checkout), "
                "or pip install 'mario-tui[tensorboard]'")

NOT_SCALARS = ("wall_time", "updates", "eval_updates")
"""Columns of training.csv that are no scalar of their own: the time stamp, and the steps the scalars are on."""


def tensorboard_missing() -> str | None:
    """Why `--tensorboard` cannot work here (the package is not installed), or None."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def scalar_tag(column: str, learner_metrics: Sequence[str]) -> str:
    """TensorBoard groups tags by the part before '/': evaluation, the learner's own figures, and the run."""
    if column.startswith("eval_"):
        return f"eval/{column.removeprefix('eval_')}"
    if column in learner_metrics or column.startswith("grad_norm_"):
        return f"learner/{column}"
    return f"run/{column}"


class TensorBoardScalars:
    """Writes each training.csv row as scalars at step `updates`; the eval_* columns once per evaluation, at the
    update whose weights were evaluated (they repeat in every CSV row until the next evaluation)."""

    def __init__(self, folder: Path, learner_metrics: Sequence[str]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.learner_metrics = tuple(learner_metrics)
        self._writer = SummaryWriter(log_dir=str(self.folder), flush_secs=30)
        self._last_eval_updates: int | None = None

    def append(self, row: Mapping[str, Any], walltime: float | None = None) -> None:
        """Add one row's scalars. Raises OSError when the event file cannot be written (the writer reports a failed
        background write on the next call)."""
        step = int(row["updates"])
        eval_updates = _number(row.get("eval_updates"))
        new_eval = eval_updates is not None and eval_updates != self._last_eval_updates
        for column, value in row.items():
            number = _number(value)
            if column in NOT_SCALARS or number is None:
                continue
            if column.startswith("eval_"):
                if new_eval:
                    self._writer.add_scalar(scalar_tag(column, self.learner_metrics), number, int(eval_updates),
                                            walltime=walltime)
                continue
            self._writer.add_scalar(scalar_tag(column, self.learner_metrics), number, step, walltime=walltime)
        if new_eval:
            self._last_eval_updates = eval_updates

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
