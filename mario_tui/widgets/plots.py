"""`MetricPlot`: training curves — raw values as a faint line under a bold EMA — cheap enough to live-update.

A plotext redraw costs ~30 ms per 2,000 points and grows linearly, so `set_series` only stores data; a timer
redraws at most every `interval` seconds, and only what a terminal can show: each line decimated to ~2 points per
cell column (braille resolution), keeping spikes. Everything goes through the widget's own `plt` (plotext's module
API is global state shared by every plot). Log scale is drawn as log10(y) with relabelled ticks: plotext's
`yscale("log")` raises on re-render.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from textual.color import Color
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from mario_tui.widgets.series import downsample, ema

RGB = tuple[int, int, int]
PALETTE: tuple[RGB, ...] = ((66, 165, 245), (255, 167, 38), (102, 187, 106), (239, 83, 80), (171, 71, 188))


def faint(color: RGB, background: RGB, amount: float = 0.6) -> RGB:
    """`color` moved `amount` of the way towards `background`: the raw line stays visible but recedes."""
    return tuple(round(c + (b - c) * amount) for c, b in zip(color, background, strict=True))  # type: ignore[return-value]


def draw_series(plt: Plot, series: Mapping[str, tuple[np.ndarray, np.ndarray]], width: int, *, title: str = "",
                xlabel: str = "", ylabel: str = "", alpha: float = 0.05, log_y: bool = False,
                background: RGB = (0, 0, 0)) -> int:
    """Replace `plt`'s data with each series (raw faint + EMA bold), decimated to 2×`width`; returns points drawn.

    Non-finite points (and non-positive ones with `log_y`) are dropped; empty series are skipped.
    """
    plt.clear_data()
    n = max(2, 2 * width)
    drawn, lows, highs, last = 0, [], [], ""
    for i, (name, (xs, ys)) in enumerate(series.items()):
        keep = np.isfinite(xs) & np.isfinite(ys)
        if log_y:
            keep &= ys > 0
        x, y = xs[keep], ys[keep]
        if not y.size:
            continue
        if log_y:
            y = np.log10(y)
        smooth = ema(y, alpha)
        color = PALETTE[i % len(PALETTE)]
        raw_x, raw_y = downsample(x, y, n)
        ema_x, ema_y = downsample(x, smooth, n)
        plt.plot(raw_x.tolist(), raw_y.tolist(), marker="braille", color=faint(color, background))
        plt.plot(ema_x.tolist(), ema_y.tolist(), marker="braille", color=color, style="bold",
                 label=name if len(series) > 1 else None)
        drawn += raw_y.size + ema_y.size
        lows.append(raw_y.min())
        highs.append(raw_y.max())
        value, smoothed = (10 ** y[-1], 10 ** smooth[-1]) if log_y else (y[-1], smooth[-1])
        last = f"last {value:.4g} · ema {smoothed:.4g}"
    plt.title(f"{title}   {last}" if len(series) == 1 and last else title or "")
    plt.xlabel(xlabel)
    plt.ylabel(ylabel)
    if log_y and drawn:
        ticks = np.linspace(min(lows), max(highs), 5) if max(highs) > min(lows) else np.array([min(lows)])
        plt.yticks(ticks.tolist(), [f"{10 ** t:.3g}" for t in ticks])
    return drawn


class MetricPlot(PlotextPlot):
    """One or more named series against an index (updates, episodes), raw and EMA-smoothed."""

    DEFAULT_CSS = "MetricPlot { min-height: 6; min-width: 20; }"

    def __init__(self, title: str = "", *, xlabel: str = "", ylabel: str = "", alpha: float = 0.05,
                 log_y: bool = False, interval: float = 0.5, name: str | None = None, id: str | None = None,
                 classes: str | None = None, disabled: bool = False) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.title = title
        self.xlabel = xlabel
        self.ylabel = ylabel
        self.alpha = alpha
        self.log_y = log_y
        self.interval = interval
        self.points_drawn = 0
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._dirty = True

    def on_mount(self) -> None:  # PlotextPlot's own on_mount runs too (Textual calls every class's handler)
        self.set_interval(self.interval, self.redraw_if_dirty)
        self.redraw_if_dirty()

    def on_resize(self) -> None:
        self._dirty = True  # the decimation target follows the width

    def set_series(self, name: str, xs: np.ndarray | None, ys: np.ndarray) -> None:
        """Store (a copy of) a series — x defaults to 0..n−1 — and mark the plot for the next timed redraw."""
        y = np.array(ys, dtype=np.float64).ravel()
        x = np.arange(y.size, dtype=np.float64) if xs is None else np.array(xs, dtype=np.float64).ravel()
        if x.size != y.size:
            raise ValueError(f"series {name!r}: {x.size} x values for {y.size} y values")
        self._series[name] = (x, y)
        self._dirty = True

    def remove_series(self, name: str) -> None:
        if self._series.pop(name, None) is not None:
            self._dirty = True

    def clear(self) -> None:
        self._series.clear()
        self._dirty = True

    def redraw_if_dirty(self) -> None:
        """Timer callback: redraw when data or size changed since the last redraw."""
        if self._dirty and self.size.width > 0:
            self.redraw()

    def redraw(self) -> None:
        self._dirty = False
        try:
            surface = Color.parse(self.app.theme_variables.get("surface", "black")).rgb
        except Exception:  # an unparsable theme value must not stop the plot
            surface = (0, 0, 0)
        self.points_drawn = draw_series(self.plt, self._series, self.size.width, title=self.title,
                                        xlabel=self.xlabel, ylabel=self.ylabel, alpha=self.alpha, log_y=self.log_y,
                                        background=surface)
        self.refresh()
