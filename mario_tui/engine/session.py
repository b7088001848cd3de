"""`Run`: the engine API every front end drives (the Textual app and `--batch` alike).

    run = Run(config)                # or Run(config, resume_dir=...) to continue a run
    run.start()                      # run folder, shared memory, worker processes, coordinator thread
    run.pause(); run.resume(); run.restart_worker(1); run.save_checkpoint()
    run.coordinator_stats(); run.worker_rows(); run.episodes; run.metric_history   # poll these
    run.stop()                       # final checkpoint, workers joined, shared memory unlinked

Threads: the coordinator thread runs the `CoordinatorLoop` (torch releases the GIL in its kernels); the supervision
thread starts, watches and restarts the workers through the backend (`WorkerRuntime`). Neither blocks the caller's
event loop. `Run` itself owns the run's life cycle and files: the run folder, checkpoints, training.csv, the log,
the evaluation process, and what front ends read (`view.RunView`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mario_tui.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_weights
from mario_tui.engine.collector import EpisodeResult
from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.coordinator import Coordinator, CoordinatorCounters, UpdateReport
from mario_tui.engine.coordinator_loop import CoordinatorLoop
from mario_tui.engine.env import num_actions
from mario_tui.engine.evaluate import EnvFactory, EvalOptions, EvalReport
from mario_tui.engine.fileio import atomic_write_text
from mario_tui.engine.logtail import LogTail
from mario_tui.engine.metrics import best_flags_text
from mario_tui.engine.notices import Notices, QuietFileHandler, WriteFailures, os_reason
from mario_tui.engine.periodic_eval import EvalPoint, PeriodicEvaluator
from mario_tui.engine.processes import process_context, start_process_helpers
from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState
from mario_tui.engine.registry import REGISTRY, build_model
from mario_tui.engine.run_metrics import MetricsRecorder
from mario_tui.engine.runs import RunPaths, new_run_paths
from mario_tui.engine.runtime import make_runtime
from mario_tui.engine.runtime.base import LinkSpec, WorkerRuntime
from mario_tui.engine.view import EpisodeRecord, WorkerRow
from mario_tui.engine.worker import WorkerSpec

METRIC_HISTORY = 20_000
EPISODE_HISTORY = 100_000


class StartError(Exception):
    """The run cannot start (its folder cannot be made, no shared memory left, ...): one line for the user."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda was asked for but torch sees no CUDA GPU (use --device cpu or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Run:
    """One training run: coordinator in this process, workers in their own processes."""

    def __init__(self, config: RunConfig, resume_dir: str | Path | None = None,
                 start_method: str | None = None, env_factory: EnvFactory | None = None) -> None:
        """`env_factory(config, seed) -> env` replaces `make_env` in the workers and the evaluation (tests use a tiny
        task; it must be importable by name in a child process)."""
        self.config = config.validate()
        self.env_factory = env_factory
        self._resume: dict[str, Any] | None = None
        if resume_dir is not None:
            self.paths = RunPaths(Path(resume_dir))
            self._resume = load_checkpoint(self.paths.checkpoint)
            saved_model = self._resume["config"].get("model")
            if saved_model != config.model:
                raise CheckpointError(f"{self.paths.checkpoint}: holds a {saved_model!r} run, not {config.model!r}")
        else:
            self.paths = new_run_paths(config)
        self.name = self.paths.root.name
        self.device = resolve_device(config.device)
        if config.backend == "local" and config.worker_device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--worker-device: cuda was asked for but torch sees no CUDA GPU (use cpu or auto)")
        self.start_method = start_method
        self.metric_names = REGISTRY[config.model].metrics
        self.episodes: deque[EpisodeRecord] = deque(maxlen=EPISODE_HISTORY)
        self.metric_history: deque[dict[str, float]] = deque(maxlen=METRIC_HISTORY)
        self.started = threading.Event()
        self.done = threading.Event()  # the step budget is reached (or the run broke): front ends call stop()
        self.stopping = threading.Event()  # stop() has begun
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.paused = False
        self._stop_flag = threading.Event()
        self._lock = threading.RLock()
        self._checkpoint_requests: deque[threading.Event] = deque()
        self._threads: list[threading.Thread] = []
        self.runtime: WorkerRuntime | None = None
        self.coordinator: Coordinator | None = None
        self.loop: CoordinatorLoop | None = None
        self._metrics: MetricsRecorder | None = None
        self._t_start = time.monotonic()
        self._elapsed_base = 0.0
        self._stats_cache: np.ndarray | None = None
        self._log_tail: LogTail | None = None
        self.evaluator: PeriodicEvaluator | None = None
        self.eval_history: deque[EvalPoint] = deque(maxlen=METRIC_HISTORY)
        self.last_eval: EvalReport | None = None
        self.notices = Notices()
        self._write_failures = WriteFailures(self.notices)
        self.workers_failed = False  # every worker failed (crashed too often): the run ended without any
        self.end_reason: str | None = None  # why the run ended on its own (steps reached, every worker failed, ...)
        self.stop_error: str | None = None  # the final checkpoint could not be written
        self.last_checkpoint_error: str | None = None
        self.checkpoint_updates: int | None = None  # the update of the newest checkpoint.pt on disk
        if self._resume is not None:
            self.checkpoint_updates = int(self._resume["counters"].get("updates", 0))

    # ------------------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Create the run folder and shared memory, start the workers and the coordinator thread.

        Raises StartError (one line) when the run folder or the shared memory cannot be made; nothing is left
        running then."""
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self.config.save(self.paths.config)
            self.log = self._make_logger()
        except OSError as exc:
            raise StartError(f"cannot create the run folder {self.paths.root}: {os_reason(exc)}") from None
        self._write_failures.log = self.log
        try:
            self._start()
        except BaseException as exc:
            self._abort_start()
            if isinstance(exc, OSError):
                raise StartError(f"cannot start the run: {os_reason(exc)}"
                                 + (f" ({exc.filename})" if exc.filename else "")) from None
            raise

    def _abort_start(self) -> None:
        """Undo a start that failed half-way: no shared memory, process or log handle outlives it."""
        self._stop_flag.set()
        for thread in self._threads:
            thread.join(10.0)
        if self.evaluator is not None:
            self.evaluator.close()
        if self.runtime is not None:
            with contextlib.suppress(Exception):
                self.runtime.set_run_state(RunState.STOPPING)
                self.runtime.stop_workers(5.0)
            self.runtime.close()
        if self._metrics is not None:
            self._metrics.close()
        self._close_log()

    def _start(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        _model, learner = build_model(cfg, num_actions(cfg.actions))
        counters = None
        if self._resume is not None:
            counters = CoordinatorCounters.from_dict(self._resume["counters"])
        self.coordinator = coordinator = Coordinator(cfg, learner, self.device, counters)
        if self._resume is not None:
            coordinator.load_state(self._resume)
            self._restore_rng(self._resume.get("rng", {}))
            self._elapsed_base = coordinator.counters.elapsed_s
            self.log.info(f"resumed {self.name} at update {coordinator.counters.updates} "
                          f"({coordinator.counters.env_steps} env steps)")
        else:
            self.log.info(f"new run {self.name}: model {cfg.model}, {cfg.workers} workers, level {cfg.level}, "
                          f"{coordinator.numel:,} parameters, device {self.device}")
        steps = list(coordinator.counters.worker_steps) + [0] * cfg.workers
        coordinator.counters.worker_steps = steps[: cfg.workers]
        self._metrics = MetricsRecorder(self.paths.csv, self.paths.root, self.metric_names,
                                        [*self.metric_names, *coordinator.group_norm_names], cfg.tensorboard,
                                        self._write_failures, self.log.info)
        if cfg.tensorboard:
            self.log.info(f"TensorBoard event files in {self.paths.root} (tensorboard --logdir {cfg.run_dir})")
        # The update count of the last row in training.csv: a resumed run's last session ended with that row.
        self._csv_updates = coordinator.counters.updates if self._resume is not None else -1
        self._ctx = process_context(self.start_method)
        self.runtime = make_runtime(cfg, numel=coordinator.numel, target_numel=coordinator.target_numel,
                                    metric_names=self.metric_names, worker_spec=self._worker_spec, ctx=self._ctx,
                                    run_root=str(self.paths.root.absolute()), log=self.log.info)
        self.loop = CoordinatorLoop(cfg, coordinator, self.runtime, _LoopHooks(self), self.log.info)
        self.loop.publish()
        start_process_helpers(self._ctx)
        if cfg.eval_every > 0:
            self.evaluator = PeriodicEvaluator(self.paths, self._ctx, self.env_factory, log=self.log.info)
        self._t_start = time.monotonic()
        self._threads = [
            threading.Thread(target=self._guard(self._supervise), name="mario-supervisor", daemon=True),
            threading.Thread(target=self._guard(self._coordinate), name="mario-coordinator", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.started.set()

    @property
    def csv_path(self) -> Path:
        """Where metric rows go: training.csv, or training.v2.csv when an older version wrote other columns."""
        return self._metrics.path if self._metrics is not None else self.paths.csv

    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"mario_tui.run.{self.name}.{id(self)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self._log_handler())
        return logger

    def _log_handler(self) -> logging.Handler:
        handler = QuietFileHandler(self.paths.log, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s [coord] %(message)s", "%Y-%m-%d %H:%M:%S"))
        return handler

    def _restore_rng(self, rng: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            if "torch" in rng:
                torch.set_rng_state(rng["torch"])
            if "python" in rng:
                random.setstate(_to_tuple(rng["python"]))

    def _worker_spec(self, worker_id: int, incarnation: int, link: LinkSpec | None) -> WorkerSpec:
        """What worker `worker_id`'s `incarnation`-th start gets (0: the run's first; a resume restores replay)."""
        assert self.coordinator is not None
        return WorkerSpec(
            worker_id=worker_id, config=self.config, link=link, run_root=str(self.paths.root.absolute()),
            start_steps=int(self.coordinator.counters.worker_steps[worker_id]),
            restore_replay=self.config.save_replay and incarnation == 0 and self._resume is not None,
            incarnation=incarnation, env_factory=self.env_factory,
        )

    def _guard(self, target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - surface to the front end, never die silently
                self.error = exc
                with contextlib.suppress(Exception):
                    self.log.exception(f"{threading.current_thread().name} failed: {exc}")
                self._end(f"training failed: {type(exc).__name__}: {exc} (the traceback is in {self.paths.log.name})",
                          "error")

        return run

    # ------------------------------------------------------------------------------ threads
    def _supervise(self) -> None:
        assert self.runtime is not None
        self.runtime.start_workers()
        while not self._stop_flag.wait(0.2):
            with self._lock:
                if self.stopping.is_set():
                    return
                self.runtime.supervise()
            if self.runtime.all_failed():
                self.workers_failed = True
                workers = self.runtime.workers()
                if len({r.last_error for r in workers}) == 1:
                    errors = f"last error: {workers[0].last_error}"
                else:
                    errors = "last errors: " + "; ".join(f"worker {r.worker_id}: {r.last_error}" for r in workers)
                self._end(f"every worker failed and none will be restarted ({errors})", "error")
                return

    def _end(self, reason: str, severity: str = "info") -> None:
        """The run ends on its own: say why, and let the front end stop it (final checkpoint, cleanup)."""
        if self.end_reason is None:
            self.end_reason = reason
            with contextlib.suppress(Exception):
                self.log.info(f"run ended: {reason}")
            self.notices.add(f"run ended: {reason}", severity)
        self.done.set()

    def _coordinate(self) -> None:
        assert self.loop is not None
        self.loop.run(self._stop_flag)

    def _record_update(self, report: UpdateReport) -> None:
        c = self.coordinator
        assert c is not None
        self.metric_history.append({"updates": c.counters.updates, "lr": c.lr, "grad_norm": c.last_grad_norm,
                                    **c.group_norm_metrics(), **report.metrics})

    def _poll_episodes(self) -> None:
        """Take the episodes the workers finished (a stream: none is missed between two polls) and their steps."""
        assert self.runtime is not None and self.coordinator is not None
        if self.runtime.closed:
            return
        counters = self.coordinator.counters
        now = time.time()
        batch = self.runtime.episodes()
        counters.episodes += batch.lost
        for e in batch.episodes:
            counters.episodes += 1
            counters.best_x_pos = max(counters.best_x_pos, e.x_pos)
            self.episodes.append(EpisodeRecord(e.worker_id, counters.episodes, e.reward, e.x_pos, e.length, e.flag,
                                               e.world, e.stage, now))
        snap = self.runtime.stats()
        self._stats_cache = snap
        for i, steps in enumerate(snap["steps"].tolist()):
            if steps > counters.worker_steps[i]:
                counters.worker_steps[i] = int(steps)
        counters.env_steps = sum(counters.worker_steps)
        counters.elapsed_s = self._elapsed_base + (time.monotonic() - self._t_start)

    # ------------------------------------------------------------------------------ evaluation
    def _start_evaluation(self) -> None:
        """Hand the newest weights to the evaluation process (the coordinator thread, between two updates)."""
        assert self.evaluator is not None and self.coordinator is not None
        counters = self.coordinator.counters
        options = EvalOptions.periodic(self.config, seed=self.config.seed)  # the same episodes each time: paired
        try:
            self.evaluator.submit(self.coordinator.evaluation_state(), self.config, counters.to_dict(), options)
        except OSError as exc:
            self.log.info(f"evaluation at update {counters.updates} skipped: cannot write its weights ({exc})")

    def _poll_evaluation(self) -> None:
        if self.evaluator is None:
            return
        outcome = self.evaluator.poll()
        if outcome is None:
            return
        report = outcome.report
        if outcome.confirmation:
            if outcome.best and self.eval_history and self.eval_history[-1].updates == report.updates:
                self.eval_history[-1] = replace(self.eval_history[-1], best=True)
        else:
            self.last_eval = report
            self.eval_history.append(EvalPoint(report.updates, report.elapsed_s, report.x_mean, report.x_max,
                                               report.flag_rate, report.return_mean, len(report.episodes),
                                               outcome.best))
        flags = sum(e.flag for e in report.episodes)
        best_flags = best_flags_text({"eval_best_flag_rate": self.evaluator.best_flag_rate})
        if outcome.best:
            verdict = "new best → best.pt"
        elif outcome.confirming:
            verdict = f"beats best.pt: {self.config.eval_confirm_episodes} more episodes to confirm"
        else:
            verdict = f"best stays {self.evaluator.best_x:.0f}{best_flags} (update {self.evaluator.best_updates})"
        what = "confirmation" if outcome.confirmation else "eval"
        self.log.info(f"{what} at update {report.updates}: greedy x mean {report.x_mean:.0f} (max {report.x_max}), "
                      f"flags {flags}/{len(report.episodes)}, return {report.return_mean:.1f} "
                      f"({report.wall_s:.0f} s); {verdict}")
        if outcome.best and self.coordinator is not None:
            self._write_status()

    # ------------------------------------------------------------------------------ checkpoints
    def _serve_checkpoint_requests(self) -> None:
        while self._checkpoint_requests:
            event = self._checkpoint_requests.popleft()
            try:
                self._write_checkpoint(periodic=True)
            finally:
                event.set()

    def _write_checkpoint(self, periodic: bool = False) -> OSError | None:
        """checkpoint.pt, weights.pt and status.json. A write that fails (disk full, ...) leaves the old file
        (atomic writes) and returns the checkpoint's error; `periodic` ones also become a notice: training goes
        on and the next checkpoint tries again."""
        assert self.coordinator is not None
        t0 = time.monotonic()
        self._restore_run_folder()
        coordinator = self.coordinator
        state = coordinator.state()
        payload = {
            "config": self.config.to_dict(),
            **state,
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate())},
            "saved_at": time.time(),
        }
        updates = coordinator.counters.updates
        try:
            save_checkpoint(self.paths.checkpoint, payload)
        except OSError as exc:
            self.last_checkpoint_error = f"could not write {self.paths.checkpoint.name}: {os_reason(exc)}"
            if periodic:
                nxt = (updates // self.config.checkpoint_every + 1) * self.config.checkpoint_every
                self._write_failures.failed(self.paths.checkpoint, exc, f"training goes on, {self.intact_text()}, "
                                            f"the next checkpoint (update {nxt:,}) tries again", always=True)
            return exc
        self.checkpoint_updates = updates
        self.last_checkpoint_error = None
        self._write_failures.succeeded(self.paths.checkpoint)
        try:
            save_weights(self.paths.weights, state["model"], self.config.to_dict(), state["counters"])
            self._write_failures.succeeded(self.paths.weights)
        except OSError as exc:
            self._write_failures.failed(self.paths.weights, exc, "checkpoint.pt was written; the replay viewer and "
                                        "--eval RUN see the previous weights until the next checkpoint")
        if coordinator.ema_weights is not None:
            try:
                save_weights(self.paths.ema_weights, coordinator.evaluation_state(), self.config.to_dict(),
                             state["counters"])
                self._write_failures.succeeded(self.paths.ema_weights)
            except OSError as exc:
                self._write_failures.failed(self.paths.ema_weights, exc, "the previous average stays until the next "
                                            "checkpoint")
        self._write_status()
        if self.config.save_replay and self.runtime is not None and not self.runtime.closed:
            for i in range(self.config.workers):
                self.runtime.request(i, WorkerCommand.SAVE_REPLAY)
        self.log.info(f"checkpoint at update {updates} ({(time.monotonic() - t0) * 1000:.0f} ms)")
        return None

    def _restore_run_folder(self) -> None:
        """The run folder (or its config.json) was deleted under the run: make them again, so the checkpoint that
        follows can be resumed, and point the log at a file that exists. (A write in flight may have made the
        folder again already: config.json is the sign.)"""
        if self.paths.config.exists():
            return
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self.config.save(self.paths.config)
        except OSError as exc:
            self._write_failures.failed(self.paths.config, exc, "the run cannot be resumed until it is written")
            return
        lost = "config.json"
        if self._log_file_deleted():  # the handler writes into the deleted file
            lost += ", training.log"
            for handler in list(self.log.handlers):
                handler.close()
                self.log.removeHandler(handler)
            self.log.addHandler(self._log_handler())
        text = f"the run folder {self.paths.root} lost its files during the run ({lost}): wrote them again"
        self.notices.add(text, "warning")
        self.log.info(text)

    def _log_file_deleted(self) -> bool:
        for handler in self.log.handlers:
            stream = getattr(handler, "stream", None)
            try:
                if stream is not None and os.fstat(stream.fileno()).st_nlink == 0:
                    return True
            except (OSError, ValueError):
                return True
        return False

    def intact_text(self) -> str:
        """What is on disk instead: `the checkpoint from update 3,000 is intact`."""
        if self.checkpoint_updates is None:
            return "no earlier checkpoint of this run exists"
        return f"the previous checkpoint from update {self.checkpoint_updates:,} is intact"

    def _write_status(self) -> None:
        try:
            atomic_write_text(self.paths.status, self._status_json())
            self._write_failures.succeeded(self.paths.status)
        except OSError as exc:
            self._write_failures.failed(self.paths.status, exc, "the runs list shows older figures for this run")

    def save_checkpoint(self, timeout: float = 60.0) -> bool:
        """Write checkpoint.pt + weights.pt now (on the coordinator thread, between two updates)."""
        event = threading.Event()
        coordinator_alive = any(t.name == "mario-coordinator" and t.is_alive() for t in self._threads)
        if not coordinator_alive:
            if self.runtime is None or self.stopping.is_set():
                self.last_checkpoint_error = ("the run has not started" if self.runtime is None else
                                              "the run has stopped (its final checkpoint is written at the stop)")
                return False
            with self._lock:
                return self._write_checkpoint(periodic=True) is None
        self._checkpoint_requests.append(event)
        if not event.wait(timeout):
            self.last_checkpoint_error = f"no checkpoint within {timeout:.0f} s (the coordinator is busy)"
            return False
        return self.last_checkpoint_error is None

    # ------------------------------------------------------------------------------ controls
    def pause(self) -> None:
        """Workers stop stepping, the coordinator stops applying; heartbeats continue."""
        if self.runtime is None or self.paused or self.stopped.is_set():
            return
        self.paused = True
        self.runtime.set_run_state(RunState.PAUSED)
        if self.evaluator is not None:
            self.evaluator.pause()
        self.log.info("paused")

    def resume(self) -> None:
        if self.runtime is None or not self.paused or self.stopped.is_set():
            return
        self.runtime.set_run_state(RunState.RUNNING)
        self.paused = False
        if self.evaluator is not None:
            self.evaluator.resume()
        self.log.info("resumed")

    def toggle_pause(self) -> bool:
        (self.resume if self.paused else self.pause)()
        return self.paused

    def restart_worker(self, worker_id: int) -> None:
        if self.runtime is None or not 0 <= worker_id < self.config.workers:
            raise IndexError(f"no worker {worker_id}")
        self.runtime.restart_worker(worker_id, "requested")

    def restart_stale_workers(self) -> list[int]:
        """Restart every worker whose heartbeat is old (stale), dead or failed; returns their ids."""
        stuck = (WorkerState.STALE, WorkerState.DEAD, WorkerState.FAILED)
        ids = [r.worker_id for r in self.worker_rows() if r.state in stuck]
        for worker_id in ids:
            self.restart_worker(worker_id)
        return ids

    def set_preview_worker(self, worker_id: int) -> None:
        if self.runtime is not None:
            self.runtime.set_preview_worker(worker_id)

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        if self.runtime is None:
            return None
        return self.runtime.read_preview(worker_id, current_version)

    def stop(self, timeout: float = 30.0, checkpoint: bool = True) -> None:
        """Stop workers, write a final checkpoint, unlink shared memory. Idempotent; safe from any thread."""
        with self._lock:
            if self.stopped.is_set() or not self.started.is_set():
                self.stopped.set()
                return
            if self.stopping.is_set():  # another thread is stopping it (the app: the run ended, then q)
                wait_for_other = True
            else:
                wait_for_other = False
                self.stopping.set()
        if wait_for_other:
            self.stopped.wait(timeout * 3)
            return
        with self._lock:
            self.log.info("stopping")
            assert self.runtime is not None
            self.runtime.set_run_state(RunState.STOPPING)
            self._stop_flag.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        try:
            if self.evaluator is not None:
                self.evaluator.close()
            self._poll_episodes()
            self.runtime.stop_workers(timeout)
            self._poll_episodes()
            if checkpoint and self.coordinator is not None and self.coordinator.counters.updates > 0:
                error = self._write_checkpoint()
                if error is not None:
                    self.stop_error = (f"could not write the final checkpoint ({self.paths.checkpoint}): "
                                       f"{os_reason(error)}; {self.intact_text()}")
                    self.log.info(self.stop_error)
                    self.notices.add(self.stop_error, "error")
            if self.coordinator is not None and self.coordinator.counters.updates != self._csv_updates:
                self._append_csv_row()  # the last updates since the last row (not a second row for the same update)
        finally:
            if self.evaluator is not None:
                self.evaluator.close()
            self.runtime.close()
            if self._metrics is not None:
                self._metrics.close()
            self.log.info("stopped; shared memory released")
            self._close_log()
            self.stopped.set()
            self.done.set()

    def _close_log(self) -> None:
        log = getattr(self, "log", None)
        for handler in list(log.handlers) if log is not None else []:
            handler.close()
            log.removeHandler(handler)

    def _status_json(self) -> str:
        assert self.coordinator is not None
        best = self.evaluator.best_x if self.evaluator is not None else math.nan
        return _status_json(self.config, self.coordinator.counters, best)

    # ------------------------------------------------------------------------------ reading
    def coordinator_stats(self) -> dict[str, float]:
        """Figures for the coordinator panel and the progress line."""
        c = self.coordinator
        if c is None:
            return {}
        lag_mean, lag_max = c.policy_lag()
        stats = self._stats_cache
        fps = float(stats["steps_per_s"].sum()) * self.config.frame_skip if stats is not None else 0.0
        return {
            "updates": c.counters.updates,
            "updates_per_s": c.updates_per_second(),
            "env_steps": c.counters.env_steps,
            "episodes": c.counters.episodes,
            "frames_per_s": fps,
            "lr": c.lr,
            "grad_norm": c.last_grad_norm,
            **c.group_norm_metrics(),
            "grads_applied": c.counters.grads_applied,
            "dropped_stale": c.counters.dropped_stale,
            "dropped_nonfinite": c.counters.dropped_nonfinite,
            "policy_lag_mean": lag_mean,
            "policy_lag_max": lag_max,
            "best_x_pos": c.counters.best_x_pos,
            "elapsed_s": c.counters.elapsed_s,
            **self.eval_stats(),
            **c.last_metrics,
        }

    def eval_stats(self) -> dict[str, float]:
        """The last periodic evaluation's figures and the best so far (NaN before the first)."""
        report, evaluator = self.last_eval, self.evaluator
        nan = math.nan
        return {
            "evals": len(self.eval_history),
            "eval_updates": report.updates if report else nan,
            "eval_x_mean": report.x_mean if report else nan,
            "eval_x_max": report.x_max if report else nan,
            "eval_flag_rate": report.flag_rate if report else nan,
            "eval_return": report.return_mean if report else nan,
            "eval_best_x": evaluator.best_x if evaluator is not None else nan,
            "eval_best_flag_rate": evaluator.best_flag_rate if evaluator is not None else nan,
            "eval_best_updates": evaluator.best_updates if evaluator is not None and evaluator.best_updates else nan,
        }

    def worker_rows(self) -> list[WorkerRow]:
        """One row per worker; after the stop, the workers' last figures with their final state (`stopped`,
        `failed`), so a dashboard left on a stopped run does not show them `running`."""
        if self.runtime is None:
            return []
        if self.runtime.closed:
            if self._stats_cache is None:
                return []
            snap, ages = self._stats_cache, np.zeros(self.config.workers)
        else:
            snap, ages = self.runtime.stats(), self.runtime.heartbeat_ages()
        rows = []
        for info in self.runtime.workers():
            i = info.worker_id
            rec = snap[i]
            rows.append(WorkerRow(
                worker_id=i, state=self._shown_state(info.state, WorkerState.from_code(int(rec["state"]))),
                pid=info.pid, level=f"{int(rec['world'])}-{int(rec['stage'])}",
                episodes=int(rec["episodes"]), steps=int(rec["steps"]), steps_per_s=float(rec["steps_per_s"]),
                last_reward=float(rec["last_reward"]), best_reward=float(rec["best_reward"]),
                best_x_pos=int(rec["best_x_pos"]), epsilon=float(rec["epsilon"]),
                grads_sent=int(rec["grads_sent"]), heartbeat_age=float(ages[i]), restarts=info.restarts,
                last_error=info.last_error, node=info.node,
            ))
        return rows

    def _shown_state(self, supervised: WorkerState, reported: WorkerState) -> WorkerState:
        """The table's state: supervision's, except that a live worker shows the run's flag and its own report
        (supervision checks up to a second late): a pause shows at once, as `pausing` until the worker holds."""
        if supervised not in (WorkerState.RUNNING, WorkerState.PAUSED):
            return supervised
        if self.paused:
            return WorkerState.PAUSED if reported is WorkerState.PAUSED else WorkerState.PAUSING
        return WorkerState.STARTING if reported is WorkerState.STARTING else WorkerState.RUNNING

    def new_log_lines(self) -> list[str]:
        """training.log lines written since the last call (coordinator and workers alike): the log stream
        front ends show. The first call returns the last 200 lines."""
        if self._log_tail is None:
            self._log_tail = LogTail(self.paths.log)
        return self._log_tail.read_new()

    def worker_time_fractions(self) -> dict[str, float]:
        """Mean fraction of worker time in env / acting / learner / waiting (Sample Factory style timing)."""
        if self._stats_cache is None:
            return {}
        snap = self._stats_cache
        return {k: float(snap[f"{k}_time_frac"].mean()) for k in ("env", "act", "learn", "wait")}

    def _append_csv_row(self) -> None:
        row = self._csv_row()
        self._csv_updates = int(row["updates"])
        assert self._metrics is not None
        self._metrics.append(row)

    def _csv_row(self) -> dict[str, Any]:
        stats = self.coordinator_stats()
        recent = list(self.episodes)[-100:]
        alive = self.runtime.alive_count() if self.runtime else 0
        restarts = sum(r.restarts for r in self.runtime.workers()) if self.runtime else 0
        return {
            "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **stats,
            "reward_mean": float(np.mean([e.reward for e in recent])) if recent else float("nan"),
            "x_pos_mean": float(np.mean([e.x_pos for e in recent])) if recent else float("nan"),
            "workers_alive": alive,
            "restarts": restarts,
        }


class _LoopHooks:
    """What the run does at the coordinator loop's moments (on the coordinator thread)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def paused(self) -> bool:
        return self.run.paused

    def between_updates(self) -> None:
        self.run._poll_episodes()
        self.run._serve_checkpoint_requests()
        self.run._poll_evaluation()

    def updated(self, report: UpdateReport) -> None:
        self.run._record_update(report)

    def write_csv_row(self) -> None:
        self.run._append_csv_row()

    def write_checkpoint(self) -> None:
        self.run._write_checkpoint(periodic=True)

    def evaluation_ready(self) -> bool:
        return self.run.evaluator is not None and not self.run.evaluator.busy

    def start_evaluation(self) -> None:
        self.run._start_evaluation()

    def budget_reached(self) -> None:
        self.run._end(f"reached --steps {self.run.config.steps}")


def _status_json(config: RunConfig, counters: CoordinatorCounters, best_eval_x: float = math.nan) -> str:
    import json

    status: dict[str, Any] = {"model": config.model, "updates": counters.updates, "env_steps": counters.env_steps,
                              "episodes": counters.episodes, "best_x_pos": counters.best_x_pos,
                              "saved_at": time.time()}
    if math.isfinite(best_eval_x):
        status["best_eval_x"] = round(best_eval_x, 1)
    return json.dumps(status) + "\n"


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


__all__ = ["EpisodeRecord", "EpisodeResult", "Run", "StartError", "WorkerRow",
           "process_context", "resolve_device"]
