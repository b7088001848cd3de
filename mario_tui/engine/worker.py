"""A worker process: plays its own emulator, learns locally, sends gradients to the coordinator.

Loop: collect `collect_steps` steps with its own epsilon → store them in its n-step/PER buffer → compute
`accumulate_grads` batch gradients into one flat buffer → publish it to its shared-memory slot → update
priorities → heartbeat + stats → pick up newer weights. The worker obeys the control block (pause/stop),
never prints over the UI (stdout/stderr go to `logs/worker-<i>.log`) and exits when the coordinator is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mario_tui.engine import shm
from mario_tui.engine.collector import Collector
from mario_tui.engine.config import RunConfig
from mario_tui.engine.env import current_rgb_frame, make_env
from mario_tui.engine.flat import FlatParameters
from mario_tui.engine.optim import worker_final_epsilon
from mario_tui.engine.preview import world_model_mosaic
from mario_tui.engine.registry import build_model
from mario_tui.engine.runs import RunPaths
from mario_tui.engine.trainer import make_buffer

SAVE_REPLAY_COMMAND = 4  # runtime-defined control command: write the replay buffer beside the checkpoint
WEIGHTS_WAIT_S = 120.0
PREVIEW_PERIOD_S = 1 / 30  # the newest frame is published at most this often (the dashboard reads <= 30/s)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: it crosses the spawn/forkserver boundary)."""

    worker_id: int
    config: RunConfig
    runtime: object  # shm.RuntimeSpec
    run_root: str
    coordinator_pid: int
    start_steps: int = 0
    restore_replay: bool = False
    incarnation: int = 0
    env_factory: object = None
    """`factory(config, seed) -> env` instead of `make_env` (tests); None: the real game."""


def worker_log_path(run_root: str | Path, worker_id: int) -> Path:
    return Path(run_root) / "logs" / f"worker-{worker_id}.log"


def _setup_process(spec: WorkerSpec) -> None:
    """Ignore Ctrl+C (the front end stops us through the control block), route output to our log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.setsid()  # leave the terminal's process group: Ctrl+C or a closed terminal must reach only the front end
    except OSError:
        pass
    log = worker_log_path(spec.run_root, spec.worker_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    torch.set_num_threads(1)


def run_log(spec: WorkerSpec, message: str) -> None:
    """One line in the run's training.log (O_APPEND: lines from several processes never interleave)."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [w{spec.worker_id}] {message}\n"
    with contextlib.suppress(OSError):
        fd = os.open(RunPaths(Path(spec.run_root)).log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    print(line, end="", flush=True)


def worker_main(spec: WorkerSpec) -> None:
    """Process entry point."""
    _setup_process(spec)
    try:
        WorkerLoop(spec).run()
    except Exception as exc:  # noqa: BLE001 - report any crash, then exit non-zero for the supervisor
        traceback.print_exc()
        run_log(spec, f"crashed: {type(exc).__name__}: {exc}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


class CoordinatorGone(Exception):
    pass


class WorkerLoop:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.id = i = spec.worker_id
        cfg = self.config = spec.config
        self.seg = shm.attach(spec.runtime, i)
        self.shm = shm
        self.seg.stats.update(i, pid=os.getpid(), state=shm.WorkerState.STARTING)
        self.seg.beat()
        seed = cfg.seed + 10_007 * i + 101 * spec.incarnation
        torch.manual_seed(seed)
        factory = spec.env_factory
        self.env = factory(cfg, seed) if callable(factory) else make_env(cfg, seed=seed, render_rgb=True)
        self.model, self.learner = build_model(cfg.replace(seed=seed), int(self.env.action_space.n))
        self.flat = FlatParameters(self.model.parameters())
        self.weights_version = 0
        self.buffer = make_buffer(cfg, seed)
        paths = RunPaths(Path(spec.run_root))
        if spec.restore_replay and paths.replay(i).exists():
            try:
                self.buffer = type(self.buffer).load(paths.replay(i))
                run_log(spec, f"restored {len(self.buffer)} replay transitions")
            except (ValueError, OSError) as exc:
                run_log(spec, f"could not restore replay buffer ({exc}); starting with an empty one")
        self.collector = Collector(self.env, self.buffer, self.model, cfg.eps_start,
                                   worker_final_epsilon(i, cfg.workers, cfg.eps_end), cfg.eps_decay_steps, seed=seed)
        self.collector.stats.steps = spec.start_steps
        self.grads_sent = 0
        self.learn_s = self.wait_s = 0.0
        self._t_loop = time.perf_counter()
        self._last_parent_check = 0.0
        self._last_mosaic = 0.0
        self._last_preview = 0.0
        self._steps_window: list[tuple[float, int]] = []

    # --- helpers -----------------------------------------------------------------------------------
    def _parent_alive(self) -> bool:
        try:
            os.kill(self.spec.coordinator_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _check_coordinator(self) -> None:
        now = time.monotonic()
        if now - self._last_parent_check > 1.0:
            self._last_parent_check = now
            if not self._parent_alive():
                raise CoordinatorGone

    def _stopping(self) -> bool:
        return self.seg.control.run_state == self.shm.RunState.STOPPING

    def _pull_weights(self) -> bool:
        version = self.seg.weights.read_if_newer(self.weights_version, self.flat.weights_numpy())
        if version is None:
            return False
        previous, self.weights_version = self.weights_version, version
        cfg = self.config
        if previous == 0:
            self.learner.update_targets(None)
        elif cfg.tau > 0:
            self.learner.update_targets(1 - (1 - cfg.tau) ** (version - previous))
        elif (version - 1) // cfg.target_update > (previous - 1) // cfg.target_update:
            self.learner.update_targets(None)  # the coordinator synced its target in between
        return True

    def _wait_for_first_weights(self) -> None:
        deadline = time.monotonic() + WEIGHTS_WAIT_S
        while not self._pull_weights():
            self.seg.beat()
            self._check_coordinator()
            if self._stopping():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("no weights from the coordinator")
            time.sleep(0.01)

    def _on_step(self) -> None:
        if not self.seg.wants_preview():
            return
        now = time.monotonic()
        preview_frames = getattr(self.model, "preview_frames", None)
        if preview_frames is None:
            # The dashboard shows at most 30 frames a second: copying every step's frame would waste worker time.
            if now - self._last_preview >= PREVIEW_PERIOD_S:
                self._last_preview = now
                self.seg.publish_frame(current_rgb_frame(self.env))
            return
        if now - self._last_mosaic >= 0.25:  # decoding costs a few ms: refresh the mosaic ~4 times a second
            self._last_mosaic = now
            self.seg.publish_frame(world_model_mosaic(current_rgb_frame(self.env), preview_frames()))

    def _handle_commands(self) -> None:
        for command in self.seg.control.take(self.id):
            if command == SAVE_REPLAY_COMMAND:
                self._save_replay()
            elif command == self.shm.WorkerCommand.SYNC_WEIGHTS:
                self._pull_weights()

    def _save_replay(self) -> None:
        path = RunPaths(Path(self.spec.run_root)).replay(self.id)
        t0 = time.monotonic()
        try:
            self.buffer.save(path)
        except OSError as exc:  # disk full: the buffer lives on in memory, the previous file stays whole
            reason = exc.strerror or str(exc)
            run_log(self.spec, f"could not save the replay buffer to {path.name}: {reason}; training goes on, "
                               "the next checkpoint tries again")
            return
        run_log(self.spec, f"saved {len(self.buffer)} replay transitions to {path.name} "
                           f"in {time.monotonic() - t0:.1f} s")

    def _claim_slot(self) -> np.ndarray | None:
        """A free gradient slot's payload (waiting politely while the coordinator drains); None when stopping."""
        t0 = time.perf_counter()
        try:
            while (buffer := self.seg.gradients.try_grad_buffer()) is None:
                self.seg.beat()
                self._check_coordinator()
                if self._stopping():
                    return None
                time.sleep(0.001)
            return buffer
        finally:
            self.wait_s += time.perf_counter() - t0

    def _compute_and_send(self) -> None:
        """Backward writes straight into the shared-memory slot (the `.grad` tensors are views of it), so
        handing a gradient to the coordinator costs no copy on this side."""
        cfg = self.config
        slot = self._claim_slot()
        if slot is None:
            return
        t0 = time.perf_counter()
        self.flat.bind_grads(torch.from_numpy(slot))
        metrics: dict[str, float] = {}
        for _ in range(cfg.accumulate_grads):
            batch = self.learner.sample_batch(self.buffer, cfg.batch_size)
            loss, info = self.learner.compute_loss(batch)
            (loss / cfg.accumulate_grads).backward()
            if cfg.per and info.priorities is not None:
                self.buffer.update_priorities(batch.indices, info.priorities)
            for name, value in info.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value / cfg.accumulate_grads
        metrics["batch_size"] = float(cfg.batch_size * cfg.accumulate_grads)
        names = set(self.seg.spec.metric_names)
        self.seg.gradients.try_publish(self.weights_version, {k: v for k, v in metrics.items() if k in names})
        self.grads_sent += 1
        self.learn_s += time.perf_counter() - t0

    def _publish_stats(self) -> None:
        st = self.collector.stats
        now = time.monotonic()
        self._steps_window.append((now, st.steps))
        while len(self._steps_window) > 2 and now - self._steps_window[0][0] > 10.0:
            self._steps_window.pop(0)
        (t_first, s_first) = self._steps_window[0]
        rate = (st.steps - s_first) / (now - t_first) if now > t_first else 0.0
        total = max(time.perf_counter() - self._t_loop, 1e-9)
        last = st.finished[-1] if st.finished else None
        self.seg.stats.update(
            self.id, state=self.shm.WorkerState.RUNNING, episodes=st.episodes, steps=st.steps,
            last_reward=st.last_reward, best_reward=st.best_reward if st.episodes else 0.0,
            best_x_pos=st.best_x_pos, epsilon=self.collector.epsilon, grads_sent=self.grads_sent,
            steps_per_s=rate, world=st.world, stage=st.stage, x_pos=st.x_pos,
            env_time_frac=st.env_seconds / total, act_time_frac=st.act_seconds / total,
            learn_time_frac=self.learn_s / total, wait_time_frac=self.wait_s / total,
            last_x_pos=last.x_pos if last else 0, last_length=last.length if last else 0,
            last_flag=int(last.flag) if last else 0,
        )
        self.seg.beat()

    # --- main loop -----------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        run_log(self.spec, f"started (pid {os.getpid()}, epsilon → {self.collector.eps_end:.3f})")
        try:
            self._wait_for_first_weights()
            self._t_loop = time.perf_counter()
            while not self._stopping():
                self._check_coordinator()
                self._handle_commands()
                if self.seg.control.run_state == self.shm.RunState.PAUSED:
                    self.seg.stats.update(self.id, state=self.shm.WorkerState.PAUSED, steps_per_s=0.0)
                    self.seg.beat()
                    time.sleep(0.05)
                    continue
                self.collector.collect(cfg.collect_steps, self._on_step)
                if len(self.buffer) >= max(cfg.learning_starts, cfg.batch_size):
                    self._compute_and_send()
                self._pull_weights()
                self._publish_stats()
        except CoordinatorGone:
            run_log(self.spec, "coordinator is gone; exiting")
            return
        if cfg.save_replay:
            self._save_replay()
        self.seg.stats.update(self.id, state=self.shm.WorkerState.STOPPED, steps_per_s=0.0)
        self.seg.beat()
        run_log(self.spec, f"stopped after {self.collector.stats.steps} steps")
        self.seg.close()
        self.env.close()
