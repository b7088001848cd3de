"""What a front end reads of a run: the read models (`EpisodeRecord`, `WorkerRow`) and the run itself (`RunView`).

Imports nothing heavy (no torch, no numpy): the app imports this before its first paint. The types the protocol
names from elsewhere are imported for type checkers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import threading
    from collections import deque
    from pathlib import Path

    import numpy as np
    import torch

    from mario_tui.engine.config import RunConfig
    from mario_tui.engine.notices import Notices
    from mario_tui.engine.periodic_eval import EvalPoint
    from mario_tui.engine.runs import RunPaths


@dataclass
class EpisodeRecord:
    """One finished episode of one worker (what the reward / x_pos plots show)."""

    worker_id: int
    index: int
    reward: float
    x_pos: int
    length: int
    flag: bool
    world: int
    stage: int
    time: float


@dataclass
class WorkerRow:
    """One line of the worker table."""

    worker_id: int
    state: str  # a protocol.WorkerState value
    pid: int | None
    level: str
    episodes: int
    steps: int
    steps_per_s: float
    last_reward: float
    best_reward: float
    best_x_pos: int
    epsilon: float
    grads_sent: int
    heartbeat_age: float
    restarts: int
    last_error: str
    node: str = ""
    """Where the worker runs: empty on the local backend (this machine), the node's address on a cluster."""


@runtime_checkable
class RunView(Protocol):
    """What a front end (the dashboard, the app, `--batch`) reads of a run and calls on it, and nothing more.

    The engine's `session.Run` implements it whatever backend moves the workers' bytes; the snapshot tests'
    `FixedRun` implements it with fixed figures. Front ends type their run as this, so neither needs the other.
    """

    config: RunConfig
    """The validated options the run trains with (model, workers, eval_every, steps, ...)."""
    name: str
    """The run folder's name: the dashboard's title."""
    paths: RunPaths
    """The run folder's files (checkpoint, best.pt, log): named in messages and opened by the replay viewer."""
    device: torch.device
    """What the coordinator's learner runs on: `--batch` prints it."""
    done: threading.Event
    """Set when the run ended on its own (steps reached, every worker failed, a thread broke): call `stop()`."""
    stopping: threading.Event
    """Set once `stop()` has begun."""
    stopped: threading.Event
    """Set once `stop()` is over: workers joined, final checkpoint written, shared memory freed."""
    paused: bool
    """Whether training is paused (workers hold, no updates are applied)."""
    error: BaseException | None
    """What broke a run thread, if one broke (`--batch` then exits 1)."""
    end_reason: str | None
    """Why the run ended on its own (None while it trains): the dashboard's STOPPED line."""
    stop_error: str | None
    """Why the final checkpoint could not be written (None when it was, or before the stop)."""
    workers_failed: bool
    """Every worker failed and none will be restarted (`--batch` then exits with EXIT_ALL_WORKERS_FAILED)."""
    last_checkpoint_error: str | None
    """Why the last checkpoint asked for failed (None after a good one): told to the user."""
    notices: Notices
    """Things the user must hear of (a file that could not be written, why the run ended): toasts, lines."""
    episodes: deque[EpisodeRecord]
    """Finished episodes, oldest first, capped (another thread appends): the reward and x position plots."""
    metric_history: deque[dict[str, float]]
    """One row of learner metrics per update, capped (another thread appends): the loss and value plots."""
    eval_history: deque[EvalPoint]
    """Each greedy evaluation's result, oldest first (another thread appends): the greedy-eval plot."""

    @property
    def csv_path(self) -> Path:
        """Where the metric rows go (training.csv, or training.v2.csv after an older version): `--batch` names it."""
        ...

    def coordinator_stats(self) -> dict[str, float]:
        """The coordinator's figures now (updates, rates, losses, the last evaluation): panel and progress line."""
        ...

    def worker_rows(self) -> list[WorkerRow]:
        """One row per worker, its figures and state now: the worker table."""
        ...

    def worker_time_fractions(self) -> dict[str, float]:
        """Mean share of worker time in env / act / learn / wait (empty before the first figures): the panel."""
        ...

    def new_log_lines(self) -> list[str]:
        """training.log lines written since the last call (the last 200 at the first): the dashboard's log."""
        ...

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        """The worker's game frame and its version if newer than `current_version`, else None: the frame view."""
        ...

    def set_preview_worker(self, worker_id: int) -> None:
        """Which worker sends its frames (-1: none, while nothing shows them)."""
        ...

    def toggle_pause(self) -> bool:
        """Pause a training run or resume a paused one; returns whether it is paused now."""
        ...

    def restart_worker(self, worker_id: int) -> None:
        """Kill and respawn one worker (IndexError for an id the run does not have)."""
        ...

    def restart_stale_workers(self) -> list[int]:
        """Restart every stale, dead or failed worker; returns their ids."""
        ...

    def save_checkpoint(self, timeout: float = 60.0) -> bool:
        """Write the checkpoint now (blocks up to `timeout` s); False with `last_checkpoint_error` set if not."""
        ...

    def intact_text(self) -> str:
        """What is on disk instead of a checkpoint that failed, in words (`the previous checkpoint ... is intact`)."""
        ...

    def start(self) -> None:
        """Make the run folder and start the workers and the coordinator (raises `StartError` in one line)."""
        ...

    def stop(self, timeout: float = 30.0, checkpoint: bool = True) -> None:
        """Stop the workers, write the final checkpoint (if `checkpoint`), free everything: idempotent, any thread."""
        ...
