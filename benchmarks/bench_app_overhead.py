"""The app's cost on training: env frames/s and updates/s with the dashboard live vs. without it. Target >= 0.95.

Two measurements:
1. Same run (default): one run inside the app, alternating windows of `--window` seconds with the dashboard live
   (table, plots, log, frame preview at `--preview-fps`) and with a blank screen over it (the dashboard suspends
   itself and the frame feed stops: the engine alone, as `--batch` runs it). Ratios are taken per adjacent pair of
   windows and their median is reported, so the box's drift (it swings ±7 % over minutes) cancels out.
   `--sessions N` repeats this with N fresh runs and pools their pairs; a bootstrap 90 % interval of the pooled
   median says how far the box's noise leaves the figure uncertain.
2. Separate runs (`--rounds N`, N > 0): a headless run driven the way `--batch` drives it vs. a run in the app,
   alternating N times; medians are printed. Startup noise and drift make this one swing by several points.
Then key-press latency, while training with the dashboard live: from posting `p` to the run being (un)paused, and
to the end of the first repaint that shows it (the table's state column and the header; the panel follows a frame
later).

    uv run python benchmarks/bench_app_overhead.py [--windows 12] [--window 10] [--sessions 1] [--rounds 0]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from mario_tui.app import MarioApp
from mario_tui.batch import progress_line
from mario_tui.defaults import DEFAULT_PREVIEW_FPS
from mario_tui.engine.config import RunConfig
from mario_tui.engine.session import Run
from mario_tui.screens.dashboard import DashboardScreen

LATENCIES: list[float] = []
DRAWN_LATENCIES: list[float] = []
LAST_REPAINT: list = [0.0, None]  # perf_counter at the end of the last screen repaint, and the run's paused flag then
PRESSES = 60  # per app round
TEST_SIZE: dict = {"size": (160, 50)}  # run_test arguments; --terminal draws into the real terminal instead
REPORT: list[str] = []
OUT_PATH: list[str] = []  # --out, read after main() returns or fails
GC_PASSES_MS: list[float] = []  # the app's paced full collections: the longest per session
UI_SHARES: dict[bool, list[float]] = {True: [], False: []}  # event-loop thread CPU / wall, live and hidden windows
TERMINAL_SHARES: dict[bool, list[float]] = {True: [], False: []}  # the tmux server's CPU / wall (with --terminal)
TERMINAL_PID: list[int] = []


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tmux_server_pid() -> int | None:
    """The tmux server drawing this pane, if any: its CPU is part of what a live dashboard costs."""
    if not os.environ.get("TMUX"):
        return None
    try:
        out = subprocess.run(["tmux", "display-message", "-p", "#{pid}"], capture_output=True, text=True, timeout=5)
        return int(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def report(line: str) -> None:
    """Print now when headless; with --terminal the app owns the screen, so lines are printed after it exits."""
    REPORT.append(line)
    if TEST_SIZE.get("headless", True):
        print(line, flush=True)
PREVIEW_FPS = [DEFAULT_PREVIEW_FPS]


def config_for(run_dir: str, name: str) -> RunConfig:
    return RunConfig(workers=2, learning_starts=500, run_dir=run_dir, name=name, checkpoint_every=10**9)


def measure(run: Run, seconds: float, tick) -> tuple[float, float]:
    """(frames/s, updates/s) over `seconds`, starting once updates flow; `tick()` is the front end's work."""
    while run.coordinator.counters.updates < 5:
        tick()
    steps0, updates0, t0 = sum(r.steps for r in run.worker_rows()), run.coordinator.counters.updates, time.monotonic()
    while time.monotonic() - t0 < seconds:
        tick()
    elapsed = time.monotonic() - t0
    steps = sum(r.steps for r in run.worker_rows()) - steps0
    return steps * run.config.frame_skip / elapsed, (run.coordinator.counters.updates - updates0) / elapsed


def batch_round(run_dir: str, name: str, seconds: float) -> tuple[float, float]:
    run = Run(config_for(run_dir, name))
    run.start()
    try:
        return measure(run, seconds, lambda: (time.sleep(0.5), progress_line(run)))
    finally:
        run.stop(checkpoint=False)


async def app_round(run_dir: str, name: str, seconds: float) -> tuple[float, float]:
    app = MarioApp(config_for(run_dir, name), autostart=True, preview="halfblock", preview_fps=PREVIEW_FPS[0])
    async with app.run_test(**TEST_SIZE) as pilot:
        while not isinstance(app.screen, DashboardScreen):
            await pilot.pause(0.2)
        run = app.current_run
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, measure, run, seconds, lambda: time.sleep(0.5))
        await press_keys(app, pilot, run)
        run.stop(checkpoint=False)
    return result


def stamp_repaints() -> None:
    """Record when each screen repaint ends and what it showed. Textual has no public "frame drawn" hook, so the
    benchmark (only) wraps `Screen._compositor_refresh`, which renders the dirty regions and hands them to the
    driver."""
    original = Screen._compositor_refresh

    def stamped(screen: Screen) -> None:
        original(screen)
        run = getattr(screen.app, "current_run", None)
        LAST_REPAINT[:] = [time.perf_counter(), None if run is None else run.paused]

    Screen._compositor_refresh = stamped


async def press_keys(app: MarioApp, pilot, run: Run) -> None:
    """Key-press latency while training with the dashboard live: from posting `p` to the run being (un)paused, and
    to the first repaint after that."""
    for _ in range(PRESSES):
        before = run.paused
        t0 = time.perf_counter()
        app.post_message(events.Key("p", "p"))
        while run.paused == before and time.perf_counter() - t0 < 5:
            await asyncio.sleep(0.001)
        LATENCIES.append(time.perf_counter() - t0)
        while not (LAST_REPAINT[0] > t0 and LAST_REPAINT[1] == run.paused) and time.perf_counter() - t0 < 5:
            await asyncio.sleep(0.001)
        DRAWN_LATENCIES.append(LAST_REPAINT[0] - t0)
        await pilot.pause(0.3)


class BlankScreen(Screen):
    """Covers the dashboard: Textual draws nothing, the dashboard's timers and frame feed are suspended."""

    def compose(self) -> ComposeResult:
        yield Static("dashboard hidden (benchmark window without UI)")


async def same_run_windows(run_dir: str, windows: int, seconds: float, name: str = "same"
                           ) -> list[tuple[bool, float, float]]:
    """(dashboard shown?, frames/s, updates/s) per window of one run, alternating shown / hidden."""
    app = MarioApp(config_for(run_dir, name), autostart=True, preview="halfblock", preview_fps=PREVIEW_FPS[0])
    results = []
    async with app.run_test(**TEST_SIZE) as pilot:
        while not isinstance(app.screen, DashboardScreen):
            await pilot.pause(0.2)
        run = app.current_run
        loop = asyncio.get_running_loop()
        for i in range(windows):
            shown = i % 2 == 0
            if shown and isinstance(app.screen, BlankScreen):
                app.pop_screen()
            elif not shown:
                app.push_screen(BlankScreen())
            await pilot.pause(1.0)  # let the switch settle
            ui_cpu, wall = time.thread_time(), time.monotonic()  # this (event-loop) thread is the UI
            term_cpu = process_cpu_seconds(TERMINAL_PID[0]) if TERMINAL_PID else 0.0
            frames, updates = await loop.run_in_executor(None, measure, run, seconds, lambda: time.sleep(0.5))
            elapsed = time.monotonic() - wall
            ui_share = (time.thread_time() - ui_cpu) / elapsed
            results.append((shown, frames, updates))
            UI_SHARES[shown].append(ui_share)
            terminal = ""
            if TERMINAL_PID:
                TERMINAL_SHARES[shown].append((process_cpu_seconds(TERMINAL_PID[0]) - term_cpu) / elapsed)
                terminal = f", tmux {TERMINAL_SHARES[shown][-1]:.1%}"
            report(f"  window {i + 1}: dashboard {'live  ' if shown else 'hidden'} {frames:.0f} frames/s "
                   f"{updates:.2f} upd/s, UI thread {ui_share:.1%} of a core{terminal}")
        if isinstance(app.screen, BlankScreen):
            app.pop_screen()
            await pilot.pause(1.0)
        await press_keys(app, pilot, run)
        GC_PASSES_MS.append(app.collector.max_ms)
        run.stop(checkpoint=False)
    return results


def pair_ratios(results: list[tuple[bool, float, float]]) -> tuple[list[float], list[float]]:
    """live/hidden ratios of each adjacent (live, hidden) pair: frames and updates."""
    frames, updates = [], []
    for (shown, f, u), (shown_next, f_next, u_next) in itertools.pairwise(results):
        if shown != shown_next:
            live, hidden = ((f, u), (f_next, u_next)) if shown else ((f_next, u_next), (f, u))
            frames.append(live[0] / hidden[0])
            updates.append(live[1] / hidden[1])
    return frames, updates


def median_interval(values: list[float], level: float = 0.9, draws: int = 4000) -> tuple[float, float]:
    """Bootstrap interval of the median of `values` (seeded: the same pairs give the same interval)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    tail = (1 - level) / 2
    return medians[int(tail * draws)], medians[int((1 - tail) * draws) - 1]


def summarise(label: str, frames: list[float], updates: list[float]) -> None:
    f_low, f_high = median_interval(frames)
    u_low, u_high = median_interval(updates)
    report(f"{label}, dashboard live / hidden over {len(frames)} adjacent pairs: frames median "
           f"{statistics.median(frames):.3f} (90 % interval {f_low:.3f}–{f_high:.3f}; pairs {min(frames):.3f}–"
           f"{max(frames):.3f}), updates median {statistics.median(updates):.3f} (90 % interval {u_low:.3f}–"
           f"{u_high:.3f}) (target >= 0.95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=12, help="same-run windows, alternating live/hidden")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per same-run window")
    parser.add_argument("--sessions", type=int, default=1, help="same-run measurements, each a fresh run; pooled")
    parser.add_argument("--rounds", type=int, default=0, help="separate batch/app run pairs (0: skip)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured per separate run")
    parser.add_argument("--preview-fps", type=float, default=DEFAULT_PREVIEW_FPS, help="the dashboard's frame rate")
    parser.add_argument("--terminal", action="store_true",
                        help="draw into this (real) terminal, e.g. a tmux pane, instead of headless: the terminal "
                             "output is measured too")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    if args.terminal:
        if not sys.stdout.isatty():
            parser.error("--terminal needs a terminal")
        TEST_SIZE.clear()
        TEST_SIZE.update(headless=False, size=None)
        pid = tmux_server_pid()
        if pid is not None:
            TERMINAL_PID.append(pid)
    PREVIEW_FPS[0] = args.preview_fps
    stamp_repaints()
    if args.out:
        OUT_PATH.append(args.out)
    batch, app = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if args.windows:
            pooled_frames: list[float] = []
            pooled_updates: list[float] = []
            for session in range(args.sessions):
                report(f"same run {session + 1}/{args.sessions}, {args.windows} windows of {args.window:.0f} s:")
                results = same_run_windows(tmp, args.windows, args.window, name=f"same{session}")
                frames, updates = pair_ratios(asyncio.run(results))
                summarise(f"same run {session + 1}", frames, updates)
                pooled_frames += frames
                pooled_updates += updates
            if args.sessions > 1:
                summarise(f"all {args.sessions} runs pooled", pooled_frames, pooled_updates)
            report(f"UI (event-loop) thread, median: {statistics.median(UI_SHARES[True]):.1%} of a core with the "
                   f"dashboard live, {statistics.median(UI_SHARES[False]):.1%} covered (the same cost seen without "
                   f"the box's throughput noise; the machine has 2 cores)")
            if TERMINAL_PID:
                report(f"tmux server, median: {statistics.median(TERMINAL_SHARES[True]):.1%} of a core with the "
                       f"dashboard live, {statistics.median(TERMINAL_SHARES[False]):.1%} covered")
        for i in range(args.rounds):
            batch.append(batch_round(tmp, f"batch{i}", args.seconds))
            app.append(asyncio.run(app_round(tmp, f"app{i}", args.seconds)))
            report(f"round {i + 1}: batch {batch[-1][0]:.0f} frames/s {batch[-1][1]:.2f} upd/s | "
                  f"app {app[-1][0]:.0f} frames/s {app[-1][1]:.2f} upd/s")
    if batch:
        bf, bu = statistics.median(b[0] for b in batch), statistics.median(b[1] for b in batch)
        af, au = statistics.median(a[0] for a in app), statistics.median(a[1] for a in app)
        report(f"separate runs: batch (headless) {bf:.0f} env frames/s, {bu:.2f} updates/s; app (dashboard live) "
              f"{af:.0f} env frames/s, {au:.2f} updates/s; ratio app/batch: frames {af / bf:.3f}, updates "
              f"{au / bu:.3f} (target >= 0.95)")
    for what, latencies in (("acted on (run paused/resumed)", LATENCIES), ("drawn (repaint ended)", DRAWN_LATENCIES)):
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        report(f"key press (p) {what} after: median {statistics.median(ordered) * 1000:.0f} ms, p95 "
               f"{p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms over {len(ordered)} presses (target <= 100 ms)")
    if GC_PASSES_MS:
        report(f"the app's paced full garbage collections with the run live took at most {max(GC_PASSES_MS):.0f} ms")


if __name__ == "__main__":
    try:
        main()
    finally:
        if not TEST_SIZE.get("headless", True):
            print("\n".join(REPORT))
        if OUT_PATH:
            Path(OUT_PATH[0]).write_text("\n".join(REPORT) + "\n")
