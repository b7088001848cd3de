"""Backend contract: the same test bodies against the local backend (processes + shared memory) and the Ray
backend (actors + object store), each with real workers and real emulators.

Ray starts once for the module (a local Ray instance: ~11 s on 2 cores); `RayRuntime` uses a Ray that is already
connected, so every Ray run of this module joins it, and the fixture shuts it down even when a test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from mario_tui.engine.checkpoint import load_checkpoint
from mario_tui.engine.metrics import read_csv
from mario_tui.engine.protocol import WorkerState
from mario_tui.engine.session import Run
from tests.engine.test_runtime import ROOT, batch_cmd, start, tiny_config, wait_for

RAY_MARKERS = ("ray::", "raylet", "gcs_server", "/ray/dashboard/", "/ray/_private/", "/ray/autoscaler/")


def ray_processes() -> set[int]:
    """Pids of Ray's own processes on this machine (its GCS, raylets and worker processes)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in RAY_MARKERS):
            found.add(int(entry))
    return found


def assert_ray_processes_end(before: set[int], timeout: float = 30.0) -> None:
    """Every Ray process started since `before` was taken has ended (the message lists those that did not)."""
    deadline = time.monotonic() + timeout
    while (left := ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "Ray processes left: " + "; ".join(_cmdline(p) for p in sorted(left))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return f"{pid}: " + handle.read().replace(b"\0", b" ").decode("utf-8", "replace")[:160]
    except OSError:
        return f"{pid}: gone"


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    before = ray_processes()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        assert_ray_processes_end(before)


@pytest.fixture(params=["local", "ray"])
def backend(request) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    return request.param


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ")[-1][0] != "Z"


def test_a_run_trains_checkpoints_resumes_counts_every_episode_and_leaves_no_process(tmp_path, runs, backend):
    # 60 updates collect ~560 agent steps; this config's first episodes end after 31..163 steps, so at least one
    # episode has finished when the budget is reached (20 updates were ~250 steps: sometimes none had)
    config = tiny_config(tmp_path, steps=60, checkpoint_every=30, backend=backend)
    run = start(runs, config)
    wait_for(run.done.is_set, 120, "first 60 updates")
    wait_for(lambda: all(r.pid for r in run.worker_rows()), 60, "both workers' pids")
    pids = [r.pid for r in run.worker_rows()]
    run.stop()
    assert run.error is None
    wait_for(lambda: not any(alive(p) for p in pids), 20, "the workers' processes to end")
    rows = run.worker_rows()
    assert [r.state for r in rows] == [WorkerState.STOPPED] * 2
    # every episode a worker finished is counted once (the episode stream), none lost between two polls
    assert run.coordinator.counters.episodes == sum(r.episodes for r in rows) > 0
    assert len(run.episodes) == run.coordinator.counters.episodes
    # no gradient is applied twice: every one the coordinator took (applied or dropped) a worker sent once; those
    # still in flight when the coordinator stopped first are never taken
    counters = run.coordinator.counters
    taken = counters.grads_applied + counters.dropped_stale + counters.dropped_nonfinite
    assert 0 < taken <= sum(r.grads_sent for r in rows), (counters, [r.grads_sent for r in rows])
    first = load_checkpoint(run.paths.checkpoint)
    assert first["counters"]["updates"] >= 60
    csv_rows = len(read_csv(run.paths.csv))
    assert "[w0] started" in run.paths.log.read_text()

    resumed = start(runs, config.replace(steps=80), resume_dir=run.paths.root)
    assert resumed.coordinator.counters.updates == first["counters"]["updates"]
    wait_for(resumed.done.is_set, 120, "80 updates in total")
    resumed.stop()
    second = load_checkpoint(run.paths.checkpoint)
    assert second["counters"]["updates"] >= 80
    assert second["counters"]["env_steps"] > first["counters"]["env_steps"]
    assert second["counters"]["episodes"] == first["counters"]["episodes"] + sum(
        r.episodes for r in resumed.worker_rows())
    rows = read_csv(run.paths.csv)
    assert len(rows) > csv_rows
    updates = [int(r["updates"]) for r in rows]
    assert updates == sorted(set(updates)), updates


def test_killed_worker_process_is_restarted_and_counted(tmp_path, runs, backend):
    run = start(runs, tiny_config(tmp_path, steps=0, backend=backend))
    wait_for(lambda: run.coordinator.counters.updates >= 5, 120, "first updates")
    # under Ray a worker's pid arrives with its start reply, which may come after the other worker's first updates
    wait_for(lambda: run.worker_rows()[0].pid is not None, 60, "worker 0's pid")
    victim = run.worker_rows()[0].pid
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: run.worker_rows()[0].restarts >= 1, 60, "restart after SIGKILL")
    wait_for(lambda: run.worker_rows()[0].pid not in (None, victim), 60, "the replacement's pid")
    before = run.coordinator.counters.updates
    wait_for(lambda: run.worker_rows()[0].grads_sent > 0 and run.worker_rows()[0].state == WorkerState.RUNNING, 120,
             "restarted worker sending gradients")
    wait_for(lambda: run.coordinator.counters.updates > before + 3, 60, "updates after the restart")
    assert run.worker_rows()[0].last_error and run.worker_rows()[1].restarts == 0
    assert run.error is None


def test_stopped_worker_is_detected_by_its_heartbeat(tmp_path, runs, backend):
    run = start(runs, tiny_config(tmp_path, steps=0, heartbeat_timeout=4.0, backend=backend))
    wait_for(lambda: all(r.steps > 0 for r in run.worker_rows()), 120, "both workers stepping")
    victim = run.worker_rows()[1].pid
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_for(lambda: run.worker_rows()[1].restarts >= 1, 60, "restart of the stuck worker")
    finally:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert "stuck: no heartbeat" in run.paths.log.read_text()
    wait_for(lambda: run.worker_rows()[1].steps > 0 and run.worker_rows()[1].state == "running", 90,
             "replacement worker running")


def test_pause_stops_updates_and_resume_restarts_them(tmp_path, runs, backend):
    run = start(runs, tiny_config(tmp_path, steps=0, backend=backend))
    wait_for(lambda: run.coordinator.counters.updates >= 3, 120, "first updates")
    run.pause()
    wait_for(lambda: all(r.state == "paused" for r in run.worker_rows()), 10, "workers paused")
    frozen = run.coordinator.counters.updates
    steps = sum(r.steps for r in run.worker_rows())
    time.sleep(0.5)  # a pause must hold: nothing may move during it
    assert run.coordinator.counters.updates == frozen
    assert sum(r.steps for r in run.worker_rows()) == steps
    run.resume()
    wait_for(lambda: run.coordinator.counters.updates > frozen, 60, "updates after resume")
    assert run.save_checkpoint(timeout=30)
    assert run.paths.checkpoint.exists()


def test_the_ray_backend_without_ray_installed_is_one_line(tmp_path, monkeypatch):
    """A missing optional install: one ConfigError line with the install hint, before anything starts."""
    import importlib.util

    from mario_tui.engine.config import ConfigError

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "ray" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"^--backend: needs the optional ray package: uv sync --extra ray"):
        Run(tiny_config(tmp_path, backend="ray"))


def test_batch_on_a_ray_instance_of_its_own_stops_cleanly_with_its_final_checkpoint(tmp_path):
    """The user's path: `--batch --backend ray` with no cluster starts its own Ray instance, and its end (the
    threads that started Ray returning) must not take Ray, and with it this process, down before the final
    checkpoint: exit 0, the checkpoint of the last update, no Ray process left."""
    pytest.importorskip("ray")
    before = ray_processes()
    proc = subprocess.run(batch_cmd(tmp_path, "--backend", "ray", "--steps", "20", "--name", "r"), cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "done:" in proc.stdout
    root = tmp_path / "checkpoints" / "r"
    assert load_checkpoint(root / "checkpoint.pt")["counters"]["updates"] >= 20
    assert "Ray backend: a Ray instance on this machine" in (root / "training.log").read_text()
    assert_ray_processes_end(before)


def test_worker_device_cuda_without_a_gpu_is_one_line(tmp_path):
    """On the local backend the workers share this machine, so a missing GPU is known before anything starts (on
    Ray the workers' machines may have one: each worker says so itself)."""
    import torch

    from mario_tui.engine.config import ConfigError
    from mario_tui.engine.worker import learning_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"^--worker-device: cuda was asked for but torch sees no CUDA GPU"):
        Run(tiny_config(tmp_path, worker_device="cuda"))
    assert learning_device("auto", "auto") == torch.device("cpu")
    assert learning_device("auto", "cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="torch sees no CUDA GPU on this worker's machine"):
        learning_device("auto", "cuda")
