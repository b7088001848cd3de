"""A worker: plays its own emulator, learns locally, sends gradients to the coordinator.

Loop: collect `collect_steps` steps with its own epsilon → store them in its n-step/PER buffer → compute
`accumulate_grads` batch gradients into one flat buffer → send it → update priorities → heartbeat + stats →
pick up newer weights (and the coordinator's target network when it changed). It talks to the coordinator only
through its `WorkerLink` (the backend's transport), obeys the run state (pause/stop) and exits when the
coordinator is gone. `worker_main` is the local backend's process entry point: it never prints over the UI
(stdout/stderr go to `logs/worker-<i>.log`).
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

from mario_tui.engine.collector import Collector, EpisodeResult
from mario_tui.engine.config import RunConfig
from mario_tui.engine.env import current_rgb_frame, make_env
from mario_tui.engine.flat import FlatParameters
from mario_tui.engine.optim import worker_final_epsilon
from mario_tui.engine.preview import world_model_mosaic
from mario_tui.engine.protocol import NO_VERSION, RunState, WorkerCommand, WorkerState
from mario_tui.engine.registry import build_model, make_buffer
from mario_tui.engine.runs import RunPaths
from mario_tui.engine.runtime.base import LinkSpec, WorkerLink

WEIGHTS_WAIT_S = 120.0
PREVIEW_PERIOD_S = 1 / 30  # the newest frame is published at most this often (the dashboard reads <= 30/s)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: it crosses the spawn/forkserver boundary)."""

    worker_id: int
    config: RunConfig
    link: LinkSpec | None
    """How to reach the coordinator (the backend's transport); None where the backend hands `WorkerLoop` its link."""
    run_root: str
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


def worker_log_line(worker_id: int, message: str) -> str:
    """A worker's line as training.log holds it."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S')} [w{worker_id}] {message}"


def run_log(spec: WorkerSpec, message: str) -> None:
    """One line in the run's training.log (O_APPEND: lines from several processes never interleave)."""
    append_run_log(spec.run_root, worker_log_line(spec.worker_id, message))


def append_run_log(run_root: str, line: str, echo: bool = True) -> None:
    """Append `line` to the run's training.log and (`echo`) this process's stdout: a worker's own log file."""
    line += "\n"
    with contextlib.suppress(OSError):
        fd = os.open(RunPaths(Path(run_root)).log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    if echo:
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


def learning_device(worker_device: str, device: str = "auto") -> torch.device:
    """Where a worker computes its gradients: `--worker-device`, which `auto` takes from `--device`; `auto` there
    means CUDA when this machine's torch sees a GPU."""
    name = device if worker_device == "auto" else worker_device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--worker-device cuda: torch sees no CUDA GPU on this worker's machine")
    return torch.device(name)


class WorkerLoop:
    def __init__(self, spec: WorkerSpec, link: WorkerLink | None = None) -> None:
        self.spec = spec
        self.id = i = spec.worker_id
        cfg = self.config = spec.config
        if link is None:
            assert spec.link is not None, "a WorkerSpec without a link needs the link passed in"
            link = spec.link.connect(i)
        self.link = link
        seed = cfg.seed + 10_007 * i + 101 * spec.incarnation
        torch.manual_seed(seed)
        factory = spec.env_factory
        self.env = factory(cfg, seed) if callable(factory) else make_env(cfg, seed=seed, render_rgb=True, training=True)
        actions = int(self.env.action_space.n)
        self.device = learning_device(cfg.worker_device, cfg.device)
        # The learner's copy of the model lives on the learning device; acting (batch 1) stays on the CPU, with
        # a second copy of the online weights when the learner's is on a GPU.
        self.model, self.learner = build_model(cfg.replace(seed=seed), actions)
        self.model.to(self.device)
        self.flat = FlatParameters(self.model.parameters())
        self.targets = FlatParameters(self.model.target_parameters(), grads=False)
        self.acting_model, self.acting_flat = self.model, self.flat
        if self.device.type != "cpu":
            self.acting_model, _ = build_model(cfg.replace(seed=seed), actions)
            self.acting_flat = FlatParameters(self.acting_model.parameters(), grads=False)
            self._targets_host = np.empty(self.targets.numel, dtype=np.float32)
        self.weights_version = self.targets_version = NO_VERSION
        self.buffer = make_buffer(cfg, seed)
        paths = RunPaths(Path(spec.run_root))
        if spec.restore_replay and paths.replay(i).exists():
            try:
                self.buffer = type(self.buffer).load(paths.replay(i))
                self.link.log(f"restored {len(self.buffer)} replay transitions")
            except (ValueError, OSError) as exc:
                self.link.log(f"could not restore replay buffer ({exc}); starting with an empty one")
        self.collector = Collector(self.env, self.buffer, self.acting_model, cfg.eps_start,
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
    def _check_coordinator(self) -> None:
        now = time.monotonic()
        if now - self._last_parent_check > 1.0:
            self._last_parent_check = now
            if not self.link.coordinator_alive():
                raise CoordinatorGone

    def _stopping(self) -> bool:
        return self.link.run_state() == RunState.STOPPING

    def _pull_weights(self) -> bool:
        """Newer weights, and the coordinator's target network when it changed (the coordinator alone decides
        when: this copies it)."""
        on_cpu = self.device.type == "cpu"
        targets_out = self.targets.weights_numpy() if on_cpu else self._targets_host
        targets = self.link.pull_targets(self.targets_version, targets_out)
        if targets is not None:
            self.targets_version = targets
            if not on_cpu:
                self.targets.load_weights(targets_out)
        version = self.link.pull_weights(self.weights_version, self.acting_flat.weights_numpy())
        if version is None:
            return False
        self.weights_version = version
        if not on_cpu:
            self.flat.load_weights(self.acting_flat.weights)
        return True

    def _wait_for_first_weights(self) -> None:
        deadline = time.monotonic() + WEIGHTS_WAIT_S
        while not self._pull_weights():
            self.link.beat()
            self._check_coordinator()
            if self._stopping():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("no weights from the coordinator")
            time.sleep(0.01)

    def _on_step(self) -> None:
        if not self.link.wants_preview():
            return
        now = time.monotonic()
        preview_frames = getattr(self.acting_model, "preview_frames", None)
        if preview_frames is None:
            # The dashboard shows at most 30 frames a second: copying every step's frame would waste worker time.
            if now - self._last_preview >= PREVIEW_PERIOD_S:
                self._last_preview = now
                self.link.publish_frame(current_rgb_frame(self.env))
            return
        if now - self._last_mosaic >= 0.25:  # decoding costs a few ms: refresh the mosaic ~4 times a second
            self._last_mosaic = now
            self.link.publish_frame(world_model_mosaic(current_rgb_frame(self.env), preview_frames()))

    def _handle_commands(self) -> None:
        for command in self.link.take_commands():
            if command == WorkerCommand.SAVE_REPLAY:
                self._save_replay()
            elif command == WorkerCommand.SYNC_WEIGHTS:
                self._pull_weights()

    def _save_replay(self) -> None:
        path = RunPaths(Path(self.spec.run_root)).replay(self.id)
        t0 = time.monotonic()
        try:
            self.buffer.save(path)
        except OSError as exc:  # disk full: the buffer lives on in memory, the previous file stays whole
            reason = exc.strerror or str(exc)
            self.link.log(f"could not save the replay buffer to {path.name}: {reason}; training goes on, "
                          "the next checkpoint tries again")
            return
        self.link.log(f"saved {len(self.buffer)} replay transitions to {path.name} in {time.monotonic() - t0:.1f} s")

    def _claim_slot(self) -> np.ndarray | None:
        """A free gradient slot's payload (waiting politely while the coordinator drains); None when stopping."""
        t0 = time.perf_counter()
        try:
            while (buffer := self.link.gradient_buffer()) is None:
                self.link.beat()
                self._check_coordinator()
                if self._stopping():
                    return None
                time.sleep(0.001)
            return buffer
        finally:
            self.wait_s += time.perf_counter() - t0

    def _compute_and_send(self) -> None:
        """On the CPU, backward writes straight into the transport's buffer (the `.grad` tensors are views of
        it), so handing a gradient over costs no copy on this side; on a GPU, one device-to-host copy into it."""
        cfg = self.config
        slot = self._claim_slot()
        if slot is None:
            return
        t0 = time.perf_counter()
        on_cpu = self.device.type == "cpu"
        if on_cpu:
            self.flat.bind_grads(torch.from_numpy(slot))
        else:
            self.flat.zero_grads()
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
        if not on_cpu:
            torch.from_numpy(slot).copy_(self.flat.grads)
        self.link.send_gradient(self.weights_version, metrics)
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
        self.link.report(
            state=WorkerState.RUNNING, episodes=st.episodes, steps=st.steps,
            last_reward=st.last_reward, best_reward=st.best_reward if st.episodes else 0.0,
            best_x_pos=st.best_x_pos, epsilon=self.collector.epsilon, grads_sent=self.grads_sent,
            steps_per_s=rate, world=st.world, stage=st.stage, x_pos=st.x_pos,
            env_time_frac=st.env_seconds / total, act_time_frac=st.act_seconds / total,
            learn_time_frac=self.learn_s / total, wait_time_frac=self.wait_s / total,
        )
        self.link.beat()

    def _report_episodes(self, finished: list[EpisodeResult]) -> None:
        for e in finished:
            self.link.report_episode(reward=e.reward, x_pos=e.x_pos, length=e.length, flag=e.flag, world=e.world,
                                     stage=e.stage)

    # --- main loop -----------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        where = "" if self.device.type == "cpu" else f", gradients on {self.device}"
        self.link.log(f"started (pid {os.getpid()}, epsilon → {self.collector.eps_end:.3f}{where})")
        try:
            self._wait_for_first_weights()
            self._t_loop = time.perf_counter()
            while not self._stopping():
                self._check_coordinator()
                self._handle_commands()
                if self.link.run_state() == RunState.PAUSED:
                    self.link.report(state=WorkerState.PAUSED, steps_per_s=0.0)
                    self.link.beat()
                    time.sleep(0.05)
                    continue
                self._report_episodes(self.collector.collect(cfg.collect_steps, self._on_step))
                if len(self.buffer) >= max(cfg.learning_starts, cfg.batch_size):
                    self._compute_and_send()
                self._pull_weights()
                self._publish_stats()
        except CoordinatorGone:
            self.link.log("coordinator is gone; exiting")
            return
        if cfg.save_replay:
            self._save_replay()
        self.link.report(state=WorkerState.STOPPED, steps_per_s=0.0)
        self.link.beat()
        self.link.log(f"stopped after {self.collector.stats.steps} steps")
        self.link.close()
        self.env.close()
