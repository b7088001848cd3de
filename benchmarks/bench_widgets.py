"""Widget costs: half-block frame rendering vs a naive per-cell baseline, and plot redraws with vs without decimation.

    uv run python benchmarks/bench_widgets.py [--rounds R] [--frames F]

Frame: real NES frames from 1-1 (random `simple` actions biased to the right) rendered at 128×60 cells by
`halfblock_strips` (numpy, merged runs, cached Styles) vs a baseline that resizes with Pillow and builds one
Segment with a fresh Style per cell. Plot: 4 series of 2,000 and of 20,000 points on a 118×38-cell plotext plot;
baseline = every raw point plotted (one line per series), ours = `draw_series` (EMA + min/max decimation to 2×
the width, raw and EMA lines). Both alternate for R rounds in one process; medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import gym_super_mario_bros
import numpy as np
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from nes_py.wrappers import JoypadSpace
from PIL import Image
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.strip import Strip
from textual_plotext.plot import Plot

from mario_tui.widgets.frame_render import _STYLE_CACHE, UPPER_HALF, fit_size, halfblock_strips
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import draw_series
from mario_tui.widgets.series import downsample, ema

CELLS = (128, 60)
PLOT_SIZE = (118, 38)


def nes_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` RGB frames spread over an episode of 1-1 (Mario running right, jumping at random)."""
    env = JoypadSpace(gym_super_mario_bros.make("SuperMarioBros-1-1-v0"), SIMPLE_MOVEMENT)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames = []
    for step in range(count * 40):
        _, _, terminated, truncated, _ = env.step(int(rng.choice([1, 2, 3, 4, 5], p=[.2, .3, .2, .2, .1])))
        if terminated or truncated:
            env.reset()
        if step % 40 == 39:
            frames.append(np.array(env.unwrapped.screen, dtype=np.uint8))
    env.close()
    return frames


def naive_strips(frame: np.ndarray, width: int, height: int) -> list[Strip]:
    """Baseline: Pillow nearest resize, then one Segment and one new Style per cell (no run merging, no cache)."""
    out_w, out_h = fit_size(frame.shape[1], frame.shape[0], width, height)
    pixels = np.asarray(Image.fromarray(frame).resize((out_w, out_h), Image.Resampling.NEAREST))
    strips = []
    for r in range(0, out_h, 2):
        top, bottom = pixels[r].tolist(), pixels[r + 1].tolist()
        strips.append(Strip([Segment(UPPER_HALF, Style(color=Color.from_rgb(*t), bgcolor=Color.from_rgb(*b)))
                             for t, b in zip(top, bottom, strict=True)]))
    return strips


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


async def widget_paint_ms(frames: list[np.ndarray], repeat: int) -> float:
    """A bordered FrameView with 128×60 content cells in a headless app: new frame → lines (styles, border) → ANSI."""

    class Host(App):
        CSS = "FrameView { border: round $primary; }"

        def compose(self) -> ComposeResult:
            yield FrameView(mode="halfblock")

    app = Host()
    async with app.run_test(size=(CELLS[0] + 2, CELLS[1] + 2)) as pilot:
        view = app.query_one(FrameView)
        await pilot.pause()
        region = Region(0, 0, *view.outer_size)
        times = []
        for i in range(repeat):
            view.update_frame(frames[i % len(frames)])
            view.refresh()
            start = time.perf_counter()
            "".join(strip.render(app.console) for strip in view.render_lines(region))
            times.append(time.perf_counter() - start)
        assert view.size == CELLS, view.size
    return statistics.median(times) * 1e3


def plot_raw(plt: Plot, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    plt.clear_data()
    for xs, ys in series.values():
        plt.plot(xs.tolist(), ys.tolist(), marker="braille")
    Text.from_ansi(plt.build())


def plot_ours(plt: Plot, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    draw_series(plt, series, PLOT_SIZE[0], title="bench")
    Text.from_ansi(plt.build())


def make_series(points: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    xs = np.arange(points, dtype=float)
    return {f"s{i}": (xs, np.cumsum(rng.normal(size=points))) for i in range(4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians are reported)")
    parser.add_argument("--frames", type=int, default=8, help="NES frames to render per round")
    args = parser.parse_args()

    frames = nes_frames(args.frames)
    colours = statistics.median(len(np.unique(f.reshape(-1, 3), axis=0)) for f in frames)
    runs = statistics.median(sum(len(s) for s in halfblock_strips(f, *CELLS)) for f in frames)
    print(f"frames: {len(frames)} NES frames 240x256 from 1-1, median {colours:.0f} colours, "
          f"{runs:.0f} merged runs per frame at {CELLS[0]}x{CELLS[1]} cells ({CELLS[0] * CELLS[1]} cells)")

    ours, cold, naive = [], [], []
    for round_ in range(args.rounds):
        _STYLE_CACHE.clear()
        cold.append(median_ms(lambda: halfblock_strips(frames[0], *CELLS), 1))
        ours.append(statistics.median(median_ms(lambda f=f: halfblock_strips(f, *CELLS), 5) for f in frames))
        naive.append(statistics.median(median_ms(lambda f=f: naive_strips(f, *CELLS), 1) for f in frames))
        print(f"round {round_ + 1}: halfblock {ours[-1]:.2f} ms (cold style cache {cold[-1]:.2f}), "
              f"naive {naive[-1]:.2f} ms", flush=True)
    o, c, n = statistics.median(ours), statistics.median(cold), statistics.median(naive)
    print(f"frame at {CELLS[0]}x{CELLS[1]}: halfblock_strips {o:.2f} ms (median; first frame with an empty style "
          f"cache {c:.2f} ms), naive per-cell baseline {n:.2f} ms -> {n / o:.1f}x faster")
    paint = asyncio.run(widget_paint_ms(frames, 20 * len(frames)))
    print(f"FrameView paint in a headless app (render_lines with border + ANSI encoding): {paint:.2f} ms per frame")

    rng = np.random.default_rng(0)
    plt = Plot()
    plt.plotsize(*PLOT_SIZE)
    print(f"plot {PLOT_SIZE[0]}x{PLOT_SIZE[1]} cells, 4 series; ours decimates each line to {2 * PLOT_SIZE[0]} points")
    for points in (2_000, 20_000):
        series = make_series(points, rng)
        raw_ms, our_ms = [], []
        for _ in range(max(2, args.rounds // 2)):
            raw_ms.append(median_ms(lambda s=series: plot_raw(plt, s), 1))
            our_ms.append(median_ms(lambda s=series: plot_ours(plt, s), 3))
        helpers = median_ms(lambda s=series: [downsample(x, ema(y, 0.05), 2 * PLOT_SIZE[0]) for x, y in s.values()],
                            20)
        r, d = statistics.median(raw_ms), statistics.median(our_ms)
        print(f"  4x{points:,}: raw redraw {r:.1f} ms, EMA+decimated redraw {d:.1f} ms (of which ema+downsample "
              f"{helpers:.2f} ms) -> {r / d:.1f}x cheaper")


if __name__ == "__main__":
    main()
