"""The one-machine backend (the default): worker processes, shared memory between them and the coordinator, and
a `Supervisor` that restarts dead and stuck ones.

Gradients travel through shared-memory slots the workers backpropagate into (no copy on either side), weights
and target weights through seqlocked broadcasts, episodes through per-worker rings; see `engine/shm`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from mario_tui.engine import shm
from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState
from mario_tui.engine.runtime.base import WorkerInfo
from mario_tui.engine.supervisor import Supervisor

POLL_SLEEP_S = 4e-3
"""Longest sleep between two polls of the gradient slots: a packet waits at most that long (a gradient takes
~50 ms to compute), and the waiting coordinator stays off the GIL the app's event loop shares."""


@dataclass(frozen=True)
class ShmLinkSpec:
    """What a local worker process needs to reach its run: the segments' names and the coordinator's pid."""

    runtime: shm.RuntimeSpec
    coordinator_pid: int
    run_root: str

    def connect(self, worker_id: int) -> ShmWorkerLink:
        return ShmWorkerLink(self, worker_id)


class ShmWorkerLink:
    """A worker's end of the shared-memory transport."""

    def __init__(self, spec: ShmLinkSpec, worker_id: int) -> None:
        self.worker_id = worker_id
        self.metric_names = spec.runtime.metric_names
        self._coordinator_pid = spec.coordinator_pid
        self._run_root = spec.run_root
        self._names = set(self.metric_names)
        self.seg = shm.attach(spec.runtime, worker_id)
        self.report(pid=os.getpid(), state=WorkerState.STARTING)
        self.beat()

    def beat(self) -> None:
        self.seg.beat()

    def coordinator_alive(self) -> bool:
        try:
            os.kill(self._coordinator_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def run_state(self) -> RunState:
        return self.seg.control.run_state

    def take_commands(self) -> list[WorkerCommand | int]:
        return self.seg.control.take(self.worker_id)

    def report(self, **fields: Any) -> None:
        self.seg.stats.update(self.worker_id, **fields)

    def report_episode(self, *, reward: float, x_pos: int, length: int, flag: bool, world: int, stage: int) -> None:
        self.seg.episodes.append(self.worker_id, reward=reward, x_pos=x_pos, length=length, flag=flag, world=world,
                                 stage=stage)

    def pull_weights(self, current_version: int, out: np.ndarray) -> int | None:
        return self.seg.weights.read_if_newer(current_version, out)

    def pull_targets(self, current_version: int, out: np.ndarray) -> int | None:
        if self.seg.targets is None:
            return None
        return self.seg.targets.read_if_newer(current_version, out)

    def gradient_buffer(self) -> np.ndarray | None:
        return self.seg.gradients.try_grad_buffer()

    def send_gradient(self, weights_version: int, metrics: Mapping[str, float]) -> None:
        self.seg.gradients.try_publish(weights_version, {k: v for k, v in metrics.items() if k in self._names})

    def wants_preview(self) -> bool:
        return self.seg.wants_preview()

    def publish_frame(self, frame: np.ndarray) -> None:
        self.seg.publish_frame(frame)

    def log(self, message: str) -> None:
        from mario_tui.engine.worker import append_run_log, worker_log_line

        append_run_log(self._run_root, worker_log_line(self.worker_id, message))

    def close(self) -> None:
        self.seg.close()


SpawnTarget = Callable[[Any], None]


class LocalRuntime:
    """A run's worker processes on this machine and the shared memory they share with the coordinator.

    `worker_spec(worker_id, incarnation, link)` builds what a (re)started worker process gets; `target` is its
    entry point (`worker.worker_main`). Process starts, kills and joins happen on the thread that calls
    `start_workers`, `supervise` and `stop_workers` (the run's supervision thread)."""

    def __init__(self, num_workers: int, numel: int, metric_names: Sequence[str], *, target_numel: int,
                 ctx: BaseContext, target: SpawnTarget, worker_spec: Callable[[int, int, ShmLinkSpec], Any],
                 heartbeat_timeout: float, log: Callable[[str], None], run_root: str,
                 worker_log: Callable[[int], Path | None] = lambda i: None) -> None:
        self.num_workers = num_workers
        self.segments = shm.RuntimeSegments.create(num_workers, numel, metric_names, target_numel=target_numel)
        self._close_lock = threading.Lock()  # the app's thread reads figures while the run's thread closes
        self._last_stats: np.ndarray | None = None
        try:
            if self.segments.removed_stale:
                log(f"removed {len(self.segments.removed_stale)} shared-memory segments left by a dead run")
            self.link_spec = ShmLinkSpec(self.segments.spec, os.getpid(), run_root)
            self._episodes = shm.EpisodeReader(self.segments.episodes)
            self._ctx, self._target, self._worker_spec = ctx, target, worker_spec
            self._incarnations = [0] * num_workers
            self.segments.control.run_state = RunState.RUNNING
            now = time.monotonic()
            for i in range(num_workers):
                self.segments.heartbeats.beat(i, now)
            self.supervisor = Supervisor(num_workers, self._spawn, self.segments.heartbeats.age, heartbeat_timeout,
                                         log=log, on_restart=self._before_start, worker_log=worker_log)
        except BaseException:
            self.segments.close()
            raise

    # --- processes ---------------------------------------------------------------------------------
    def _spawn(self, worker_id: int) -> BaseProcess:
        incarnation = self._incarnations[worker_id]
        self._incarnations[worker_id] += 1
        spec = self._worker_spec(worker_id, incarnation, self.link_spec)
        proc = self._ctx.Process(target=self._target, args=(spec,), name=f"mario-worker-{worker_id}", daemon=True)
        proc.start()
        return proc

    def _before_start(self, worker_id: int) -> None:
        """A fresh process takes the id: free its gradient slots, forget its commands, reset its clock."""
        segments = self.segments
        segments.gradients.reset_worker(worker_id)
        segments.control.clear_commands(worker_id)
        segments.heartbeats.beat(worker_id)
        segments.stats.update(worker_id, state=WorkerState.STARTING, steps_per_s=0.0)

    def start_workers(self) -> None:
        self.supervisor.start_all()

    def supervise(self) -> None:
        self.supervisor.check()

    def restart_worker(self, worker_id: int, reason: str) -> None:
        self.supervisor.request_restart(worker_id, reason)

    def all_failed(self) -> bool:
        return self.supervisor.all_failed()

    def alive_count(self) -> int:
        return self.supervisor.alive_count()

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(r.worker_id, r.state, r.pid, "", r.restarts, r.last_error) for r in self.supervisor.workers]

    def stop_workers(self, timeout: float) -> None:
        self.supervisor.stopping = True
        self.supervisor.stop_all(timeout)

    # --- transport ---------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.segments.closed

    def publish(self, weights: np.ndarray, version: int, targets: np.ndarray | None = None) -> None:
        if targets is not None and self.segments.targets is not None:
            self.segments.targets.publish(targets)  # first: a worker that sees the new weights finds these too
        self.segments.weights.publish(weights, version=version)

    def gradients(self, timeout: float) -> list[Any]:
        return self.segments.gradients.wait(timeout=timeout, max_sleep=POLL_SLEEP_S)

    def episodes(self) -> shm.EpisodeBatch:
        return self._episodes.read_new()

    def stats(self) -> np.ndarray:
        """The workers' figures; after `close`, the last ones read (the segments are gone)."""
        with self._close_lock:
            if not self.segments.closed:
                return self.segments.stats.snapshot()  # a copy already: the coordinator polls it each pass
            if self._last_stats is None:
                return np.zeros(self.num_workers, shm.STATS_DTYPE)
            return self._last_stats.copy()

    def heartbeat_ages(self) -> np.ndarray:
        with self._close_lock:
            if self.segments.closed:
                return np.zeros(self.num_workers)
            return self.segments.heartbeats.ages()

    def set_run_state(self, state: RunState) -> None:
        self.segments.control.run_state = state
        self.supervisor.paused = state == RunState.PAUSED
        if state == RunState.STOPPING:
            self.supervisor.stopping = True

    def request(self, worker_id: int, command: WorkerCommand) -> None:
        self.segments.control.request(worker_id, command)

    def set_preview_worker(self, worker_id: int) -> None:
        with self._close_lock:
            if not self.segments.closed:
                self.segments.control.preview_worker = worker_id

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        with self._close_lock:
            if self.segments.closed or not 0 <= worker_id < self.num_workers:
                return None
            return self.segments.previews.read_if_newer(worker_id, current_version)

    def close(self) -> None:
        """Release the segments; waits for a read the app's thread is making (they see `closed` after)."""
        with self._close_lock:
            if not self.segments.closed:
                self._last_stats = self.segments.stats.snapshot()
            self.segments.close()

