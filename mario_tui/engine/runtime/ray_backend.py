"""The cluster backend (`--backend ray`): each worker is a Ray actor anywhere on a Ray cluster, running the same
`worker.WorkerLoop` as a local worker process, on a `RayLink`.

The driver (the TUI or `--batch`, with the coordinator) keeps one `exchange` call in flight per actor: the asynchronous
parameter-server pattern. A call carries down the run state, commands, and a reference to the newest weights
(`ray.put` once per version; the actor fetches them only when it is behind); it returns, as soon as the worker has a
gradient (or after `EXCHANGE_WAIT_S`), the gradients, figures, finished episodes, log lines and preview frame the
worker produced since. `ray.wait` takes whichever actor answers first.

Supervision follows the local backend's rules (`supervisor.RestartPolicy`): an actor whose call fails (its process
or node died: Ray restarts it, `max_restarts=-1`) or whose heartbeat is older than `--heartbeat-timeout` is counted as
a crash, and its loop is started again after the back-off; too many crashes and it is `failed`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayError, RayTaskError

from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState
from mario_tui.engine.runtime.base import WorkerInfo
from mario_tui.engine.runtime.ray_worker import Downlink, Uplink, WorkerActor
from mario_tui.engine.shm.episodes import Episode, EpisodeBatch
from mario_tui.engine.shm.stats import STAT_FIELDS, STATS_DTYPE
from mario_tui.engine.supervisor import RestartPolicy

STOP_WAIT_S = 10.0
STARTUP_GRACE_S = 120.0
"""An actor's first start on a node imports torch and builds its emulator before its loop beats (tens of seconds
on a busy small node): until its loop runs, its heartbeat may be this old before it counts as stuck."""


@dataclass(frozen=True)
class RayPacket:
    """A gradient that came back from an actor (it owns its array: nothing to release)."""

    worker_id: int
    weights_version: int
    grad: np.ndarray
    metrics: Mapping[str, float]

    def release(self) -> None:
        pass


# --- the driver's side -------------------------------------------------------------------------------
def init_ray(**kwargs: Any) -> threading.Event:
    """`ray.init(**kwargs)` from a thread that lives until the returned event is set (after `ray.shutdown()`).

    A local Ray instance's processes (GCS, raylet with the object store, …) are started with PR_SET_PDEATHSIG, and
    Linux sends that signal when the *thread* that started them ends, not the process: started from the run's
    supervisor thread, they were all SIGKILLed when it returned at the run's stop, and Ray's client then ended this
    process with status 1 (before the final checkpoint) as its object store went away. The thread parks once Ray
    is up; as a daemon it ends with the process at the latest.
    """
    done, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def host() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        done.set()
        if not failure:
            release.wait()  # park: Ray's processes die with this thread

    threading.Thread(target=host, name="mario-ray-host", daemon=True).start()
    done.wait()
    if failure:
        raise failure[0]
    return release


@dataclass
class _Actor:
    worker_id: int
    handle: Any = None
    state: WorkerState = WorkerState.STARTING
    pid: int | None = None
    node: str = ""
    restarts: int = 0
    last_error: str = ""
    incarnation: int = 0
    start_ref: Any = None
    exchange_ref: Any = None
    loop_started: bool = False
    """The actor answered `start`: exchanges may go to it."""
    last_heard: float = 0.0
    beat_age: float = 0.0
    started_at: float = 0.0
    restart_at: float = 0.0
    crash_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    commands: list[int] = field(default_factory=list)
    reported: dict[str, Any] = field(default_factory=dict)


class RayRuntime:
    """A run's workers as Ray actors (the `WorkerRuntime` of `--backend ray`)."""

    def __init__(self, num_workers: int, numel: int, metric_names: Sequence[str], *, address: str,
                 cpus_per_worker: float, gpus_per_worker: float, worker_spec: Callable[[int, int, Any], Any],
                 heartbeat_timeout: float, log: Callable[[str], None], worker_lines: Callable[[str], None],
                 policy: RestartPolicy | None = None) -> None:
        """`log` takes the driver's own lines, `worker_lines` the workers' (already `... [w<i>] ...` lines)."""
        self.num_workers = num_workers
        self.numel = numel
        self.metric_names = tuple(metric_names)
        self.address = address
        self.cpus_per_worker, self.gpus_per_worker = cpus_per_worker, gpus_per_worker
        self._worker_spec = worker_spec
        self.heartbeat_timeout = heartbeat_timeout
        self._log = log
        self._worker_lines = worker_lines
        self.policy = policy or RestartPolicy()
        self._lock = threading.RLock()
        self._actors = [_Actor(i) for i in range(num_workers)]
        self._run_state = RunState.RUNNING
        self._weights: tuple[int, Any] | None = None  # (version, ref or a host copy before Ray is up)
        self._targets: tuple[int, Any] | None = None
        self._target_version = 0
        self._packets: list[RayPacket] = []
        self._episodes: list[Episode] = []
        self._stats = np.zeros(num_workers, dtype=STATS_DTYPE)
        self._stats["best_reward"] = -np.inf
        self._frames: dict[int, tuple[int, np.ndarray]] = {}
        self._preview_worker = -1
        self._requests: deque[tuple[int, str]] = deque()
        self._connected = False
        self._owns_ray = False
        self._ray_host: threading.Event | None = None  # set to let `init_ray`'s thread end
        self._closed = False
        self._stopping = False
        self._paused = False

    # --- connecting and starting ---------------------------------------------------------------------
    def _connect(self) -> None:
        """Join the cluster (or start a Ray instance for this run) and put the weights published so far."""
        # Ray's own warnings at start-up would print over the app's screen: errors only (workers' lines come
        # through the exchange calls, not Ray's log forwarding).
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if ray.is_initialized():
            pass  # the caller (a test, a notebook) is already connected: use that cluster
        elif self.address:
            self._ray_host = init_ray(address=self.address, **kwargs)
            self._owns_ray = True  # this driver's connection: closed at the end (the cluster stays up)
        else:
            # One box: room for every worker even past the core count, as local worker processes have.
            cpus = max(os.cpu_count() or 1, math.ceil(self.num_workers * self.cpus_per_worker))
            self._ray_host = init_ray(num_cpus=cpus, **kwargs)
            self._owns_ray = True
        self._connected = True
        with self._lock:
            if self._weights is not None and isinstance(self._weights[1], np.ndarray):
                self._weights = (self._weights[0], ray.put(self._weights[1]))
            if self._targets is not None and isinstance(self._targets[1], np.ndarray):
                self._targets = (self._targets[0], ray.put(self._targets[1]))
        where = self.address or "a Ray instance on this machine"
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self._log(f"Ray backend: {where}, {nodes} node{'s' if nodes != 1 else ''}, "
                  f"{ray.cluster_resources().get('CPU', 0):.0f} CPUs")

    def start_workers(self) -> None:
        try:
            self._connect()
        except Exception as exc:  # noqa: BLE001 - one line for the user: Ray's own exceptions vary by cause
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise RuntimeError(f"cannot reach {where}: {type(exc).__name__}: {exc}") from None
        actor_class = ray.remote(WorkerActor)
        options: dict[str, Any] = {"num_cpus": self.cpus_per_worker, "max_restarts": -1, "max_task_retries": 0,
                                   "max_concurrency": 4}
        if self.gpus_per_worker > 0:
            options["num_gpus"] = self.gpus_per_worker
        with self._lock:
            for actor in self._actors:
                actor.handle = actor_class.options(name=None, **options).remote()
                self._start_loop(actor)

    def _start_loop(self, actor: _Actor) -> None:
        spec = self._worker_spec(actor.worker_id, actor.incarnation, None)
        actor.incarnation += 1
        actor.start_ref = actor.handle.start.remote(spec, self.metric_names, self.numel)
        actor.exchange_ref = None
        actor.loop_started = False
        if actor.state is not WorkerState.RESTARTING:
            actor.state = WorkerState.STARTING
        actor.started_at = actor.last_heard = time.monotonic()
        actor.beat_age = 0.0

    # --- the transport -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, weights: np.ndarray, version: int, targets: np.ndarray | None = None) -> None:
        with self._lock:
            if targets is not None:
                self._target_version += 1
                self._targets = (self._target_version, ray.put(targets) if self._connected else targets.copy())
            self._weights = (version, ray.put(weights) if self._connected else weights.copy())

    def _downlink(self, actor: _Actor) -> Downlink:
        weights = (self._weights[0], [self._weights[1]]) if self._weights is not None else None
        targets = (self._targets[0], [self._targets[1]]) if self._targets is not None else None
        commands, actor.commands = actor.commands, []
        return Downlink(int(self._run_state), weights, targets, commands, actor.worker_id == self._preview_worker)

    def _pump(self, timeout: float) -> None:
        """Handle every answered call (waiting up to `timeout` s for the first) and keep one exchange in flight
        per running actor."""
        if not self._connected or self._closed:
            if timeout > 0:
                time.sleep(timeout)
            return
        with self._lock:
            refs = {}
            for actor in self._actors:
                if actor.state in (WorkerState.DEAD, WorkerState.FAILED, WorkerState.STOPPED):
                    continue
                if actor.start_ref is not None:
                    refs[actor.start_ref] = actor
                elif actor.loop_started:
                    if actor.exchange_ref is None:
                        actor.exchange_ref = actor.handle.exchange.remote(self._downlink(actor))
                    refs[actor.exchange_ref] = actor
        if not refs:
            if timeout > 0:
                time.sleep(timeout)
            return
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        with self._lock:
            for ref in ready:
                self._answered(refs[ref], ref)

    def _answered(self, actor: _Actor, ref: Any) -> None:
        if ref is not actor.start_ref and ref is not actor.exchange_ref:
            return  # another thread handled it already, or it belongs to an incarnation that is gone
        try:
            result = ray.get(ref, timeout=5.0)
        except GetTimeoutError:
            return
        except ActorUnavailableError:
            if ref is actor.start_ref:  # the actor is being restarted (its node died, it was killed): try again
                actor.start_ref = None
                actor.state = WorkerState.RESTARTING
                actor.restart_at = time.monotonic() + 0.5
            else:
                self._crashed(actor, "the actor became unavailable (its process or node died)")
            return
        except RayError as exc:
            self._crashed(actor, _ray_error_line(exc))
            return
        now = time.monotonic()
        actor.last_heard = now
        if ref is actor.start_ref:
            actor.start_ref = None
            actor.loop_started = True
            actor.pid, actor.node = result
            self._stats["pid"][actor.worker_id] = actor.pid
            return
        actor.exchange_ref = None
        up: Uplink = result
        actor.beat_age = up.beat_age
        for line in up.logs:
            self._worker_lines(line)
        for version, grad, metrics in up.gradients:
            self._packets.append(RayPacket(actor.worker_id, version, grad, metrics))
        for reward, x_pos, length, flag, world, stage in up.episodes:
            self._episodes.append(Episode(actor.worker_id, reward, x_pos, length, flag, world, stage))
        record = self._stats[actor.worker_id]
        for name, value in up.stats.items():
            if name in STAT_FIELDS:
                record[name] = value
        if up.frame is not None:
            version = self._frames.get(actor.worker_id, (0, None))[0] + 1
            self._frames[actor.worker_id] = (version, up.frame)
            record["frame_version"] = version
        if up.error:
            self._crashed(actor, up.error)
            return
        if actor.state in (WorkerState.STARTING, WorkerState.STALE, WorkerState.RESTARTING):
            actor.state = WorkerState.PAUSED if self._paused else WorkerState.RUNNING
        if not self._stopping:
            actor.exchange_ref = actor.handle.exchange.remote(self._downlink(actor))

    def gradients(self, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            self._pump(max(0.0, deadline - time.monotonic()))
            with self._lock:
                if self._packets or time.monotonic() >= deadline:
                    packets, self._packets = self._packets, []
                    return packets

    def episodes(self) -> EpisodeBatch:
        self._pump(0.0)
        with self._lock:
            episodes, self._episodes = self._episodes, []
        return EpisodeBatch(episodes)

    def stats(self) -> np.ndarray:
        self._pump(0.0)
        with self._lock:
            return self._stats.copy()

    def heartbeat_ages(self) -> np.ndarray:
        now = time.monotonic()
        with self._lock:
            return np.array([now - a.last_heard + a.beat_age for a in self._actors])

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [WorkerInfo(a.worker_id, a.state, a.pid, a.node, a.restarts, a.last_error) for a in self._actors]

    def set_run_state(self, state: RunState) -> None:
        with self._lock:
            self._run_state = state
            self._paused = state == RunState.PAUSED
            if state == RunState.STOPPING:
                self._stopping = True
            for actor in self._actors:
                if actor.state in (WorkerState.RUNNING, WorkerState.PAUSED):
                    actor.state = WorkerState.PAUSED if self._paused else WorkerState.RUNNING

    def request(self, worker_id: int, command: WorkerCommand) -> None:
        with self._lock:
            self._actors[worker_id].commands.append(int(command))

    def set_preview_worker(self, worker_id: int) -> None:
        self._preview_worker = worker_id

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        with self._lock:
            frame = self._frames.get(worker_id)
        if frame is None or frame[0] <= current_version:
            return None
        return frame

    # --- supervision ---------------------------------------------------------------------------------
    def restart_worker(self, worker_id: int, reason: str) -> None:
        self._requests.append((worker_id, reason))

    def supervise(self) -> None:
        if self._stopping or not self._connected:
            return
        now = time.monotonic()
        with self._lock:
            while self._requests:
                worker_id, reason = self._requests.popleft()
                if 0 <= worker_id < self.num_workers:
                    self._restart(self._actors[worker_id], reason)
            for actor in self._actors:
                if actor.state in (WorkerState.FAILED, WorkerState.STOPPED):
                    continue
                if actor.state is WorkerState.DEAD:
                    if now >= actor.restart_at:
                        self._log(f"restarting worker {actor.worker_id}: back-off elapsed after a crash")
                        actor.restarts += 1
                        actor.state = WorkerState.RESTARTING
                        self._start_loop(actor)
                    continue
                if actor.state is WorkerState.RESTARTING and actor.start_ref is None and not actor.loop_started:
                    if now >= actor.restart_at:
                        self._start_loop(actor)  # the same restart, retried: Ray had not brought the actor back
                    continue
                age = now - actor.last_heard + actor.beat_age
                starting = actor.state in (WorkerState.STARTING, WorkerState.RESTARTING)
                if age > (max(self.heartbeat_timeout, STARTUP_GRACE_S) if starting else self.heartbeat_timeout):
                    self._crashed(actor, f"stuck: no heartbeat for {age:.0f} s")
                    with _suppress_ray_errors():
                        ray.kill(actor.handle, no_restart=False)
                elif age > max(2.0, self.heartbeat_timeout / 4) and actor.state is WorkerState.RUNNING:
                    actor.state = WorkerState.STALE

    def _restart(self, actor: _Actor, reason: str) -> None:
        """Kill the actor's process (Ray starts a new one) and start the loop again in it; counts a restart."""
        self._log(f"restarting worker {actor.worker_id}: {reason}")
        actor.state = WorkerState.RESTARTING
        with _suppress_ray_errors():
            ray.kill(actor.handle, no_restart=False)
        actor.restarts += 1
        self._start_loop(actor)

    def _crashed(self, actor: _Actor, why: str) -> None:
        if self._stopping or actor.state is WorkerState.FAILED:
            return
        now = time.monotonic()
        actor.start_ref = actor.exchange_ref = None
        actor.loop_started = False
        actor.last_error = why
        actor.crash_times.append(now)
        recent = self.policy.recent(actor.crash_times, now)
        if self.policy.gives_up(recent):
            actor.state = WorkerState.FAILED
            with _suppress_ray_errors():
                ray.kill(actor.handle, no_restart=True)
            self._log(self.policy.failed_line(actor.worker_id, why, recent, not self.all_failed()))
            return
        delay = self.policy.delay(recent)
        actor.state = WorkerState.DEAD
        actor.restart_at = now + delay
        self._log(f"worker {actor.worker_id} {why}; restarting in {delay:.1f} s")

    def all_failed(self) -> bool:
        return all(a.state is WorkerState.FAILED for a in self._actors)

    def alive_count(self) -> int:
        with self._lock:
            return sum(1 for a in self._actors if a.state not in (WorkerState.DEAD, WorkerState.FAILED,
                                                                  WorkerState.STOPPED))

    # --- the end -------------------------------------------------------------------------------------
    def stop_workers(self, timeout: float) -> None:
        """Let the loops see STOPPING (their last figures and episodes come back), then end the actors."""
        self.set_run_state(RunState.STOPPING)
        if not self._connected:
            return
        deadline = time.monotonic() + min(timeout, STOP_WAIT_S)
        while time.monotonic() < deadline:
            with self._lock:
                pending = [a for a in self._actors if a.state not in (WorkerState.FAILED, WorkerState.DEAD)
                           and int(self._stats["state"][a.worker_id]) != WorkerState.STOPPED.code]
                for actor in pending:
                    if actor.exchange_ref is None and actor.loop_started:
                        actor.exchange_ref = actor.handle.exchange.remote(self._downlink(actor))
            if not pending:
                break
            self._pump_stopping(0.1)
        with self._lock:
            for actor in self._actors:
                with _suppress_ray_errors():
                    ray.kill(actor.handle, no_restart=True)
                if actor.state is not WorkerState.FAILED:
                    actor.state = WorkerState.STOPPED

    def _pump_stopping(self, timeout: float) -> None:
        with self._lock:
            refs = {a.exchange_ref: a for a in self._actors if a.exchange_ref is not None}
        if not refs:
            time.sleep(timeout)
            return
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        with self._lock:
            for ref in ready:
                self._answered(refs[ref], ref)

    def close(self) -> None:
        """Disconnect from Ray if this run connected (a Ray instance it started stops with it)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        if self._ray_host is not None:
            self._ray_host.set()


class _suppress_ray_errors:  # noqa: N801 - used like contextlib.suppress
    """Killing an actor that is already gone (or whose node is) is not an error here."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> bool:
        return exc_type is not None and issubclass(exc_type, (RayError, ValueError))


def _ray_error_line(exc: BaseException) -> str:
    """One line for the worker table from what Ray raised for a dead or unreachable actor (or, for an exception
    raised inside the actor, that exception)."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, RayTaskError) and isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"[:300]
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    reason = next((line.strip() for line in text if "died" in line or "unavailable" in line.lower()), "")
    return f"{name}: {reason[:200]}" if reason else name
