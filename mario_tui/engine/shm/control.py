"""Run-wide control flags and per-worker commands, read by workers every step (a few int64 loads).

Every word has a single writer, so no locks: the coordinator (or UI) writes `run_state`, `preview_worker` and
the per-worker command *request counters*; worker i writes only its *acknowledged counters*. A command is
pending while requested > acknowledged, so a command sent twice is seen twice and none is lost to a race
between "set" and "clear".
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ..protocol import RunState, WorkerCommand
from .base import ShmStruct
from .layout import LAYOUT_VERSION, magic, view
from .segments import SegmentGroup

CONTROL_MAGIC = magic("MTUICTRL")
MAX_COMMANDS = 8
_HEADER_WORDS = 16
_C_MAGIC, _C_LAYOUT, _C_WORKERS, _C_RUN_STATE, _C_PREVIEW, _C_COORD_PID = range(6)


def _command(i: int) -> WorkerCommand | int:
    """A named command, or the bare number of one the runtime defines itself."""
    try:
        return WorkerCommand(i)
    except ValueError:
        return i


@dataclass(frozen=True)
class ControlSpec:
    name: str
    num_workers: int

    @property
    def size(self) -> int:
        return _HEADER_WORDS * 8 + 2 * self.num_workers * MAX_COMMANDS * 8


class ControlBlock(ShmStruct):
    """Coordinator: `run_state = ...`, `preview_worker = i`, `request(i, cmd)`. Worker: `run_state`, `take(i)`."""

    def __init__(self) -> None:
        raise TypeError("use ControlBlock.create(num_workers) or ControlBlock.attach(spec)")

    @classmethod
    def create(cls, num_workers: int, *, owner: SegmentGroup | None = None) -> ControlBlock:
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("ctrl", ControlSpec("", num_workers).size, owner)
        self.spec = ControlSpec(self.segment_name, num_workers)
        self._map(buf)
        self._request_lock = threading.Lock()
        self._h[[_C_MAGIC, _C_LAYOUT, _C_WORKERS, _C_RUN_STATE, _C_PREVIEW, _C_COORD_PID]] = [
            CONTROL_MAGIC, LAYOUT_VERSION, num_workers, RunState.RUNNING, -1, os.getpid()
        ]  # fmt: skip
        return self

    @classmethod
    def attach(cls, spec: ControlSpec) -> ControlBlock:
        self = cls._attach_checked(spec, CONTROL_MAGIC, "control", header='_h')
        self._request_lock = threading.Lock()
        return self

    def _map(self, buf: memoryview) -> None:
        n = self.spec.num_workers
        self._h = view(buf, np.int64, _HEADER_WORDS, 0)
        self._requested = view(buf, np.int64, (n, MAX_COMMANDS), _HEADER_WORDS * 8)
        self._acked = view(buf, np.int64, (n, MAX_COMMANDS), _HEADER_WORDS * 8 + n * MAX_COMMANDS * 8)

    def _drop_views(self) -> None:
        self._h = self._requested = self._acked = None  # type: ignore[assignment]

    @property
    def num_workers(self) -> int:
        return self.spec.num_workers

    @property
    def coordinator_pid(self) -> int:
        return int(self._h[_C_COORD_PID])

    @property
    def run_state(self) -> RunState:
        return RunState(int(self._h[_C_RUN_STATE]))

    @run_state.setter
    def run_state(self, state: RunState | int) -> None:
        self._h[_C_RUN_STATE] = int(RunState(state))

    @property
    def preview_worker(self) -> int:
        """The worker whose frames the UI wants (-1: none)."""
        return int(self._h[_C_PREVIEW])

    @preview_worker.setter
    def preview_worker(self, worker_id: int) -> None:
        if not -1 <= worker_id < self.spec.num_workers:
            raise IndexError(f"preview_worker must be -1 or 0..{self.spec.num_workers - 1}")
        self._h[_C_PREVIEW] = worker_id

    def request(self, worker_id: int, command: WorkerCommand | int) -> None:
        """Ask worker `worker_id` to do `command`.

        Request counters have one writing *process* (the coordinator's, where the UI thread may also call
        this); the lock makes the read-modify-write safe between its threads.
        """
        if not 0 <= int(command) < MAX_COMMANDS:
            raise ValueError(f"command must be in 0..{MAX_COMMANDS - 1}")
        with self._request_lock:
            self._requested[worker_id, int(command)] += 1

    def pending(self, worker_id: int) -> list[WorkerCommand | int]:
        """Commands requested but not yet taken by the worker."""
        idx = np.flatnonzero(self._requested[worker_id] > self._acked[worker_id])
        return [_command(i) for i in idx.tolist()]

    def take(self, worker_id: int) -> list[WorkerCommand | int]:
        """Worker side: the pending commands, now acknowledged (each request is returned once)."""
        requested = self._requested[worker_id].copy()
        idx = np.flatnonzero(requested > self._acked[worker_id])
        if idx.size == 0:
            return []
        self._acked[worker_id, idx] = requested[idx]
        return [_command(i) for i in idx.tolist()]

    def clear_commands(self, worker_id: int) -> None:
        """Drop worker `worker_id`'s pending commands; coordinator side, only while that worker is not running."""
        self._acked[worker_id] = self._requested[worker_id]
