"""The distributed runtime end to end: real worker processes, real emulators, real shared memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mario_tui.engine import shm
from mario_tui.engine.checkpoint import load_checkpoint, load_weights
from mario_tui.engine.config import RunConfig
from mario_tui.engine.coordinator import Coordinator
from mario_tui.engine.metrics import read_csv
from mario_tui.engine.registry import REGISTRY, build_model
from mario_tui.engine.session import Run

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(tmp_path: Path, **changes) -> RunConfig:
    base = dict(workers=2, frame_size=36, conv_width=4, hidden_size=16, batch_size=8, buffer_size=600,
                learning_starts=40, collect_steps=8, csv_every=5, checkpoint_every=20, steps=30,
                run_dir=str(tmp_path / "checkpoints"), name="t", heartbeat_timeout=30.0, actions="right_only",
                eps_decay_steps=500, seed=1)
    base.update(changes)
    return RunConfig(**base)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start(runs: list[Run], config: RunConfig, resume_dir=None) -> Run:
    run = Run(config, resume_dir)
    runs.append(run)
    run.start()
    return run


def test_short_run_writes_every_run_file_and_cleans_up(tmp_path, runs):
    run = start(runs, tiny_config(tmp_path, reset_every=25))  # one shrink-and-perturb reset, logged
    names = set(run.runtime.segments.segment_names)
    assert all(os.path.exists(f"/dev/shm/{n}") for n in names)
    wait_for(run.done.is_set, 120, "30 updates")
    rows = run.worker_rows()
    assert len(rows) == 2 and all(r.steps > 0 and r.grads_sent > 0 for r in rows)
    run.stop()
    assert run.error is None
    assert not any(os.path.exists(f"/dev/shm/{n}") for n in names)
    folder = run.paths.root
    for name in ("weights.pt", "checkpoint.pt", "training.csv", "training.log", "config.json", "status.json"):
        assert (folder / name).exists(), name
    data = load_checkpoint(folder / "checkpoint.pt")
    assert data["counters"]["updates"] >= 30
    assert data["counters"]["grads_applied"] >= 30
    assert {"optimizer", "scheduler", "rng", "config"} <= set(data)
    assert load_weights(folder / "weights.pt")["config"]["model"] == "ddqn"
    rows = read_csv(folder / "training.csv")
    assert len(rows) >= 2 and int(rows[-1]["updates"]) >= 30
    assert all(c in rows[0] for c in ("q_loss", "q_mean", "lr", "policy_lag_mean", "frames_per_s"))
    log = (folder / "training.log").read_text()
    assert "[w0] started" in log and "[w1] started" in log and "checkpoint at update" in log
    assert "shrink-and-perturb at update 25: kept 0.8 of the weights" in log


def test_coordinator_drops_stale_and_nonfinite_gradients(tmp_path):
    config = tiny_config(tmp_path, max_staleness=2)
    _, learner = build_model(config, 5)
    coordinator = Coordinator(config, learner, torch.device("cpu"))
    names = REGISTRY["ddqn"].metrics
    with shm.GradientPool.create(1, coordinator.numel, names) as pool:
        writer = shm.GradientPool.attach(pool.spec, 0)
        try:
            grad = np.full(coordinator.numel, 1e-3, np.float32)
            writer.write(grad, coordinator.published_version, {"q_loss": 1.0})
            report = coordinator.apply(pool.poll())
            assert report.packets == 1 and coordinator.counters.updates == 1
            bad = grad.copy()
            bad[3] = np.nan
            writer.write(bad, coordinator.published_version)
            before = coordinator.flat.weights.clone()
            report = coordinator.apply(pool.poll())
            assert report.packets == 0 and report.dropped_nonfinite == 1
            assert torch.equal(before, coordinator.flat.weights)  # nothing applied
            for _ in range(3):
                coordinator.step(grad)
            writer.write(grad, coordinator.published_version - 3)  # computed 3 versions ago > max 2
            report = coordinator.apply(pool.poll())
            assert report.dropped_stale == 1 and coordinator.counters.dropped_stale == 1
            writer.write(grad, coordinator.published_version - 2)
            report = coordinator.apply(pool.poll())
            assert report.packets == 1 and report.lags == [2]
            assert coordinator.policy_lag() == (1.0, 2)
        finally:
            writer.close()


def test_the_coordinator_alone_decides_when_the_target_network_changes(tmp_path):
    """Workers copy the coordinator's target network (`changed_targets`): it is published at the start, then only
    after a hard update (every `target_update` updates), and is exactly the coordinator's own target."""
    config = tiny_config(tmp_path, target_update=3)
    model, learner = build_model(config, 5)
    coordinator = Coordinator(config, learner, torch.device("cpu"))
    first = coordinator.changed_targets()
    target = torch.cat([p.detach().reshape(-1) for p in model.target_parameters()]).numpy()
    assert first is not None and np.array_equal(first, target)
    assert coordinator.changed_targets() is None
    grad = np.full(coordinator.numel, 1e-2, np.float32)
    published = []
    for _ in range(7):
        coordinator.step(grad)
        targets = coordinator.changed_targets()
        published.append(targets is not None)
        if targets is not None:  # a hard update: the target is the online network of this very update
            assert np.array_equal(targets, coordinator.flat.weights.numpy())
    assert published == [False, False, True, False, False, True, False]
    soft = Coordinator(config.replace(tau=0.1), build_model(config, 5)[1], torch.device("cpu"))
    soft.changed_targets()
    soft.step(grad)
    assert soft.changed_targets() is not None  # soft updates change the target every update


def test_shrink_and_perturb_moves_the_weights_part_way_to_a_fresh_initialisation(tmp_path):
    """Every `reset_every` updates w <- shrink * w + (1 - shrink) * w_fresh: w_fresh is a fresh initialisation (the
    same for a given seed and update whatever the shrink, not the run's start, at the scale of one), and a target
    copy due at the same update takes the trained weights, not the shrunk ones."""
    after: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
    for shrink in (0.0, 0.5):
        config = tiny_config(tmp_path, reset_every=2, reset_shrink=shrink, target_update=2)
        model, learner = build_model(config, 5)
        coordinator = Coordinator(config, learner, torch.device("cpu"))
        zero_gradient = np.zeros(coordinator.numel, np.float32)  # Adam moves nothing: only the reset does
        start = coordinator.flat.weights.clone()
        assert coordinator.step(zero_gradient) is False
        assert torch.equal(coordinator.flat.weights, start)
        assert coordinator.step(zero_gradient) is True
        target = torch.cat([p.detach().reshape(-1) for p in model.target_parameters()])
        assert torch.equal(target, start)
        assert coordinator.step(zero_gradient) is False
        after[shrink] = (start, coordinator.flat.weights.clone())
    start, fresh = after[0.0]
    half_start, half = after[0.5]
    assert torch.allclose(half, 0.5 * half_start + 0.5 * fresh, atol=1e-6)
    offset = 0
    for p in coordinator.flat.params:
        n = p.numel()
        if n >= 256:  # a layer's fresh weights: new values at the scale its initialisation gives
            new, old = fresh[offset:offset + n], start[offset:offset + n]
            assert not torch.allclose(new, old)
            assert 0.8 < float(new.std() / old.std()) < 1.25
        offset += n
    with pytest.raises(ValueError, match="--reset-shrink"):
        tiny_config(tmp_path, reset_shrink=1.0).validate()


def test_evaluation_plays_a_moving_average_of_the_weights_that_survives_a_resume(tmp_path):
    """With `eval_ema` the coordinator keeps ema ← ema + rate · (weights − ema) after every update; the
    evaluation state dict carries it in place of the online parameters (the target network as it is), the
    checkpoint state carries it across a resume, and a checkpoint without one starts it from the weights."""
    config = tiny_config(tmp_path, eval_ema=0.5, target_update=1000)
    model, learner = build_model(config, 5)
    coordinator = Coordinator(config, learner, torch.device("cpu"))
    expected = coordinator.flat.weights.clone()
    rng = np.random.default_rng(0)
    for _ in range(3):
        coordinator.step(rng.normal(0, 1e-2, coordinator.numel).astype(np.float32))
        expected += 0.5 * (coordinator.flat.weights - expected)
    assert torch.allclose(coordinator.ema_weights, expected, atol=1e-7)
    assert not torch.equal(coordinator.ema_weights, coordinator.flat.weights)

    played = coordinator.evaluation_state()
    online = model.state_dict()
    assert played.keys() == online.keys()
    names = {id(p): name for name, p in model.named_parameters()}
    flat_names = [names[id(p)] for p in coordinator.flat.params]
    assert torch.equal(torch.cat([played[n].reshape(-1) for n in flat_names]), coordinator.ema_weights)
    for key in online.keys() - set(flat_names):  # the target network (and any buffer): as the model has it
        assert torch.equal(played[key], online[key])
    fresh = build_model(config, 5)[0]
    fresh.load_state_dict(played)  # what --eval and the viewer load: a plain state dict of this model

    saved = coordinator.state()
    resumed = Coordinator(config, build_model(config, 5)[1], torch.device("cpu"))
    resumed.load_state(saved)
    assert torch.equal(resumed.ema_weights, coordinator.ema_weights)
    saved.pop("ema_weights")  # a checkpoint of a run without the average
    restarted = Coordinator(config, build_model(config, 5)[1], torch.device("cpu"))
    restarted.load_state(saved)
    assert torch.equal(restarted.ema_weights, coordinator.flat.weights)

    plain = Coordinator(tiny_config(tmp_path), build_model(config, 5)[1], torch.device("cpu"))
    assert plain.ema_weights is None and "ema_weights" not in plain.state()
    assert all(torch.equal(v, plain.model.state_dict()[k]) for k, v in plain.evaluation_state().items())


def batch_cmd(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mario_tui.cli", "--batch", "--workers", "2", "--frame-size", "36",
            "--conv-width", "4", "--hidden-size", "16", "--batch-size", "8", "--buffer-size", "600",
            "--learning-starts", "40", "--collect-steps", "8", "--actions", "right_only",
            "--run-dir", str(tmp_path / "checkpoints"), *args]


def test_batch_cli_rejects_bad_values_with_one_line(tmp_path):
    for args, words in ((["--lr", "-1"], "--lr"), (["--level", "9-9"], "unknown level"),
                        (["--workers", "x"], "--workers"), (["--resume", "nope"], "--resume")):
        proc = subprocess.run(batch_cmd(tmp_path, *args), capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr
        assert "Traceback" not in proc.stderr


def test_batch_sigterm_writes_final_checkpoint_and_exits_zero(tmp_path):
    proc = subprocess.Popen(batch_cmd(tmp_path, "--name", "sig", "--csv-every", "5"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "checkpoints" / "sig"
    try:
        wait_for(lambda: (folder / "training.csv").exists(), 120, "first CSV rows", interval=0.2)
        segments = [n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{proc.pid}_")]
        assert segments
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert load_checkpoint(folder / "checkpoint.pt")["counters"]["updates"] >= 5
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{proc.pid}_")]
    assert "done:" in out


def test_save_replay_restores_each_workers_buffer_on_resume(tmp_path, runs):
    config = tiny_config(tmp_path, steps=10, save_replay=True)
    run = start(runs, config)
    wait_for(run.done.is_set, 120, "10 updates")
    run.stop()
    for i in range(2):
        assert run.paths.replay(i).exists()
    resumed = start(runs, config.replace(steps=12), resume_dir=run.paths.root)
    wait_for(lambda: run.paths.log.read_text().count("restored") >= 2, 60, "both buffers restored")
    log = run.paths.log.read_text()
    assert "[w0] restored" in log and "[w1] restored" in log
    wait_for(resumed.done.is_set, 120, "updates after resume")


def test_workers_exit_when_the_coordinator_dies_and_its_segments_are_reclaimed(tmp_path):
    proc = subprocess.Popen(batch_cmd(tmp_path, "--name", "orphan"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = tmp_path / "checkpoints" / "orphan" / "training.log"
    try:
        text = wait_for(lambda: log.exists() and log.read_text().count("started (pid") >= 2 and log.read_text(),
                        120, "both workers started", interval=0.2)
    finally:
        proc.kill()
        proc.wait(30)
    import re

    pids = [int(p) for p in re.findall(r"started \(pid (\d+)", text)]

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    wait_for(lambda: not any(alive(p) for p in pids), 30, "orphaned workers to exit")
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{proc.pid}_")]
    assert left, "a SIGKILLed coordinator cannot clean up: its segments stay until the next start"
    removed = shm.cleanup_stale_segments()
    assert set(left) <= set(removed)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{proc.pid}_")]


def test_dreamer_trains_through_the_same_runtime_and_resumes(tmp_path, runs):
    config = tiny_config(tmp_path, model="dreamer", name="dream", steps=8, checkpoint_every=4, batch_size=4,
                         learning_starts=60, seq_len=8, imag_horizon=4, imag_starts=8, deter_size=16, stoch_size=4,
                         stoch_classes=4, eps_start=0.0, eps_end=0.0)
    run = start(runs, config)
    wait_for(run.done.is_set, 180, "8 dreamer updates")
    run.stop()
    assert run.error is None
    rows = read_csv(run.paths.csv)
    assert rows and all(c in rows[0] for c in ("wm_recon_mse", "wm_ssim", "wm_kl", "imag_return", "critic_loss"))
    assert np.isfinite(float(rows[-1]["wm_recon_mse"]))
    norms = [float(rows[-1][f"grad_norm_{part}"]) for part in ("world_model", "actor", "critic")]
    assert all(n > 0 for n in norms)  # each part's own norm, before its own clipping
    assert float(rows[-1]["grad_norm"]) == pytest.approx(float(np.linalg.norm(norms)), rel=1e-3)
    first = load_checkpoint(run.paths.checkpoint)
    assert any(k.startswith("slow_critic.") for k in first["model"])
    resumed = start(runs, config.replace(steps=12), resume_dir=run.paths.root)
    assert resumed.coordinator.counters.updates == first["counters"]["updates"]
    wait_for(resumed.done.is_set, 180, "dreamer updates after resume")
    resumed.stop()
    assert load_checkpoint(run.paths.checkpoint)["counters"]["updates"] >= 12



def read_until_closed(runtime, started, errors: list[BaseException]) -> None:
    """What the dashboard does each refresh, over and over, until the runtime is closed."""
    try:
        while True:
            started.set()
            runtime.set_preview_worker(1)
            frame = runtime.read_preview(1, 0)
            assert frame is None or int(frame[1][0, 0, 0]) == 3
            assert int(runtime.stats()["steps"][1]) == 7
            assert runtime.heartbeat_ages().shape == (2,)
            if runtime.closed:
                return
    except BaseException as error:  # noqa: BLE001 - handed to the test's thread
        errors.append(error)


def test_the_apps_reads_race_the_runs_close_without_an_error(tmp_path):
    """The dashboard reads the preview and the figures on its own thread while the run's thread closes the
    segments (found in CI: an IndexError from a preview read half-way through a close)."""
    import multiprocessing
    import threading

    from mario_tui.engine.runtime.local import LocalRuntime

    for _ in range(20):
        runtime = LocalRuntime(2, 64, ["loss"], target_numel=0, ctx=multiprocessing.get_context("spawn"),
                               target=lambda spec: None, worker_spec=lambda i, n, link: None,
                               heartbeat_timeout=10.0, log=lambda line: None, run_root=str(tmp_path))
        runtime.segments.stats.update(1, steps=7)
        runtime.segments.previews.write(1, np.full(shm.FRAME_SHAPE, 3, np.uint8))
        errors: list[BaseException] = []
        started = threading.Event()
        reader = threading.Thread(target=read_until_closed, args=(runtime, started, errors))
        reader.start()
        started.wait(5)
        runtime.close()
        reader.join(5)
        assert not errors, errors
        assert runtime.read_preview(1, 0) is None
        assert int(runtime.stats()["steps"][1]) == 7  # the last figures stay readable
