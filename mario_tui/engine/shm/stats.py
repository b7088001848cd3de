"""Per-worker statistics a UI can poll cheaply: one numpy structured record per worker.

Each record starts with its own seqlock word (`update_seq`, odd while the worker updates the record), so
`snapshot()` returns records whose fields belong together. Record i has one writer: worker i, or the
coordinator while worker i is not running (e.g. to mark it DEAD). A writer killed mid-update leaves its
record's seq odd; `snapshot()` then returns that record as it is rather than waiting forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol import WorkerState
from .base import ShmStruct
from .layout import LAYOUT_VERSION, magic, view
from .segments import SegmentGroup
from .waiting import Backoff

STATS_MAGIC = magic("MTUISTAT")
_HEADER_WORDS = 8


STATS_DTYPE = np.dtype(
    [
        ("update_seq", np.int64),
        ("pid", np.int64),
        ("state", np.int64),
        ("episodes", np.int64),
        ("steps", np.int64),
        ("last_reward", np.float64),
        ("best_reward", np.float64),
        ("best_x_pos", np.int64),
        ("epsilon", np.float64),
        ("grads_sent", np.int64),
        ("steps_per_s", np.float64),
        ("world", np.int64),
        ("stage", np.int64),
        ("x_pos", np.int64),
        ("env_time_frac", np.float64),
        ("learn_time_frac", np.float64),
        ("wait_time_frac", np.float64),
        ("frame_version", np.int64),
        ("act_time_frac", np.float64),
    ]
)
STAT_FIELDS: tuple[str, ...] = tuple(n for n in STATS_DTYPE.names if n != "update_seq")


@dataclass(frozen=True)
class WorkerStatsSpec:
    name: str
    num_workers: int

    @property
    def size(self) -> int:
        return _HEADER_WORDS * 8 + self.num_workers * STATS_DTYPE.itemsize


class WorkerStats(ShmStruct):
    """`update(i, steps=..., x_pos=...)` from worker i; `snapshot()` from anyone."""

    def __init__(self) -> None:
        raise TypeError("use WorkerStats.create(num_workers) or WorkerStats.attach(spec)")

    @classmethod
    def create(cls, num_workers: int, *, owner: SegmentGroup | None = None) -> WorkerStats:
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("stats", WorkerStatsSpec("", num_workers).size, owner)
        self.spec = WorkerStatsSpec(self.segment_name, num_workers)
        self._map(buf)
        self._header[:3] = [STATS_MAGIC, LAYOUT_VERSION, num_workers]
        self._records["best_reward"] = -np.inf
        return self

    @classmethod
    def attach(cls, spec: WorkerStatsSpec) -> WorkerStats:
        return cls._attach_checked(spec, STATS_MAGIC, "stats")

    def _map(self, buf: memoryview) -> None:
        self._header = view(buf, np.int64, _HEADER_WORDS, 0)
        self._records = view(buf, STATS_DTYPE, self.spec.num_workers, _HEADER_WORDS * 8)
        self._columns = {name: self._records[name] for name in STATS_DTYPE.names}
        self._seq = self._columns["update_seq"]

    def _drop_views(self) -> None:
        self._header = self._records = self._seq = None  # type: ignore[assignment]
        self._columns = {}

    @property
    def num_workers(self) -> int:
        return self.spec.num_workers

    def update(self, worker_id: int, **fields: Any) -> None:
        """Set some fields of record `worker_id` together (a few µs); `state` takes a `WorkerState`. Unknown field
        names raise KeyError."""
        if not 0 <= worker_id < self.spec.num_workers:
            raise IndexError(f"worker_id {worker_id} out of range 0..{self.spec.num_workers - 1}")
        columns = self._columns
        for name in fields:
            if name not in columns or name == "update_seq":
                raise KeyError(f"unknown stats field {name!r}; fields: {STAT_FIELDS}")
        if isinstance(fields.get("state"), WorkerState):
            fields["state"] = fields["state"].code
        seq = int(self._seq[worker_id])
        self._seq[worker_id] = seq + 1
        for name, value in fields.items():
            columns[name][worker_id] = value
        self._seq[worker_id] = seq + 2

    def increment(self, worker_id: int, **deltas: int | float) -> None:
        """Add to counters (e.g. `episodes=1`); same single-writer rule as `update`."""
        self.update(worker_id, **{name: self._columns[name][worker_id] + d for name, d in deltas.items()})

    def snapshot(self, *, attempts: int = 20) -> np.ndarray:
        """A consistent copy of all records (structured array of STATS_DTYPE)."""
        backoff = Backoff(None, yield_for=20e-6)
        out = self._records.copy()
        for _ in range(attempts):
            after = self._seq.copy()
            torn = (out["update_seq"] != after) | (after % 2 == 1)
            if not torn.any():
                return out
            backoff.wait()
            idx = np.flatnonzero(torn)
            out[idx] = self._records[idx]
        return out  # a record whose writer died mid-update: returned as last written

    def state(self, worker_id: int) -> WorkerState:
        """What worker `worker_id` last reported about itself."""
        return WorkerState.from_code(int(self._columns["state"][worker_id]))

    def record(self, worker_id: int) -> dict[str, int | float]:
        """One worker's fields as a dict (from a consistent snapshot)."""
        rec = self.snapshot()[worker_id]
        return {name: rec[name].item() for name in STAT_FIELDS}

    def column(self, name: str) -> np.ndarray:
        """One field for all workers (a copy; not checked against concurrent updates)."""
        return self._columns[name].copy()

    @staticmethod
    def fields() -> Iterable[str]:
        return STAT_FIELDS
