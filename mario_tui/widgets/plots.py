"""`MetricPlot`: training curves — raw values as a faint line under a bold EMA — cheap enough to live-update.

`set_series` stores data and schedules one redraw, at most every `interval` seconds (no polling timer: a dashboard of
four plots polling at 10 Hz woke the event loop 40 times a second for nothing), drawing only what a terminal can show:
each line decimated to ~2 points per cell column (braille resolution), keeping spikes. Drawing is numpy braille
(`chart_render.render_chart`) through the Line API rather than textual-plotext: see that module for the benchmark
behind that choice. Log scale is drawn as log10(y) with relabelled ticks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from mario_tui.widgets.chart_render import ChartLine, format_tick, render_chart
from mario_tui.widgets.series import downsample, ema

RGB = tuple[int, int, int]
PALETTE: tuple[RGB, ...] = ((66, 165, 245), (255, 167, 38), (102, 187, 106), (239, 83, 80), (171, 71, 188))


def faint(color: RGB, background: RGB, amount: float = 0.6) -> RGB:
    """`color` moved `amount` of the way towards `background`: the raw line stays visible but recedes."""
    return tuple(round(c + (b - c) * amount) for c, b in zip(color, background, strict=True))  # type: ignore[return-value]


def rgb_style(color: RGB, bold: bool = False) -> Style:
    return Style.parse(f"{'bold ' if bold else ''}rgb({color[0]},{color[1]},{color[2]})")


def with_ends(xs: np.ndarray, ys: np.ndarray, picked_x: np.ndarray, picked_y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The decimated points plus the series' first and last points, so the axis spans the whole series."""
    if picked_x[0] != xs[0]:
        picked_x, picked_y = np.insert(picked_x, 0, xs[0]), np.insert(picked_y, 0, ys[0])
    if picked_x[-1] != xs[-1]:
        picked_x, picked_y = np.append(picked_x, xs[-1]), np.append(picked_y, ys[-1])
    return picked_x, picked_y


Series = Mapping[str, tuple[np.ndarray, np.ndarray]]


def chart_lines(series: Series, width: int, *, alpha: float = 0.05, log_y: bool = False,
                background: RGB = (0, 0, 0), smooth: bool = True
                ) -> tuple[list[ChartLine], dict[str, tuple[float, float]]]:
    """Each series as two lines (raw faint, EMA bold on top), decimated to 2×`width` points; and per series its
    (last value, last EMA). Non-finite points (and non-positive ones with `log_y`) are dropped; empty series skipped.

    With `smooth=False` each series is one bold raw line, and its pair is (last value, highest value): for sparse,
    already averaged series (a greedy evaluation every few hundred updates) an EMA would only lag behind them.
    """
    n = max(2, 2 * width)
    lines: list[ChartLine] = []
    last: dict[str, tuple[float, float]] = {}
    for i, (name, (xs, ys)) in enumerate(series.items()):
        keep = np.isfinite(xs) & np.isfinite(ys)
        if log_y:
            keep &= ys > 0
        x, y = xs[keep], ys[keep]
        if not y.size:
            continue
        if log_y:
            y = np.log10(y)
        color = PALETTE[i % len(PALETTE)]
        if not smooth:
            lines.append(ChartLine(*with_ends(x, y, *downsample(x, y, n)), rgb_style(color, bold=True)))
            pair = (y[-1], y.max())
        else:
            smoothed = ema(y, alpha)
            lines.append(ChartLine(*with_ends(x, y, *downsample(x, y, n)), rgb_style(faint(color, background))))
            lines.append(ChartLine(*with_ends(x, smoothed, *downsample(x, smoothed, n)), rgb_style(color, bold=True)))
            pair = (y[-1], smoothed[-1])
        last[name] = (10 ** pair[0], 10 ** pair[1]) if log_y else pair
    return lines, last


class MetricPlot(Widget):
    """One or more named series against an index (updates, episodes), raw and EMA-smoothed."""

    DEFAULT_CSS = "MetricPlot { width: 1fr; height: 1fr; min-height: 6; min-width: 20; }"

    def __init__(self, title: str = "", *, xlabel: str = "", alpha: float = 0.05, log_y: bool = False,
                 smooth: bool = True, interval: float = 0.5, name: str | None = None, id: str | None = None,
                 classes: str | None = None, disabled: bool = False) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.title = title
        self.xlabel = xlabel
        self.alpha = alpha
        self.log_y = log_y
        self.smooth = smooth  # False: raw lines only, titled "last · best" (see `chart_lines`)
        self.interval = interval
        self.points_drawn = 0
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._dirty = True
        self._redraw_pending = False
        self.last_redraw_at = -math.inf  # time.monotonic() of the last redraw
        self._lines: list[Strip] = []

    def on_mount(self) -> None:
        self.redraw_if_dirty()

    def on_resize(self) -> None:
        self._dirty = True  # the decimation target and the canvas follow the size
        self.redraw_if_dirty()

    def set_series(self, name: str, xs: np.ndarray | None, ys: np.ndarray) -> None:
        """Store (a copy of) a series — x defaults to 0..n−1 — and mark the plot for the next timed redraw."""
        y = np.array(ys, dtype=np.float64).ravel()
        x = np.arange(y.size, dtype=np.float64) if xs is None else np.array(xs, dtype=np.float64).ravel()
        if x.size != y.size:
            raise ValueError(f"series {name!r}: {x.size} x values for {y.size} y values")
        self._series[name] = (x, y)
        self._mark_dirty()

    def set_title(self, title: str) -> None:
        """A new title (a state such as "off" or "none yet" for a plot without data); redraws only if it changed."""
        if title != self.title:
            self.title = title
            self._mark_dirty()

    def set_smoothing(self, alpha: float | None) -> None:
        """The EMA weight of the bold line (None: raw lines only, as `smooth=False`)."""
        smooth, alpha = alpha is not None, self.alpha if alpha is None else alpha
        if (smooth, alpha) != (self.smooth, self.alpha):
            self.smooth, self.alpha = smooth, alpha
            self._mark_dirty()

    def remove_series(self, name: str) -> None:
        if self._series.pop(name, None) is not None:
            self._mark_dirty()

    def clear(self) -> None:
        self._series.clear()
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        """Schedule one redraw: at once, or when `interval` has passed since the last one."""
        self._dirty = True
        if self._redraw_pending or not self.is_mounted:
            return  # a redraw is already on its way (or on_mount draws)
        self._redraw_pending = True
        wait = self.last_redraw_at + self.interval - time.monotonic()
        if wait > 0:
            self.set_timer(wait, self._scheduled_redraw)
        else:
            self.call_later(self._scheduled_redraw)

    def _scheduled_redraw(self) -> None:
        self._redraw_pending = False
        self.redraw_if_dirty()

    def redraw_if_dirty(self) -> None:
        """Redraw when data or size changed since the last redraw."""
        if self._dirty and self.size.width > 0 and self.size.height > 0:
            self.redraw()

    def redraw(self) -> None:
        self._dirty = False
        self.last_redraw_at = time.monotonic()
        base = self.rich_style
        background = base.bgcolor.get_truecolor() if base.bgcolor is not None else None
        surface: RGB = (background.red, background.green, background.blue) if background else (0, 0, 0)
        width, height = self.size
        lines, last = chart_lines(self._series, width, alpha=self.alpha, log_y=self.log_y, background=surface,
                                  smooth=self.smooth)
        y_labels = None
        if self.log_y and lines:
            low = min(float(line.ys.min()) for line in lines)
            high = max(float(line.ys.max()) for line in lines)
            y_labels = [f"{10 ** t:.3g}" for t in (high, (high + low) / 2, low)]
        self._lines = render_chart(lines, width, height, title=self._title_segments(last, base), xlabel=self.xlabel,
                                   background=base, label_style=base + Style(dim=True), y_labels=y_labels)
        self.points_drawn = sum(line.ys.size for line in lines)
        self.refresh()

    def _title_segments(self, last: dict[str, tuple[float, float]], base: Style) -> list[Segment]:
        """The title, then "last · ema" ("last · best" unsmoothed) for one series, or a coloured legend for several."""
        segments = [Segment(self.title, base + Style(bold=True))]
        if len(self._series) == 1 and last:
            value, second = next(iter(last.values()))
            label = "ema" if self.smooth else "best"
            segments.append(Segment(f"   last {format_tick(value)} · {label} {format_tick(second)}", base))
        elif len(self._series) > 1:
            for i, name in enumerate(self._series):
                segments.append(Segment(f"   ━ {name}", base + rgb_style(PALETTE[i % len(PALETTE)], bold=True)))
        return segments

    def render_line(self, y: int) -> Strip:
        if 0 <= y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.rich_style)

    def plain_text(self) -> str:
        """What the plot shows, as text (for tests and debugging)."""
        return "\n".join(strip.text for strip in self._lines)
