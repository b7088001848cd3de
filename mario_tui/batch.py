"""`mario-tui --batch`: the same training as the app, without a UI (servers, CI, nohup).

A rich progress bar on a terminal; plain periodic lines otherwise (log files stay readable). Ctrl+C,
SIGTERM or SIGHUP stop the workers, write a final checkpoint, remove shared memory and exit 0.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from mario_tui.defaults import EXIT_ALL_WORKERS_FAILED
from mario_tui.engine.checkpoint import CheckpointError
from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.metrics import best_flags_text
from mario_tui.engine.registry import REGISTRY
from mario_tui.engine.session import Run, StartError

if TYPE_CHECKING:
    from mario_tui.engine.view import RunView

PLAIN_INTERVAL_S = 10.0


def progress_line(run: RunView) -> str:
    s = run.coordinator_stats()
    steps = f"/{run.config.steps}" if run.config.steps else ""
    loss_name = REGISTRY[run.config.model].headline[0]
    loss = s.get(loss_name, math.nan)
    parts = [
        f"updates {int(s.get('updates', 0))}{steps}",
        f"{s.get('updates_per_s', 0.0):.1f} upd/s",
        f"{s.get('frames_per_s', 0.0):.0f} frames/s",
        f"episodes {int(s.get('episodes', 0))}",
        f"best x {int(s.get('best_x_pos', 0))}",
        eval_text(s),
        f"{loss_name} {loss:.4g}" if not math.isnan(loss) else f"{loss_name} -",
        f"lr {s.get('lr', 0.0):.2e}",
        f"lag {s.get('policy_lag_mean', math.nan):.1f}",
    ]
    dead = [r for r in run.worker_rows() if r.state in ("dead", "failed", "stale")]
    if dead:
        parts.append("workers " + ", ".join(f"{r.worker_id}:{r.state}" for r in dead))
    if run.paused:
        parts.append("PAUSED")
    return " | ".join(parts)


def eval_text(stats: dict[str, float]) -> str:
    """The greedy evaluation in a few words: `greedy x 412 (best 455)`, or `greedy x -` before the first."""
    last, best = stats.get("eval_x_mean", math.nan), stats.get("eval_best_x", math.nan)
    if math.isnan(last) and math.isnan(best):
        return "greedy x -"
    text = "-" if math.isnan(last) else f"{last:.0f}"
    return f"greedy x {text}" + ("" if math.isnan(best) else f" (best {best:.0f}{best_flags_text(stats)})")


def _install_signal_handlers(stop: threading.Event) -> dict[int, object]:
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    return previous


def run_batch(config: RunConfig, resume_dir: str | None = None, out: TextIO | None = None,
              interval: float | None = None) -> int:
    """Train until --steps updates (or a signal); returns the process exit status (`defaults.EXIT_STATUS_HELP`)."""
    out = out or sys.stdout
    try:
        run = Run(config, resume_dir)
        run.start()
    except (ConfigError, CheckpointError, StartError) as exc:
        print(f"mario-tui: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = _install_signal_handlers(stop)
    tty = out.isatty()
    notices = NoticePrinter(run, out)
    try:
        print(f"run folder: {run.paths.root}  ({'resumed' if resume_dir else 'new'}, "
              f"{config.workers} workers, model {config.model}, device {run.device})", file=out, flush=True)
        if tty:
            _watch_rich(run, stop, out, notices)
        else:
            _watch_plain(run, stop, out, interval or PLAIN_INTERVAL_S, notices)
    finally:
        if stop.is_set():
            print("stopping: final checkpoint, workers, shared memory…", file=out, flush=True)
        run.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    notices.print_new(skip_errors=True)
    print(progress_line(run), file=out)
    best = " best.pt," if run.paths.best.is_file() else ""
    print(f"done: {run.paths.root} (checkpoint.pt, weights.pt,{best} {run.csv_path.name}, training.log)", file=out,
          flush=True)
    if run.error is not None:
        print(f"mario-tui: error: training failed: {run.error} (see {run.paths.log})", file=sys.stderr)
        return 1
    if run.stop_error is not None:
        print(f"mario-tui: error: {run.stop_error}", file=sys.stderr)
        return 1
    if run.workers_failed:
        print(f"mario-tui: error: {run.end_reason or 'every worker failed'}", file=sys.stderr)
        return EXIT_ALL_WORKERS_FAILED
    return 0


class NoticePrinter:
    """Prints the run's notices (failed writes, why it ended) as they come, once each."""

    def __init__(self, run: RunView, out: TextIO) -> None:
        self.run, self._cursor = run, 0
        self.write: Callable[[str], None] = lambda line: print(line, file=out, flush=True)

    def print_new(self, skip_errors: bool = False) -> None:
        """`skip_errors`: at the end, errors are printed to stderr by `run_batch` instead (once)."""
        new, self._cursor = self.run.notices.since(self._cursor)
        for notice in new:
            if skip_errors and notice.severity == "error" and notice.text == self.run.stop_error:
                continue
            self.write(f"{time.strftime('%H:%M:%S')} {notice.severity}: {notice.text}")


def _watch_plain(run: RunView, stop: threading.Event, out: TextIO, interval: float, notices: NoticePrinter) -> None:
    next_line = time.monotonic() + interval
    while not stop.is_set() and not run.done.is_set():
        stop.wait(0.2)
        notices.print_new()
        if time.monotonic() >= next_line:
            next_line += interval
            print(time.strftime("%H:%M:%S ") + progress_line(run), file=out, flush=True)


def _watch_rich(run: RunView, stop: threading.Event, out: TextIO, notices: NoticePrinter) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=out)
    total = run.config.steps or None
    with Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=False) as progress:
        task = progress.add_task("", total=total)
        notices.write = lambda line: progress.console.print(line, markup=False, highlight=False)  # above the bar
        while not stop.is_set() and not run.done.is_set():
            stop.wait(0.5)
            notices.print_new()
            stats = run.coordinator_stats()
            progress.update(task, completed=int(stats.get("updates", 0)),
                            description=progress_line(run).split(" | ", 1)[-1])
