"""The worker protocol: the words the coordinator and its workers share, whatever backend moves the bytes.

One vocabulary for every layer: a worker reports its own state (`WORKER_REPORTED`), supervision adds what only an
observer can tell (stale, dead, restarting, failed), and the run adds `pausing` (paused, the worker not holding
yet). Shared memory stores a state as its small integer `code`.

Versions: the coordinator's weights version is its update count; what it publishes is `published_version(updates)`
(updates + 1), because version 0 means "nothing published yet".
"""

from __future__ import annotations

import enum

NO_VERSION = 0
"""The version a worker holds before it has any weights."""


def published_version(updates: int) -> int:
    """The version workers see for the weights after `updates` optimizer updates."""
    return updates + 1


class RunState(enum.IntEnum):
    """What the coordinator tells every worker at once."""

    RUNNING = 0
    PAUSED = 1
    STOPPING = 2


class WorkerCommand(enum.IntEnum):
    """What the coordinator asks of one worker (each request is carried out once)."""

    SYNC_WEIGHTS = 0
    """Pull the newest weights now, even mid-episode."""
    SAVE_REPLAY = 1
    """Write the replay buffer beside the checkpoint (runs with `--save-replay`)."""


class WorkerState(enum.StrEnum):
    """A worker's state as the worker table shows it."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STALE = "stale"
    RESTARTING = "restarting"
    DEAD = "dead"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def code(self) -> int:
        """The integer shared memory stores for this state."""
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> WorkerState:
        try:
            return _STATES[code]
        except IndexError:
            return cls.STARTING  # a record nobody has written yet


_STATES: tuple[WorkerState, ...] = tuple(WorkerState)
_CODES: dict[WorkerState, int] = {state: i for i, state in enumerate(_STATES)}

WORKER_REPORTED = frozenset({WorkerState.STARTING, WorkerState.RUNNING, WorkerState.PAUSED, WorkerState.STOPPED})
"""The states a worker reports about itself; the others are supervision's and the run's."""
