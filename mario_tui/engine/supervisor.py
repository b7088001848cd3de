"""Keeps worker processes alive: detects dead (exit code) and stuck (stale heartbeat) workers and restarts
them with back-off; a worker that keeps crashing is marked `failed` and the run goes on without it.

All process start/kill/join calls happen on the one thread that calls `check()` (starting processes
blocks for a while, and multiprocessing objects are not meant to be shared across threads).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from mario_tui.engine.protocol import WorkerState


@dataclass
class WorkerRecord:
    worker_id: int
    process: BaseProcess | None = None
    state: WorkerState = WorkerState.STARTING
    restarts: int = 0
    crash_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    last_error: str = ""
    restart_at: float = 0.0
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass
class RestartPolicy:
    """Back-off doubles from `base_delay` to `max_delay`; `max_crashes` within `window` seconds → failed."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_crashes: int = 5
    window: float = 600.0

    def delay(self, recent_crashes: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** max(recent_crashes - 1, 0))

    def recent(self, crash_times: list[float], now: float) -> int:
        return sum(1 for t in crash_times if now - t <= self.window)

    def gives_up(self, recent_crashes: int) -> bool:
        return recent_crashes >= self.max_crashes

    def failed_line(self, worker_id: int, why: str, recent_crashes: int, run_goes_on: bool) -> str:
        goes_on = " (the run goes on)" if run_goes_on else ""
        return (f"worker {worker_id} failed: {why}; {recent_crashes} crashes in {self.window / 60:.0f} min, "
                f"not restarting it again{goes_on}")


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[w\d+\] ")


def last_error_line(log_path: Path | None, max_bytes: int = 16_384) -> str:
    """The exception line of the last traceback in a worker's log, or "" when its last words are not an error.

    The worker's own lines (`... [w0] started (pid 12)`) are progress, not errors: a worker killed by a signal
    leaves one of them last, and the reason is in its exit code instead (`exit_reason`)."""
    if log_path is None or not log_path.exists():
        return ""
    try:
        with log_path.open("rb") as handle:
            handle.seek(max(0, log_path.stat().st_size - max_bytes))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if not line.strip() or line.startswith((" ", "\t")):
            continue
        if LOG_LINE.match(line):
            if "] crashed: " in line:
                continue  # the traceback's own exception line, above it, says the same with its type
            return ""
        return line.strip()[:300]
    return ""


def exit_reason(exitcode: int | None) -> str:
    """`killed by signal 9 (SIGKILL)` or `exited with code 1` from a process's exit code."""
    if exitcode is None:
        return "exited"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with code {exitcode}"


class Supervisor:
    """Owns the worker processes of one run."""

    def __init__(self, num_workers: int, spawn: Callable[[int], BaseProcess],
                 heartbeat_age: Callable[[int], float], heartbeat_timeout: float,
                 log: Callable[[str], None], on_restart: Callable[[int], None] = lambda i: None,
                 worker_log: Callable[[int], Path | None] = lambda i: None,
                 policy: RestartPolicy | None = None) -> None:
        self.workers = [WorkerRecord(i) for i in range(num_workers)]
        self._spawn = spawn
        self._heartbeat_age = heartbeat_age
        self.heartbeat_timeout = heartbeat_timeout
        self._log = log
        self._on_restart = on_restart
        self._worker_log = worker_log
        self.policy = policy or RestartPolicy()
        self.paused = False
        self.stopping = False
        self._requests: deque[tuple[int, str]] = deque()

    # --- requests from other threads (UI, CLI): executed by the next check() ---------------------
    def request_restart(self, worker_id: int, reason: str = "requested") -> None:
        self._requests.append((worker_id, reason))

    # --- on the supervisor thread --------------------------------------------------------------
    def start_all(self) -> None:
        for record in self.workers:
            self._start(record)

    def _start(self, record: WorkerRecord) -> None:
        self._on_restart(record.worker_id)
        record.process = self._spawn(record.worker_id)
        record.started_at = time.monotonic()
        record.state = WorkerState.STARTING

    def _kill(self, record: WorkerRecord, grace: float = 0.0) -> None:
        proc = record.process
        if proc is None:
            return
        if proc.is_alive() and grace > 0:
            proc.terminate()
            proc.join(grace)
        if proc.is_alive():
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(proc.pid, signal.SIGCONT)  # a SIGSTOPped process must be able to die
            proc.kill()
        proc.join(5.0)
        if not proc.is_alive():
            proc.close()
        record.process = None

    def restart(self, worker_id: int, reason: str) -> None:
        """Kill (if needed) and start worker `worker_id` again with the same id; counts a restart."""
        record = self.workers[worker_id]
        self._log(f"restarting worker {worker_id}: {reason}")
        record.state = WorkerState.RESTARTING
        self._kill(record)
        record.restarts += 1
        self._start(record)

    def check(self) -> None:
        """One supervision pass: requests, deaths, stuck heartbeats, due restarts, states."""
        if self.stopping:
            return
        now = time.monotonic()
        while self._requests:
            worker_id, reason = self._requests.popleft()
            if 0 <= worker_id < len(self.workers):
                self.restart(worker_id, reason)
        for record in self.workers:
            if record.state is WorkerState.FAILED or record.state is WorkerState.STOPPED:
                continue
            if record.state is WorkerState.DEAD:
                if now >= record.restart_at:
                    self.restart(record.worker_id, "back-off elapsed after a crash")
                continue
            proc = record.process
            if proc is not None and not proc.is_alive():
                self._crashed(record, exit_reason(proc.exitcode), now)
                continue
            age = self._heartbeat_age(record.worker_id)
            if age > self.heartbeat_timeout:
                self._crashed(record, f"stuck: no heartbeat for {age:.0f} s", now)
                continue
            if age > max(2.0, self.heartbeat_timeout / 4):
                record.state = WorkerState.STALE
            elif self.paused:
                record.state = WorkerState.PAUSED
            elif age < 2.0 and now - record.started_at > 0.0:
                record.state = WorkerState.RUNNING

    def _crashed(self, record: WorkerRecord, why: str, now: float) -> None:
        self._kill(record)
        error = last_error_line(self._worker_log(record.worker_id))
        record.last_error = error or why
        record.crash_times.append(now)
        recent = self.policy.recent(record.crash_times, now)
        detail = f" ({error})" if error else ""
        if self.policy.gives_up(recent):
            record.state = WorkerState.FAILED
            self._log(self.policy.failed_line(record.worker_id, why + detail, recent, not self.all_failed()))
            return
        delay = self.policy.delay(recent)
        record.state = WorkerState.DEAD
        record.restart_at = now + delay
        self._log(f"worker {record.worker_id} {why}{detail}; restarting in {delay:.1f} s")

    def stop_all(self, timeout: float = 10.0) -> None:
        """Join workers (they were told to stop through the control block), killing any that linger."""
        deadline = time.monotonic() + timeout
        for record in self.workers:
            if record.process is not None:
                record.process.join(max(0.0, deadline - time.monotonic()))
        for record in self.workers:
            self._kill(record, grace=1.0)
            if record.state is not WorkerState.FAILED:  # a failed worker stays failed: the final table says why
                record.state = WorkerState.STOPPED

    def all_failed(self) -> bool:
        """No worker is left and none will be restarted: the run cannot make progress."""
        return all(r.state is WorkerState.FAILED for r in self.workers)

    def alive_count(self) -> int:
        return sum(1 for r in self.workers if r.process is not None and r.process.is_alive())
