"""Finished episodes as a stream: a small ring of episode records per worker.

Worker i appends each episode it finishes (`append`), the coordinator reads every record it has not seen yet
(`EpisodeReader.read_new`), so two episodes that end between two polls are both counted. Worker i's ring has one
writer at a time (a restarted worker continues its predecessor's count: nothing is reset, nothing is lost); the
write count is stored after the record, so a reader that sees the count sees the record. A reader that falls more
than `RING` episodes behind loses the oldest ones' details but still counts them (`EpisodeBatch.lost`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import ShmStruct
from .layout import LAYOUT_VERSION, magic, view
from .segments import SegmentGroup

EPISODES_MAGIC = magic("MTUIEPIS")
RING = 64
"""Episodes per worker the ring holds: a 1-1 episode takes at least ~40 agent steps, the coordinator polls every
~50 ms, so 64 is a margin of minutes."""
_HEADER_WORDS = 8

EPISODE_DTYPE = np.dtype([
    ("reward", np.float64),
    ("x_pos", np.int64),
    ("length", np.int64),
    ("flag", np.int64),
    ("world", np.int64),
    ("stage", np.int64),
])


@dataclass(frozen=True)
class EpisodeRingSpec:
    name: str
    num_workers: int

    @property
    def size(self) -> int:
        return _HEADER_WORDS * 8 + self.num_workers * 8 + self.num_workers * RING * EPISODE_DTYPE.itemsize


@dataclass(frozen=True)
class Episode:
    """One finished episode, as its worker reported it."""

    worker_id: int
    reward: float
    x_pos: int
    length: int
    flag: bool
    world: int
    stage: int


@dataclass
class EpisodeBatch:
    """What one `read_new` found: the episodes in order, and how many more ended whose details were overwritten."""

    episodes: list[Episode] = field(default_factory=list)
    lost: int = 0


class EpisodeRings(ShmStruct):
    """Worker side: `append(i, reward=..., x_pos=..., ...)`; coordinator side: an `EpisodeReader` over it."""

    def __init__(self) -> None:
        raise TypeError("use EpisodeRings.create(num_workers) or EpisodeRings.attach(spec)")

    @classmethod
    def create(cls, num_workers: int, *, owner: SegmentGroup | None = None) -> EpisodeRings:
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("epis", EpisodeRingSpec("", num_workers).size, owner)
        self.spec = EpisodeRingSpec(self.segment_name, num_workers)
        self._map(buf)
        self._header[:3] = [EPISODES_MAGIC, LAYOUT_VERSION, num_workers]
        return self

    @classmethod
    def attach(cls, spec: EpisodeRingSpec) -> EpisodeRings:
        return cls._attach_checked(spec, EPISODES_MAGIC, "episodes")

    def _map(self, buf: memoryview) -> None:
        n = self.spec.num_workers
        self._header = view(buf, np.int64, _HEADER_WORDS, 0)
        self._counts = view(buf, np.int64, n, _HEADER_WORDS * 8)
        self._rings = view(buf, EPISODE_DTYPE, (n, RING), _HEADER_WORDS * 8 + n * 8)

    def _drop_views(self) -> None:
        self._header = self._counts = self._rings = None  # type: ignore[assignment]

    def append(self, worker_id: int, *, reward: float, x_pos: int, length: int, flag: bool, world: int,
               stage: int) -> None:
        """Record a finished episode of worker `worker_id` (its only writer)."""
        count = int(self._counts[worker_id])
        self._rings[worker_id, count % RING] = (reward, x_pos, length, int(flag), world, stage)
        self._counts[worker_id] = count + 1  # after the record: a reader seeing the count sees the record

    def count(self, worker_id: int) -> int:
        """Episodes worker `worker_id` (all its incarnations) has appended."""
        return int(self._counts[worker_id])

    def _records(self, worker_id: int, start: int, stop: int) -> np.ndarray:
        return self._rings[worker_id, [i % RING for i in range(start, stop)]]


class EpisodeReader:
    """The coordinator's cursor over every worker's ring (one reader per run)."""

    def __init__(self, rings: EpisodeRings) -> None:
        self.rings = rings
        self._seen = [rings.count(i) for i in range(rings.spec.num_workers)]

    def read_new(self) -> EpisodeBatch:
        """Every episode appended since the last call, worker by worker, oldest first."""
        batch = EpisodeBatch()
        for i, seen in enumerate(self._seen):
            count = self.rings.count(i)
            if count <= seen:
                continue
            start = max(seen, count - RING)
            records = self.rings._records(i, start, count)
            # A record the writer may have overwritten while we copied it: counted, its details dropped.
            valid_from = min(count, max(start, self.rings.count(i) - RING))
            batch.lost += (start - seen) + (valid_from - start)
            for rec in records[valid_from - start:]:
                batch.episodes.append(Episode(i, float(rec["reward"]), int(rec["x_pos"]), int(rec["length"]),
                                              bool(rec["flag"]), int(rec["world"]), int(rec["stage"])))
            self._seen[i] = count
        return batch
