"""Faults a user can provoke — a full disk, a run folder that cannot be made, workers that all die — each end in a
clear line and lose nothing: real runs, real processes, real files (a real small filesystem where one can be made)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mario_tui.engine import session as session_module
from mario_tui.engine.checkpoint import load_checkpoint, load_weights
from mario_tui.engine.metrics import read_csv
from mario_tui.engine.protocol import WorkerState
from mario_tui.engine.session import Run
from tests.engine.test_runtime import ROOT, batch_cmd, start, tiny_config, wait_for

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


class Output:
    """A child's stdout and stderr, read as they come (a pipe that nobody reads would block the child)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.out, self.err = proc, [], []
        self._threads = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def text(self) -> str:
        return "".join(self.out)

    def finish(self, timeout: float = 60) -> tuple[str, str]:
        self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return "".join(self.out), "".join(self.err)


@contextlib.contextmanager
def small_filesystem(size: str = "16m") -> Iterator[Path]:
    """A real tmpfs of `size`: root only (CI here runs as root); elsewhere the test skips, saying why."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the injected-OSError tests cover the logic")
    folder = Path(tempfile.mkdtemp(prefix="mtui-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def fill(folder: Path) -> Path:
    """Take every free byte of the filesystem `folder` is on (ENOSPC from now on)."""
    filler = folder / "filler"
    with filler.open("ab") as handle:
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
                handle.flush()
        with contextlib.suppress(OSError):
            while True:  # the last partial megabyte, byte by small byte
                handle.write(b"\0" * 4096)
                handle.flush()
    return filler


def our_segments(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{pid}_")]


def test_disk_full_on_a_real_filesystem_keeps_training_and_ends_in_one_line(tmp_path):
    """`--batch` on a tmpfs that fills up: failed checkpoints are one line each and training goes on; space freed,
    checkpoints resume; full again at the stop: one line naming the intact checkpoint, exit 1, nothing left."""
    with small_filesystem() as disk:
        runs_dir = disk / "runs"
        cmd = batch_cmd(tmp_path, "--workers", "1", "--checkpoint-every", "10", "--csv-every", "5",
                        "--eval-every", "0", "--name", "full", "--steps", "0", "--save-replay")
        cmd[cmd.index("--run-dir") + 1] = str(runs_dir)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        output = Output(proc)
        folder = runs_dir / "full"
        try:
            wait_for(lambda: (folder / "checkpoint.pt").exists(), 120, "the first checkpoint", interval=0.2)
            filler = fill(disk)
            wait_for(lambda: "could not write checkpoint.pt: No space left on device" in output.text(), 60,
                     "a failed checkpoint reported", interval=0.2)
            filler.unlink()
            wait_for(lambda: "checkpoint.pt written again" in output.text(), 60, "checkpoints again", interval=0.2)
            assert proc.poll() is None, "training went on"
            filler = fill(disk)
            intact = load_checkpoint(folder / "checkpoint.pt")["counters"]["updates"]
            proc.send_signal(signal.SIGTERM)
            out, err = output.finish(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 1, err
        assert "Traceback" not in err + out and "Logging error" not in err, err
        final = [line for line in err.splitlines() if "final checkpoint" in line]
        assert len(final) == 1 and "No space left on device" in final[0], err
        assert "the previous checkpoint from update" in final[0]
        saved = load_checkpoint(folder / "checkpoint.pt")["counters"]["updates"]
        assert saved >= intact and f"update {saved:,} is intact" in final[0]  # the message names what is on disk
        load_weights(folder / "weights.pt")
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no half-written file left
        rows = read_csv(folder / "training.csv")
        assert rows and all(row["updates"] for row in rows)  # every row whole
        assert rows[-1]["restarts"] == "0"  # the worker's replay save failed too, and it went on (its buffer kept)
        assert not our_segments(proc.pid)


@pytest.fixture
def failing_writes(monkeypatch):
    """`save_checkpoint` as the run calls it fails with ENOSPC while `state["full"]` holds (an injected fault, for
    machines where the real-filesystem test skips)."""
    state = {"full": True, "attempts": 0}
    real = session_module.save_checkpoint

    def save(path, payload):
        state["attempts"] += 1
        if state["full"]:
            raise ENOSPC
        real(path, payload)

    monkeypatch.setattr(session_module, "save_checkpoint", save)
    return state


def test_injected_checkpoint_failure_is_a_notice_and_the_run_goes_on(tmp_path, runs, failing_writes):
    failing_writes["full"] = False
    run = start(runs, tiny_config(tmp_path, steps=0, workers=1, checkpoint_every=10, eval_every=0))
    wait_for(lambda: run.checkpoint_updates, 120, "the first checkpoint")
    first = run.checkpoint_updates
    failing_writes["full"] = True
    attempts = failing_writes["attempts"]
    wait_for(lambda: failing_writes["attempts"] >= attempts + 2, 60, "two failed checkpoints")
    texts = [n.text for n in run.notices.since(0)[0]]
    failed = [t for t in texts if t.startswith("could not write checkpoint.pt")]
    assert failed and "training goes on" in failed[0] and f"update {first:,} is intact" in failed[0]
    assert run.error is None and not run.done.is_set() and run.coordinator.counters.updates > first + 10
    assert not run.save_checkpoint(timeout=30)  # the `s` key: refused with the reason, nothing raised
    assert "No space left on device" in run.last_checkpoint_error
    failing_writes["full"] = False
    wait_for(lambda: any(n.text.startswith("checkpoint.pt written again") for n in run.notices.since(0)[0]), 60,
             "a checkpoint after the disk has room again")
    assert run.checkpoint_updates > first

    failing_writes["full"] = True
    run.stop()
    assert run.stopped.is_set() and run.stop_error is not None
    assert run.stop_error.startswith("could not write the final checkpoint")
    assert f"from update {run.checkpoint_updates:,} is intact" in run.stop_error
    assert run.runtime.segments.closed and run.runtime.supervisor.alive_count() == 0
    assert load_checkpoint(run.paths.checkpoint)["counters"]["updates"] == run.checkpoint_updates


def test_a_run_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for run_dir in (blocker / "runs", "/proc/mario-tui-nope"):
        cmd = batch_cmd(tmp_path, "--steps", "5")
        cmd[cmd.index("--run-dir") + 1] = str(run_dir)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mario-tui: error: cannot create the run folder"), lines


def test_when_every_worker_has_failed_the_run_ends_and_says_why(tmp_path, runs):
    from tests.engine.corridor import make_broken_env

    run = Run(tiny_config(tmp_path, steps=0, workers=2, eval_every=0), env_factory=make_broken_env)
    runs.append(run)
    run.start()
    run.runtime.supervisor.policy.base_delay = 0.05  # crash, restart, crash: the cap comes in a second or two
    wait_for(run.done.is_set, 120, "the run ending on its own")
    assert run.runtime.supervisor.all_failed() and run.workers_failed
    assert run.end_reason.startswith("every worker failed and none will be restarted")
    assert "RuntimeError: the emulator exploded" in run.end_reason
    assert any(n.text.startswith("run ended: every worker failed") for n in run.notices.since(0)[0])
    run.stop()
    assert "run ended: every worker failed" in run.paths.log.read_text()


def test_batch_exits_3_when_its_only_worker_keeps_being_killed(tmp_path):
    """The issue's recipe: SIGKILL the one worker again and again. The crash cap marks it failed, the run stops
    with the workers' last error (the signal, not the worker's last log line) and `--batch` exits 3."""
    proc = subprocess.Popen(batch_cmd(tmp_path, "--workers", "1", "--name", "k", "--eval-every", "0"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Output(proc)
    log = tmp_path / "checkpoints" / "k" / "logs" / "worker-0.log"
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            pids = {int(line.split("(pid ")[1].split(",")[0]) for line in
                    (log.read_text().splitlines() if log.exists() else []) if "started (pid " in line}
            for pid in pids - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.05)
        out, err = output.finish(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err + out
    assert "every worker failed" in err and "killed by signal 9 (SIGKILL)" in err, err
    assert "started (pid" not in err  # the worker's last log line is not its error
    assert "run ended: every worker failed" in out
    assert not our_segments(proc.pid)


def test_a_killed_workers_last_error_names_the_signal(tmp_path, runs):
    run = start(runs, tiny_config(tmp_path, steps=0, workers=1, eval_every=0))
    wait_for(lambda: run.worker_rows() and run.worker_rows()[0].state == WorkerState.RUNNING, 120, "a running worker")
    os.kill(run.runtime.supervisor.workers[0].pid, signal.SIGKILL)
    wait_for(lambda: run.runtime.supervisor.workers[0].restarts >= 1, 60, "the restart")
    assert run.runtime.supervisor.workers[0].last_error == "killed by signal 9 (SIGKILL)"


def test_training_csv_degrades_too(tmp_path, runs, monkeypatch):
    """training.csv failing (EIO here) is a notice; the run goes on and the rows wait for the disk to come back."""
    from mario_tui.engine import metrics

    real_open = os.open

    def failing_open(path, flags, *args):
        if str(path).endswith("training.csv"):
            raise OSError(errno.EIO, "Input/output error")
        return real_open(path, flags, *args)

    run = start(runs, tiny_config(tmp_path, steps=0, workers=1, eval_every=0, csv_every=5))
    monkeypatch.setattr(metrics.os, "open", failing_open)
    wait_for(lambda: run._metrics.csv.pending >= 2, 120, "rows waiting")
    assert any(n.text.startswith("could not write training.csv: Input/output error") for n in run.notices.since(0)[0])
    assert run.error is None and not run.done.is_set()
    monkeypatch.undo()
    wait_for(lambda: run._metrics.csv.pending == 0, 60, "the waiting rows written")
    updates = [int(r["updates"]) for r in read_csv(run.paths.csv)]
    assert updates == sorted(updates) and len(updates) >= 3
    assert all(b - a <= 6 for a, b in zip(updates, updates[1:], strict=False))  # no rows lost in the outage



def test_a_run_folder_deleted_during_the_run_is_made_again_and_resumable(tmp_path, runs):
    run = start(runs, tiny_config(tmp_path, steps=0, workers=1, eval_every=0, checkpoint_every=10))
    wait_for(lambda: run.checkpoint_updates, 120, "the first checkpoint")
    # Moved away, then deleted: `rm -rf` on a live folder can race with the run's own writes (ENOTEMPTY).
    run.paths.root.rename(tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    first = run.checkpoint_updates
    wait_for(lambda: run.checkpoint_updates > first and run.paths.config.exists(), 60, "a checkpoint after")
    assert any("lost its files during the run (config.json, training.log): wrote them again" in n.text
               for n in run.notices.since(0)[0])
    run.stop()
    assert run.stop_error is None and run.error is None
    assert "stopped; shared memory released" in run.paths.log.read_text()  # the log follows the new folder
    resumed = Run(run.config, resume_dir=run.paths.root)  # config.json and checkpoint.pt: resumable
    assert resumed.checkpoint_updates == load_checkpoint(run.paths.checkpoint)["counters"]["updates"]


def test_a_start_that_fails_half_way_leaves_nothing_running(tmp_path, monkeypatch):
    """/dev/shm full (injected at the segment creation): one StartError line, no process, no open log."""
    from mario_tui.engine import shm
    from mario_tui.engine.session import StartError

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/dev/shm/mtui_x")

    monkeypatch.setattr(shm.RuntimeSegments, "create", no_room)
    run = Run(tiny_config(tmp_path, workers=1))
    with pytest.raises(StartError, match="cannot start the run: No space left on device"):
        run.start()
    assert not run.log.handlers and run.runtime is None and not run.started.is_set()
