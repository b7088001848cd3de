"""Liveness: one float64 `time.monotonic()` timestamp per worker (workers watch the coordinator by its pid).

`time.monotonic()` is CLOCK_MONOTONIC, system-wide on Linux, so timestamps written by one process compare
with another's clock. An aligned float64 store is a single instruction, so a reader never sees half a value.
All timestamps start at creation time, which gives workers a start-up grace period; `reset(i)` restarts
worker i's clock (call it when (re)starting that worker).

`WorkerStats` and `PreviewFrames` live in their own modules and are re-exported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .base import ShmStruct
from .layout import LAYOUT_VERSION, magic, view
from .preview import PreviewFrames, PreviewSpec
from .segments import SegmentGroup
from .stats import STATS_DTYPE, WorkerState, WorkerStats, WorkerStatsSpec

__all__ = [
    "STATS_DTYPE",
    "Heartbeats",
    "HeartbeatsSpec",
    "PreviewFrames",
    "PreviewSpec",
    "WorkerState",
    "WorkerStats",
    "WorkerStatsSpec",
]

HEARTBEAT_MAGIC = magic("MTUIBEAT")
_HEADER_WORDS = 8


@dataclass(frozen=True)
class HeartbeatsSpec:
    name: str
    num_workers: int

    @property
    def size(self) -> int:
        return _HEADER_WORDS * 8 + self.num_workers * 8


class Heartbeats(ShmStruct):
    """Per-worker last-beat timestamps."""

    def __init__(self) -> None:
        raise TypeError("use Heartbeats.create(num_workers) or Heartbeats.attach(spec)")

    @classmethod
    def create(cls, num_workers: int, *, owner: SegmentGroup | None = None) -> Heartbeats:
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("beat", HeartbeatsSpec("", num_workers).size, owner)
        self.spec = HeartbeatsSpec(self.segment_name, num_workers)
        self._map(buf)
        self._header[:3] = [HEARTBEAT_MAGIC, LAYOUT_VERSION, num_workers]
        self._t[:] = time.monotonic()
        return self

    @classmethod
    def attach(cls, spec: HeartbeatsSpec) -> Heartbeats:
        return cls._attach_checked(spec, HEARTBEAT_MAGIC, "heartbeats")

    def _map(self, buf: memoryview) -> None:
        self._header = view(buf, np.int64, _HEADER_WORDS, 0)
        self._t = view(buf, np.float64, self.spec.num_workers, _HEADER_WORDS * 8)

    def _drop_views(self) -> None:
        self._header = self._t = None  # type: ignore[assignment]

    @property
    def num_workers(self) -> int:
        return self.spec.num_workers

    def beat(self, worker_id: int, t: float | None = None) -> None:
        """Worker `worker_id` is alive now (about 0.2 µs: call it every step)."""
        self._t[self._check(worker_id)] = time.monotonic() if t is None else t

    reset = beat  # restarting a worker's clock is the same store

    def last(self, worker_id: int) -> float:
        return float(self._t[self._check(worker_id)])

    def age(self, worker_id: int, now: float | None = None) -> float:
        """Seconds since worker `worker_id` last beat."""
        return (time.monotonic() if now is None else now) - float(self._t[self._check(worker_id)])

    def ages(self, now: float | None = None) -> np.ndarray:
        """Seconds since each worker last beat (float64[num_workers], a copy)."""
        return (time.monotonic() if now is None else now) - self._t

    def _check(self, worker_id: int) -> int:
        if not 0 <= worker_id < self.spec.num_workers:
            raise IndexError(f"worker_id {worker_id} out of range 0..{self.spec.num_workers - 1}")
        return worker_id
