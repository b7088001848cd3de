"""What a front end reads of a run: the read models (`EpisodeRecord`, `WorkerRow`).

Imports nothing heavy (no torch, no numpy): the app imports this before its first paint.
"""

from __future__ import annotations

from dataclasses import dataclass


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
