"""The app's cost on training: env frames/s and updates/s of one configuration trained (a) headless, the way
`--batch` drives the engine, and (b) inside the Textual app with the dashboard live (table, plots, log, frame
preview at 10 Hz), alternating a/b so machine noise hits both. Target: app/batch >= 0.95.

    uv run python benchmarks/bench_app_overhead.py [--seconds 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from mario_tui.app import MarioApp
from mario_tui.batch import progress_line
from mario_tui.engine.config import RunConfig
from mario_tui.engine.session import Run
from mario_tui.screens.dashboard import DashboardScreen

LATENCIES: list[float] = []


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
    app = MarioApp(config_for(run_dir, name), autostart=True, preview="halfblock")
    async with app.run_test(size=(160, 50)) as pilot:
        while not isinstance(app.screen, DashboardScreen):
            await pilot.pause(0.2)
        run = app.current_run
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, measure, run, seconds, lambda: time.sleep(0.5))
        from textual import events

        for _ in range(10):  # key-press latency while training: from the key event to the run being (un)paused
            before = run.paused
            t0 = time.perf_counter()
            app.post_message(events.Key("p", "p"))
            while run.paused == before and time.perf_counter() - t0 < 5:
                await asyncio.sleep(0.001)
            LATENCIES.append(time.perf_counter() - t0)
            await pilot.pause(0.3)
        run.stop(checkpoint=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batch, app = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            batch.append(batch_round(tmp, f"batch{i}", args.seconds))
            app.append(asyncio.run(app_round(tmp, f"app{i}", args.seconds)))
            print(f"round {i + 1}: batch {batch[-1][0]:.0f} frames/s {batch[-1][1]:.2f} upd/s | "
                  f"app {app[-1][0]:.0f} frames/s {app[-1][1]:.2f} upd/s", flush=True)
    bf, bu = statistics.median(b[0] for b in batch), statistics.median(b[1] for b in batch)
    af, au = statistics.median(a[0] for a in app), statistics.median(a[1] for a in app)
    print(f"batch (headless): {bf:.0f} env frames/s, {bu:.2f} updates/s")
    print(f"app (dashboard live): {af:.0f} env frames/s, {au:.2f} updates/s")
    print(f"ratio app/batch: frames {af / bf:.3f}, updates {au / bu:.3f} (target >= 0.95)")
    print(f"key press (p) acted on (run paused/resumed) after: median {statistics.median(LATENCIES) * 1000:.0f} ms, "
          f"max {max(LATENCIES) * 1000:.0f} ms over {len(LATENCIES)} presses (target <= 100 ms)")


if __name__ == "__main__":
    main()
