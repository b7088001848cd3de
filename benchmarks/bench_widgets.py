"""Widget costs: half-block frame rendering vs a naive per-cell baseline, and plot redraws with vs without decimation.

    uv run python benchmarks/bench_widgets.py [--rounds R] [--frames F]

Frame: real NES frames from 1-1 (random `simple` actions biased to the right) rendered at 128×60 cells by
`halfblock_strips` (numpy, merged runs, cached Styles) vs a baseline that resizes with Pillow and builds one
Segment with a fresh Style per cell. Plot: 4 series of 2,000 and of 20,000 points on a 118×38 and on a 53×19-cell
plot (the dashboard's size at 160×50). Baseline = textual-plotext (what the dashboard used before: plotext braille
lines → ANSI string → `Text.from_ansi` → strips), given the same EMA + min/max-decimated points; ours =
`chart_lines` + `render_chart` (numpy braille straight into strips). Plotext drawing every raw point is printed
too. Both alternate for R rounds in one process; medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable

import gym_super_mario_bros
import numpy as np
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from nes_py.wrappers import JoypadSpace
from PIL import Image
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.strip import Strip
from textual_plotext.plot import Plot

from mario_tui.widgets.chart_render import render_chart
from mario_tui.widgets.frame_render import _STYLE_CACHE, UPPER_HALF, fit_size, halfblock_strips
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import chart_lines
from mario_tui.widgets.series import downsample, ema

CELLS = (128, 60)
PLOT_SIZE = (118, 38)
DASHBOARD_PLOT_SIZE = (53, 19)
CONSOLE = Console(width=PLOT_SIZE[0], file=io.StringIO(), color_system="truecolor")


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


def plotext_strips(plt: Plot, lines: list[tuple[np.ndarray, np.ndarray]], size: tuple[int, int]) -> list[Strip]:
    """What textual-plotext does for a redraw: plotext braille lines, then its ANSI output parsed back into strips."""
    plt.clear_data()
    plt.plotsize(*size)
    for xs, ys in lines:
        plt.plot(xs.tolist(), ys.tolist(), marker="braille")
    text = Text.from_ansi(plt.build())
    return [Strip(line) for line in CONSOLE.render_lines(text, CONSOLE.options.update_dimensions(*size))]


def plot_raw(plt: Plot, series: dict[str, tuple[np.ndarray, np.ndarray]], size: tuple[int, int]) -> None:
    plotext_strips(plt, list(series.values()), size)


def plot_plotext(plt: Plot, series: dict[str, tuple[np.ndarray, np.ndarray]], size: tuple[int, int]) -> None:
    lines, _ = chart_lines(series, size[0])
    plotext_strips(plt, [(line.xs, line.ys) for line in lines], size)


def plot_ours(series: dict[str, tuple[np.ndarray, np.ndarray]], size: tuple[int, int]) -> None:
    lines, _ = chart_lines(series, size[0])
    render_chart(lines, *size, title="bench", xlabel="x")


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
    print("plots, 4 series each drawn raw (faint) + EMA (bold), decimated to 2 points per column:")
    for size in (PLOT_SIZE, DASHBOARD_PLOT_SIZE):
        for points in (2_000, 20_000):
            series = make_series(points, rng)
            raw_ms, plotext_ms, our_ms = [], [], []
            for _ in range(max(2, args.rounds // 2)):
                raw_ms.append(median_ms(lambda s=series, z=size: plot_raw(plt, s, z), 1))
                plotext_ms.append(median_ms(lambda s=series, z=size: plot_plotext(plt, s, z), 3))
                our_ms.append(median_ms(lambda s=series, z=size: plot_ours(s, z), 3))
            helpers = median_ms(lambda s=series, z=size: [downsample(x, ema(y, 0.05), 2 * z[0]) for x, y in s.values()],
                                20)
            r, p, d = statistics.median(raw_ms), statistics.median(plotext_ms), statistics.median(our_ms)
            print(f"  {size[0]}x{size[1]} cells, 4x{points:,} points: textual-plotext {p:.1f} ms, ours {d:.2f} ms -> "
                  f"{p / d:.1f}x cheaper (ema+downsample {helpers:.2f} ms of it); plotext with every raw point "
                  f"{r:.0f} ms")


if __name__ == "__main__":
    main()
