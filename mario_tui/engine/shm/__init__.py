"""Shared memory between the coordinator and its worker processes.

Coordinator::

    rt = RuntimeSegments.create(num_workers, numel, metric_names)   # removes stale segments first
    ctx.Process(target=worker_main, args=(rt.spec, i)).start()      # the spec is small and picklable
    ...
    rt.close()                                                      # unlinks every segment (idempotent)

Worker::

    seg = attach(spec, worker_id)      # maps; never unlinks
    seg.heartbeats.beat(worker_id); seg.weights.read_if_newer(v, flat); seg.gradients.write(g, v, metrics)
    seg.close()

Everything assumes x86-64 store ordering; see `layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..protocol import RunState, WorkerCommand, WorkerState
from .control import MAX_COMMANDS, ControlBlock, ControlSpec
from .episodes import RING, Episode, EpisodeBatch, EpisodeReader, EpisodeRings, EpisodeRingSpec
from .gradients import (
    DEFAULT_METRIC_NAMES,
    EMPTY,
    MAX_METRICS,
    READY,
    WRITING,
    GradientPacket,
    GradientPool,
    GradientPoolSpec,
    GradientWriter,
)
from .heartbeat import Heartbeats, HeartbeatsSpec
from .preview import FRAME_SHAPE, PreviewFrames, PreviewSpec
from .segments import (
    PREFIX,
    SegmentGroup,
    attach_segment,
    cleanup_stale_segments,
    create_segment,
    list_segments,
    make_segment_name,
    parse_segment_name,
    unlink_segment,
)
from .stats import STAT_FIELDS, STATS_DTYPE, WorkerStats, WorkerStatsSpec
from .waiting import Backoff
from .weights import WeightsBroadcast, WeightsSpec

__all__ = [
    "DEFAULT_METRIC_NAMES",
    "EMPTY",
    "FRAME_SHAPE",
    "MAX_COMMANDS",
    "MAX_METRICS",
    "PREFIX",
    "READY",
    "RING",
    "STATS_DTYPE",
    "STAT_FIELDS",
    "WRITING",
    "Backoff",
    "ControlBlock",
    "ControlSpec",
    "Episode",
    "EpisodeBatch",
    "EpisodeReader",
    "EpisodeRingSpec",
    "EpisodeRings",
    "GradientPacket",
    "GradientPool",
    "GradientPoolSpec",
    "GradientWriter",
    "Heartbeats",
    "HeartbeatsSpec",
    "PreviewFrames",
    "PreviewSpec",
    "RunState",
    "RuntimeSegments",
    "RuntimeSpec",
    "SegmentGroup",
    "WeightsBroadcast",
    "WeightsSpec",
    "WorkerCommand",
    "WorkerSegments",
    "WorkerState",
    "WorkerStats",
    "WorkerStatsSpec",
    "attach",
    "attach_segment",
    "cleanup_stale_segments",
    "create_segment",
    "list_segments",
    "make_segment_name",
    "parse_segment_name",
    "unlink_segment",
]


_PARTS = ("gradients", "weights", "heartbeats", "stats", "previews", "control", "episodes", "targets")


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything a worker needs to attach to a run's segments (picklable, a few hundred bytes)."""

    num_workers: int
    numel: int
    gradients: GradientPoolSpec
    weights: WeightsSpec
    heartbeats: HeartbeatsSpec
    stats: WorkerStatsSpec
    preview: PreviewSpec
    control: ControlSpec
    episodes: EpisodeRingSpec
    targets: WeightsSpec | None
    """The target network's weights (None: the model has none), published when the coordinator changes them."""

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.gradients.metric_names

    @property
    def segment_names(self) -> tuple[str, ...]:
        return (
            self.gradients.name,
            self.weights.name,
            self.heartbeats.name,
            self.stats.name,
            self.preview.name,
            self.control.name,
            self.episodes.name,
            *((self.targets.name,) if self.targets is not None else ()),
        )


class RuntimeSegments:
    """The coordinator's side of one run: creates every structure in one `SegmentGroup`, unlinks all on close."""

    gradients: GradientPool
    weights: WeightsBroadcast
    heartbeats: Heartbeats
    stats: WorkerStats
    previews: PreviewFrames
    control: ControlBlock
    episodes: EpisodeRings
    targets: WeightsBroadcast | None

    def __init__(
        self,
        num_workers: int,
        numel: int,
        metric_names: Sequence[str] = DEFAULT_METRIC_NAMES,
        *,
        target_numel: int = 0,
        slots_per_worker: int = 2,
        cleanup_stale: bool = True,
    ) -> None:
        self.removed_stale = cleanup_stale_segments() if cleanup_stale else []
        self._group = SegmentGroup()
        try:
            g = self._group
            self.gradients = GradientPool.create(
                num_workers, numel, metric_names, slots_per_worker=slots_per_worker, owner=g
            )
            self.weights = WeightsBroadcast.create(numel, owner=g)
            self.heartbeats = Heartbeats.create(num_workers, owner=g)
            self.stats = WorkerStats.create(num_workers, owner=g)
            self.previews = PreviewFrames.create(num_workers, owner=g)
            self.control = ControlBlock.create(num_workers, owner=g)
            self.episodes = EpisodeRings.create(num_workers, owner=g)
            self.targets = WeightsBroadcast.create(target_numel, owner=g) if target_numel > 0 else None
        except BaseException:
            self.close()
            raise
        self.spec = RuntimeSpec(
            num_workers,
            numel,
            self.gradients.spec,
            self.weights.spec,
            self.heartbeats.spec,
            self.stats.spec,
            self.previews.spec,
            self.control.spec,
            self.episodes.spec,
            self.targets.spec if self.targets is not None else None,
        )

    @classmethod
    def create(
        cls,
        num_workers: int,
        numel: int,
        metric_names: Sequence[str] = DEFAULT_METRIC_NAMES,
        *,
        target_numel: int = 0,
        slots_per_worker: int = 2,
        cleanup_stale: bool = True,
    ) -> RuntimeSegments:
        """Remove segments left by dead runs (unless told not to), then create this run's."""
        return cls(num_workers, numel, metric_names, target_numel=target_numel, slots_per_worker=slots_per_worker,
                   cleanup_stale=cleanup_stale)

    @property
    def segment_names(self) -> tuple[str, ...]:
        return self._group.names

    @property
    def closed(self) -> bool:
        return self._group.closed

    def close(self) -> None:
        """Unmap and unlink everything (idempotent). Workers keep their mappings until they close them."""
        for name in _PARTS:
            part = self.__dict__.get(name)
            if part is not None:
                part.close()
        self._group.close()

    def __enter__(self) -> RuntimeSegments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkerSegments:
    """A worker's side of the run: the same structures, attached (never unlinked), plus per-step shortcuts."""

    gradients: GradientWriter
    weights: WeightsBroadcast
    heartbeats: Heartbeats
    stats: WorkerStats
    previews: PreviewFrames
    control: ControlBlock
    episodes: EpisodeRings
    targets: WeightsBroadcast | None

    def __init__(self, spec: RuntimeSpec, worker_id: int) -> None:
        if not 0 <= worker_id < spec.num_workers:
            raise IndexError(f"worker_id {worker_id} out of range 0..{spec.num_workers - 1}")
        self.spec = spec
        self.worker_id = worker_id
        try:
            self.gradients = GradientPool.attach(spec.gradients, worker_id)
            self.weights = WeightsBroadcast.attach(spec.weights)
            self.heartbeats = Heartbeats.attach(spec.heartbeats)
            self.stats = WorkerStats.attach(spec.stats)
            self.previews = PreviewFrames.attach(spec.preview)
            self.control = ControlBlock.attach(spec.control)
            self.episodes = EpisodeRings.attach(spec.episodes)
            self.targets = WeightsBroadcast.attach(spec.targets) if spec.targets is not None else None
        except BaseException:
            self.close()
            raise

    def beat(self) -> None:
        self.heartbeats.beat(self.worker_id)

    def wants_preview(self) -> bool:
        """Whether the UI is showing this worker (then call `publish_frame` each step)."""
        return self.control.preview_worker == self.worker_id

    def publish_frame(self, frame: np.ndarray) -> int:
        """Write an RGB frame to this worker's preview area and its stats' `frame_version`."""
        version = self.previews.write(self.worker_id, frame)
        self.stats.update(self.worker_id, frame_version=version)
        return version

    def close(self) -> None:
        """Unmap (idempotent); the coordinator owns unlinking."""
        for name in _PARTS:
            part = self.__dict__.get(name)
            if part is not None:
                part.close()

    def __enter__(self) -> WorkerSegments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach(spec: RuntimeSpec, worker_id: int) -> WorkerSegments:
    """Attach a worker process to a run's segments."""
    return WorkerSegments(spec, worker_id)
