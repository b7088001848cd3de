"""Greedy evaluation during training, in a low-priority child process, and the best checkpoint (best.pt).

Every `--eval-every` updates `Run` hands the newest weights to a `PeriodicEvaluator`: it writes them to
`eval/.candidate.pt` and a child process plays `--eval-episodes` greedy episodes of them by the protocol of
`evaluate.py`. While it plays, newer weights wait for the next interval (an evaluation is never queued behind
another). When an evaluation beats best.pt's score, the same weights play `--eval-confirm-episodes` more episodes
(the next seeds: other no-op starts), and they become `best.pt` (atomically) only if their score over all of them
beats best.pt's over the same games. Every evaluation plays the same seeds, so scores are paired; but best.pt is the
best of a hundred or so evaluations, and on a handful of fixed games the best of many favours weights that suit
those games (held out, such a best.pt trailed the run's best snapshot: benchmarks/README.md). The confirmation
games are played only by the weights that pass, so they select far less.

The child must cost training little: training runs one worker per core, so every core it takes is throughput
lost. It leaves the run's session (its own scheduler autogroup, niced), and paces itself: after each chunk of
steps it sleeps until its CPU time is at most `cpu_share` of the wall-clock time (5 % of the machine's cores by
default). A paused run stops it (SIGSTOP); a stopped run kills it (an evaluation in flight is dropped).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from mario_tui.engine.checkpoint import CheckpointError, load_weights, save_weights
from mario_tui.engine.evaluate import EnvFactory, EpisodePlayer, EvalOptions, EvalReport
from mario_tui.engine.runs import RunPaths

MACHINE_CPU_SHARE = 0.05
"""Fraction of the machine's CPU the evaluation may use on average."""
CANDIDATE_FILE = ".candidate.pt"
PACE_EVERY_STEPS = 16
MAX_FAILURES = 3  # child crashes in a row before periodic evaluation gives up for this session


@dataclass(frozen=True)
class EvalPoint:
    """One periodic evaluation, as the dashboard plots it."""

    updates: int
    elapsed_s: float
    x_mean: float
    x_max: int
    flag_rate: float
    return_mean: float
    episodes: int
    best: bool
    """This evaluation became best.pt."""


@dataclass(frozen=True)
class EvalOutcome:
    """A finished evaluation: the periodic one, or the confirmation of one that beat best.pt."""

    report: EvalReport
    """The periodic evaluation's episodes; for a confirmation, those and the confirmation's together."""
    best: bool = False
    """These weights became best.pt."""
    confirming: bool = False
    """It beat best.pt's score: the same weights now play the confirmation episodes."""
    confirmation: bool = False
    """This is the confirmation (its report holds every episode the weights played)."""


def default_cpu_share() -> float:
    """CPU seconds per wall-clock second the child may use: 5 % of the machine (0.1 of a core on 2 cores)."""
    return MACHINE_CPU_SHARE * (os.cpu_count() or 1)


class Pacer:
    """Sleeps so that this process's CPU time stays at most `share` of the wall-clock time, chunk by chunk."""

    def __init__(self, share: float, every: int = PACE_EVERY_STEPS, parent_pid: int | None = None) -> None:
        self.share = share
        self.every = every
        self.parent_pid = parent_pid
        self._steps = 0
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def tick(self, *_: Any) -> None:
        self._steps += 1
        if self._steps % self.every:
            return
        if self.parent_pid is not None and not _alive(self.parent_pid):
            os._exit(1)  # the run died without stopping us: nobody wants the result
        cpu = time.process_time() - self._cpu
        wall = time.monotonic() - self._wall
        if self.share > 0 and cpu / self.share > wall:
            time.sleep(cpu / self.share - wall)
        self._cpu = time.process_time()
        self._wall = time.monotonic()


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (our parent is the forkserver, not the run, so getppid cannot tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lower_priority() -> None:
    """Its own session (hence its own autogroup when the kernel groups by session), niced, one torch thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text("10")
    with contextlib.suppress(OSError):
        os.nice(10)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    torch.set_num_threads(1)


def evaluator_main(conn: Connection, cpu_share: float, env_factory: EnvFactory | None, parent_pid: int) -> None:
    """The child: for each (weights path, options) job, play the episodes and send ("ok", report) or ("error", …)."""
    _lower_priority()
    from mario_tui.engine.evaluate import evaluate_with

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        path, options = job
        pacer = Pacer(cpu_share, parent_pid=parent_pid)
        try:
            message: tuple[str, Any] = ("ok", evaluate_with(EpisodePlayer(path, options, env_factory), path,
                                                            options, on_step=pacer.tick))
        except Exception as exc:  # noqa: BLE001 - any failure goes back to the run as a message
            message = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(message)
        except OSError:
            return


class PeriodicEvaluator:
    """Owns the evaluation child, the candidate weights and best.pt of one run (driven by the coordinator thread)."""

    def __init__(self, paths: RunPaths, ctx: Any, env_factory: EnvFactory | None = None,
                 cpu_share: float | None = None, log: Any = None) -> None:
        self.paths = paths
        self.ctx = ctx
        self.env_factory = env_factory
        self.cpu_share = default_cpu_share() if cpu_share is None else cpu_share
        self.log = log or (lambda message: None)
        self.best_x = math.nan
        self.best_flag_rate = 0.0
        self.best_updates = 0
        self.failures = 0
        self._process: Any = None
        self._conn: Connection | None = None
        self._job: dict[str, Any] | None = None
        self._paused = False
        self._load_best()

    @property
    def candidate(self) -> Path:
        return self.paths.eval_dir / CANDIDATE_FILE

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def gave_up(self) -> bool:
        return self.failures >= MAX_FAILURES

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _load_best(self) -> None:
        """A resumed run keeps comparing against its best.pt."""
        if not self.paths.best.is_file():
            return
        try:
            data = load_weights(self.paths.best)
            result = data.get("eval") or {}
            self.best_x = float(result.get("x_mean", math.nan))
            self.best_flag_rate = float(result.get("flag_rate", 0.0))
            self.best_updates = int(data.get("counters", {}).get("updates", 0))
        except (CheckpointError, TypeError, ValueError, AttributeError) as exc:
            self.log(f"best.pt cannot be read ({exc}); the next evaluation replaces it")

    def submit(self, model_state: dict[str, Any], config: Any, counters: dict[str, Any],
               options: EvalOptions) -> None:
        """Evaluate these weights (call only when not `busy`). Writing the candidate costs ~20 ms."""
        if self.busy or self.gave_up:
            return
        state = {k: v.detach().clone() for k, v in model_state.items()}
        save_weights(self.candidate, state, config.to_dict(), counters)
        self._send({"state": state, "config": config, "counters": dict(counters), "options": options, "screen": None})

    def _confirm(self, job: dict[str, Any], screen: EvalReport) -> None:
        """The weights of `job` (still the candidate file) play the confirmation episodes: the seeds after the
        periodic evaluation's, so every confirmation plays the same games."""
        options: EvalOptions = job["options"]
        more = replace(options, episodes=job["config"].eval_confirm_episodes, seed=options.seed + options.episodes)
        self._send({**job, "options": more, "screen": screen})

    def _send(self, job: dict[str, Any]) -> None:
        """The child plays the candidate file by `job["options"]`; `job` waits for its result."""
        self._ensure_process()
        assert self._conn is not None
        self._job = job
        self._conn.send((str(self.candidate), job["options"]))

    def _ensure_process(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._release()
        receiver, sender = self.ctx.Pipe(duplex=True)
        self._process = self.ctx.Process(target=evaluator_main, name="mario-eval", daemon=True,
                                         args=(sender, self.cpu_share, self.env_factory, os.getpid()))
        self._process.start()
        sender.close()
        self._conn = receiver

    def poll(self) -> EvalOutcome | None:
        """The finished evaluation or confirmation, if one is. Never blocks."""
        if self._job is None or self._conn is None:
            return None
        try:
            ready = self._conn.poll()
            message = self._conn.recv() if ready else None
        except (EOFError, OSError):
            ready, message = True, None
        if not ready:
            if self._process is not None and not self._process.is_alive():
                message = ("error", f"the evaluation process died (exit code {self._process.exitcode})")
            else:
                return None
        job, self._job = self._job, None
        if message is None:
            message = ("error", "the evaluation process died")
        kind, payload = message
        if kind != "ok":
            self.failures += 1
            self.log(f"evaluation at update {job['counters'].get('updates', 0)} failed: {payload}"
                     + ("; periodic evaluation is off for this session" if self.gave_up else ""))
            self._release()
            return None
        self.failures = 0
        report: EvalReport = payload
        screen: EvalReport | None = job["screen"]
        if screen is not None:
            report = replace(screen, episodes=screen.episodes + report.episodes, wall_s=screen.wall_s + report.wall_s,
                             options=replace(screen.options, episodes=len(screen.episodes) + len(report.episodes)))
        beats = self.beats_best(report.flag_rate, report.x_mean)
        if beats and screen is None and job["config"].eval_confirm_episodes > 0:
            try:
                self._confirm(job, report)
            except OSError as exc:
                self.log(f"the confirmation of update {job['counters'].get('updates', 0)} could not start: {exc}")
                self._release()
                return EvalOutcome(report)
            return EvalOutcome(report, confirming=True)
        best = beats and self._write_best(job, report)
        return EvalOutcome(report, best=best, confirmation=screen is not None)

    def beats_best(self, flag_rate: float, x_mean: float) -> bool:
        """Flags first, then mean x: an agent that finishes the level beats one that only gets further before
        dying or stalling (what a user wants from best.pt). The first evaluation (best_x NaN) always wins. A periodic
        evaluation's score is compared with best.pt's over all its games, the figure less inflated by selection."""
        if math.isnan(self.best_x):
            return True
        if flag_rate != self.best_flag_rate:
            return flag_rate > self.best_flag_rate
        return x_mean > self.best_x

    def _write_best(self, job: dict[str, Any], report: EvalReport) -> bool:
        """Replace best.pt (atomically) with the evaluated weights; False if it could not be written."""
        summary = {"x_mean": report.x_mean, "x_max": report.x_max, "flag_rate": report.flag_rate,
                   "return_mean": report.return_mean, "episodes": len(report.episodes),
                   "options": report.to_dict()["options"], "finished_at": report.finished_at}
        try:
            save_weights(self.paths.best, job["state"], job["config"].to_dict(), job["counters"], eval=summary)
        except OSError as exc:
            self.log(f"could not write {self.paths.best.name}: {exc}; the previous one is intact")
            return False
        self.best_x = report.x_mean
        self.best_flag_rate = report.flag_rate
        self.best_updates = int(job["counters"].get("updates", 0))
        return True

    def pause(self) -> None:
        if self._process is not None and self._process.is_alive() and not self._paused:
            with contextlib.suppress(OSError):
                os.kill(self._process.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._process is not None and self._paused:
            with contextlib.suppress(OSError):
                os.kill(self._process.pid, signal.SIGCONT)
        self._paused = False

    def close(self) -> None:
        """Kill the child (dropping an evaluation in flight) and remove the candidate weights."""
        if self._job is not None:
            what = "evaluation" if self._job["screen"] is None else "confirmation"
            self.log(f"{what} of update {self._job['counters'].get('updates', 0)} dropped: the run stopped")
            self._job = None
        self._release()
        with contextlib.suppress(OSError):
            self.candidate.unlink()

    def _release(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
        self._paused = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

