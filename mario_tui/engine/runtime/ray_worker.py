"""The worker's side of the Ray backend: the messages of an exchange call, `RayLink` (the `WorkerLink` a worker
loop runs on inside its actor) and `WorkerActor`, the actor class itself. See `ray_backend` for the design.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState

EXCHANGE_WAIT_S = 0.1
"""Longest an actor holds an exchange call open waiting for a gradient: figures and heartbeats flow at >= 10 Hz."""
OUTBOX = 2
"""Gradients a worker may have computed and not yet handed over (the local backend's two slots per worker)."""


# --- messages ----------------------------------------------------------------------------------------
@dataclass
class Downlink:
    """What the driver sends an actor with each exchange call."""

    run_state: int
    weights: tuple[int, list[Any]] | None
    """(version, [object ref]): the ref inside a list so that Ray does not fetch it unless the actor is behind."""
    targets: tuple[int, list[Any]] | None
    commands: list[int] = field(default_factory=list)
    preview: bool = False


@dataclass
class Uplink:
    """What an actor answers."""

    gradients: list[tuple[int, np.ndarray, dict[str, float]]]
    stats: dict[str, Any]
    episodes: list[tuple[float, int, int, bool, int, int]]
    beat_age: float
    logs: list[str]
    frame: np.ndarray | None
    error: str


# --- the worker's side, inside the actor -------------------------------------------------------------
class RayLink:
    """A worker's end of the Ray transport: the worker loop's thread fills it, `exchange` calls drain it."""

    def __init__(self, worker_id: int, metric_names: Sequence[str], numel: int) -> None:
        self.worker_id = worker_id
        self.metric_names = tuple(metric_names)
        self._numel = numel
        self._cond = threading.Condition()
        self._outbox: list[tuple[int, np.ndarray, dict[str, float]]] = []
        self._buffer: np.ndarray | None = None
        self._stats: dict[str, Any] = {"pid": os.getpid(), "state": WorkerState.STARTING.code}
        self._episodes: list[tuple[float, int, int, bool, int, int]] = []
        self._logs: list[str] = []
        self._beat = time.monotonic()
        self._down = Downlink(int(RunState.RUNNING), None, None)
        self._commands: list[int] = []
        self._frame: np.ndarray | None = None
        self._error = ""

    # the driver's calls
    def exchange(self, down: Downlink) -> Uplink:
        with self._cond:
            self._down = down
            self._commands.extend(down.commands)
            if not self._outbox and not self._error:
                self._cond.wait(EXCHANGE_WAIT_S)
            up = Uplink(self._outbox, dict(self._stats), self._episodes, time.monotonic() - self._beat, self._logs,
                        self._frame, self._error)
            self._outbox, self._episodes, self._logs, self._frame = [], [], [], None
            self._cond.notify_all()
            return up

    def fail(self, error: str) -> None:
        """The worker loop crashed: the next exchange reports `error`."""
        with self._cond:
            self._error = error
            self._cond.notify_all()

    # the worker loop's calls (WorkerLink)
    def beat(self) -> None:
        self._beat = time.monotonic()

    def coordinator_alive(self) -> bool:
        return True  # a driver that dies takes its (non-detached) actors with it

    def run_state(self) -> RunState:
        return RunState(self._down.run_state)

    def take_commands(self) -> list[WorkerCommand | int]:
        with self._cond:
            commands, self._commands = self._commands, []
        return [WorkerCommand(c) if c in WorkerCommand._value2member_map_ else c for c in commands]

    def report(self, **fields: Any) -> None:
        if isinstance(fields.get("state"), WorkerState):
            fields["state"] = fields["state"].code
        with self._cond:
            self._stats.update(fields)

    def report_episode(self, *, reward: float, x_pos: int, length: int, flag: bool, world: int, stage: int) -> None:
        with self._cond:
            self._episodes.append((reward, x_pos, length, flag, world, stage))

    def _pull(self, offer: tuple[int, list[Any]] | None, current_version: int, out: np.ndarray) -> int | None:
        if offer is None or offer[0] <= current_version:
            return None
        np.copyto(out, ray.get(offer[1][0]))
        return offer[0]

    def pull_weights(self, current_version: int, out: np.ndarray) -> int | None:
        return self._pull(self._down.weights, current_version, out)

    def pull_targets(self, current_version: int, out: np.ndarray) -> int | None:
        return self._pull(self._down.targets, current_version, out)

    def gradient_buffer(self) -> np.ndarray | None:
        with self._cond:
            if len(self._outbox) >= OUTBOX:
                return None
        if self._buffer is None:
            self._buffer = np.zeros(self._numel, dtype=np.float32)
        return self._buffer

    def send_gradient(self, weights_version: int, metrics: Mapping[str, float]) -> None:
        assert self._buffer is not None
        names = self.metric_names
        with self._cond:
            self._outbox.append((weights_version, self._buffer, {k: v for k, v in metrics.items() if k in names}))
            self._buffer = None  # the next gradient gets a fresh array: this one is on its way to the driver
            self._cond.notify_all()

    def wants_preview(self) -> bool:
        return self._down.preview

    def publish_frame(self, frame: np.ndarray) -> None:
        self._frame = frame.copy()

    def log(self, message: str) -> None:
        from mario_tui.engine.worker import worker_log_line

        with self._cond:
            self._logs.append(worker_log_line(self.worker_id, message))

    def close(self) -> None:
        pass


def _run_worker(spec: Any, link: RayLink) -> None:
    """The actor's worker thread: the worker loop; a crash is reported, then the process exits (Ray restarts it)."""
    import torch

    from mario_tui.engine.worker import WorkerLoop

    torch.set_num_threads(1)
    try:
        WorkerLoop(spec, link).run()
    except Exception as exc:  # noqa: BLE001 - report any crash, then die like a crashed local worker
        for line in traceback.format_exc().rstrip().splitlines()[-3:]:
            link.log(line)
        link.fail(f"{type(exc).__name__}: {exc}")
        deadline = time.monotonic() + 2.0
        while link._error and time.monotonic() < deadline and not _delivered(link):
            time.sleep(0.05)
        os._exit(1)


def _delivered(link: RayLink) -> bool:
    with link._cond:
        return not link._logs


class WorkerActor:
    """A Ray actor hosting one worker (created with `ray.remote(...)` options by `RayRuntime`)."""

    def __init__(self) -> None:
        self.link: RayLink | None = None

    def start(self, spec: Any, metric_names: Sequence[str], numel: int) -> tuple[int, str]:
        """Start the worker loop in a thread; returns this process's pid and its node (address and the start of
        Ray's node id: several nodes can share an address)."""
        if self.link is not None:
            raise RuntimeError("this actor's worker loop is already running")
        self.link = RayLink(spec.worker_id, metric_names, numel)
        threading.Thread(target=_run_worker, args=(spec, self.link), name="mario-worker", daemon=True).start()
        node_id = ray.get_runtime_context().get_node_id()
        return os.getpid(), f"{ray.util.get_node_ip_address()} {node_id[:6]}"

    def exchange(self, down: Downlink) -> Uplink:
        if self.link is None:
            raise RuntimeError("exchange before start")
        return self.link.exchange(down)
