"""The seam between what the algorithm does and how processes and bytes move.

The coordinator side of a run (`Run`, `CoordinatorLoop`) drives a `WorkerRuntime`: start the workers, publish
weights, take the gradients they send, read their episodes and figures, supervise them, stop them. A worker's loop
(`worker.WorkerLoop`) talks to its end of the same transport through a `WorkerLink`. The local backend
(`runtime.local`: processes on this machine, shared memory, a supervisor thread) implements both; another backend
(a cluster engine's actors and object store) is another module implementing the same two protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState

if TYPE_CHECKING:
    import numpy as np

    from mario_tui.engine.shm.episodes import EpisodeBatch


class GradientPacket(Protocol):
    """One gradient a worker sent: computed against `weights_version`; `release()` once it is applied."""

    worker_id: int
    weights_version: int
    grad: np.ndarray
    metrics: Mapping[str, float]

    def release(self) -> None: ...


@dataclass(frozen=True)
class WorkerInfo:
    """What supervision knows of one worker (its own figures come from `WorkerRuntime.stats`)."""

    worker_id: int
    state: WorkerState
    """Supervision's view: starting, running, paused, stale, restarting, dead, failed or stopped."""
    pid: int | None
    node: str
    """Where it runs: "" for this machine."""
    restarts: int
    last_error: str


class WorkerRuntime(Protocol):
    """The coordinator's end: a run's workers and the transport to them."""

    num_workers: int

    @property
    def closed(self) -> bool:
        """The transport is gone (after `close`): figures can no longer be read."""
        ...

    def publish(self, weights: np.ndarray, version: int, targets: np.ndarray | None = None) -> None:
        """Make `weights` (flat float32) the newest for every worker; `targets`, when given, the target network's."""
        ...

    def start_workers(self) -> None:
        """Start every worker (after the first `publish`); may block for seconds: the supervision thread calls it."""
        ...

    def gradients(self, timeout: float) -> list[GradientPacket]:
        """The gradients ready now, oldest first; waits up to `timeout` s for the first."""
        ...

    def episodes(self) -> EpisodeBatch:
        """Every episode the workers finished since the last call."""
        ...

    def stats(self) -> np.ndarray:
        """Each worker's own figures: a `shm.STATS_DTYPE` record per worker, consistent within a record."""
        ...

    def heartbeat_ages(self) -> np.ndarray:
        """Seconds since each worker last showed it was alive."""
        ...

    def workers(self) -> Sequence[WorkerInfo]:
        """Supervision's record of each worker."""
        ...

    def set_run_state(self, state: RunState) -> None:
        """Running, paused or stopping: every worker follows within a step."""
        ...

    def request(self, worker_id: int, command: WorkerCommand) -> None:
        """Ask one worker to do `command` once."""
        ...

    def supervise(self) -> None:
        """One supervision pass: restart dead and stuck workers (with back-off), carry out restart requests."""
        ...

    def restart_worker(self, worker_id: int, reason: str) -> None:
        """Restart worker `worker_id` at the next `supervise` pass (counted as a restart)."""
        ...

    def all_failed(self) -> bool:
        """Every worker crashed too often and none will be restarted."""
        ...

    def alive_count(self) -> int: ...

    def set_preview_worker(self, worker_id: int) -> None:
        """Which worker publishes its frames (-1: none)."""
        ...

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        """That worker's newest frame, if newer than `current_version`."""
        ...

    def stop_workers(self, timeout: float) -> None:
        """Join the workers (told to stop by `set_run_state(STOPPING)`), killing any that linger."""
        ...

    def close(self) -> None:
        """Release the transport (idempotent)."""
        ...


class WorkerLink(Protocol):
    """A worker's end of the transport: what `worker.WorkerLoop` calls, whatever moves the bytes."""

    worker_id: int
    metric_names: tuple[str, ...]
    """The learner metrics a gradient may carry."""

    def beat(self) -> None:
        """Alive now (cheap: called every step)."""
        ...

    def coordinator_alive(self) -> bool:
        """False once the coordinator is gone: the worker then exits."""
        ...

    def run_state(self) -> RunState: ...

    def take_commands(self) -> list[WorkerCommand | int]:
        """Commands requested since the last call, each once."""
        ...

    def report(self, **fields: Any) -> None:
        """Set some of this worker's figures (`shm.STAT_FIELDS`; `state` is a `WorkerState`)."""
        ...

    def report_episode(self, *, reward: float, x_pos: int, length: int, flag: bool, world: int, stage: int) -> None:
        """One finished episode."""
        ...

    def pull_weights(self, current_version: int, out: np.ndarray) -> int | None:
        """Copy the newest weights into `out` if newer than `current_version`; their version, or None."""
        ...

    def pull_targets(self, current_version: int, out: np.ndarray) -> int | None:
        """The same for the target network's weights (None also when the model has no target network)."""
        ...

    def gradient_buffer(self) -> np.ndarray | None:
        """A flat float32 buffer to backpropagate into, or None when none is free yet (the coordinator is behind)."""
        ...

    def send_gradient(self, weights_version: int, metrics: Mapping[str, float]) -> None:
        """Hand the buffer of the last `gradient_buffer` call to the coordinator."""
        ...

    def wants_preview(self) -> bool:
        """Whether the front end is showing this worker's game."""
        ...

    def publish_frame(self, frame: np.ndarray) -> None: ...

    def log(self, message: str) -> None:
        """One line for the run's training.log (`[w<i>] message`)."""
        ...

    def close(self) -> None: ...


class LinkSpec(Protocol):
    """A picklable description a worker process connects its `WorkerLink` from."""

    def connect(self, worker_id: int) -> WorkerLink: ...
