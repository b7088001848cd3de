"""Supervision policy with real processes: crash back-off, the failure cap, last error from the log."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from mario_tui.engine.protocol import WorkerState
from mario_tui.engine.supervisor import RestartPolicy, Supervisor, last_error_line


def crash_with_error(log_path: str) -> None:
    """A worker that always fails the same way, writing a traceback to its log like a real one."""
    with open(log_path, "a") as log:
        log.write("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: emulator exploded\n")
    sys.exit(1)


def sleep_forever() -> None:
    time.sleep(600)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def poll_until(supervisor: Supervisor, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check()
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_crashing_worker_backs_off_then_is_marked_failed(tmp_path):
    ctx = mp.get_context("spawn")
    log = tmp_path / "worker-0.log"
    lines: list[str] = []

    def spawn(i: int):
        proc = ctx.Process(target=crash_with_error, args=(str(log),))
        proc.start()
        return proc

    supervisor = Supervisor(1, spawn, heartbeat_age=lambda i: 0.0, heartbeat_timeout=30, log=lines.append,
                            worker_log=lambda i: log,
                            policy=RestartPolicy(base_delay=0.05, max_delay=0.2, max_crashes=3, window=60))
    supervisor.start_all()
    record = supervisor.workers[0]
    poll_until(supervisor, lambda: record.state is WorkerState.FAILED, 60)
    assert record.restarts == 2  # crashes 1 and 2 were restarted, crash 3 hit the cap
    assert record.last_error == "RuntimeError: emulator exploded"
    assert any("restarting in" in line for line in lines)
    assert "not restarting it again" in lines[-1]
    supervisor.check()  # a failed worker stays failed
    assert record.state is WorkerState.FAILED and record.process is None


def test_stuck_worker_is_killed_and_restarted(tmp_path):
    ctx = mp.get_context("spawn")
    started: list = []

    def spawn(i: int):
        proc = ctx.Process(target=sleep_forever, daemon=True)
        proc.start()
        started.append(proc.pid)
        return proc

    ages = {"age": 0.0}
    lines: list[str] = []
    supervisor = Supervisor(1, spawn, heartbeat_age=lambda i: ages["age"], heartbeat_timeout=5, log=lines.append,
                            policy=RestartPolicy(base_delay=0.01))
    try:
        supervisor.start_all()
        first_pid = started[0]
        ages["age"] = 3.0
        supervisor.check()
        assert supervisor.workers[0].state is WorkerState.STALE
        ages["age"] = 6.0
        supervisor.check()
        assert not pid_alive(first_pid)
        ages["age"] = 0.0
        poll_until(supervisor, lambda: len(started) == 2, 10)
        assert supervisor.workers[0].restarts == 1
        assert "stuck: no heartbeat for 6 s" in " ".join(lines)
    finally:
        supervisor.stop_all(timeout=1)
    assert not any(pid_alive(pid) for pid in started)


def test_last_error_line_reads_the_exception_line(tmp_path: Path):
    log = tmp_path / "w.log"
    assert last_error_line(log) == ""
    log.write_text("started\nTraceback (most recent call last):\n  File \"a\", line 2, in f\n    boom()\n"
                   "ValueError: bad frame\n")
    assert last_error_line(log) == "ValueError: bad frame"
