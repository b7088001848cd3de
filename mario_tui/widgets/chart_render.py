"""Pure braille line charts rendered straight into Textual strips (no app needed: testable and benchmarkable).

Why not plotext (textual-plotext): its renderer is pure Python per point and per cell and hands Textual an ANSI
string to parse back. `benchmarks/bench_widgets.py` measured one 53×19-cell redraw at ~12 ms with plotext
(build + ANSI round trip) against well under a millisecond here, and on a 2-core box every millisecond the
dashboard spends is taken from the workers (issue 4: app/batch throughput ≥ 0.95). This module does the same
drawing with numpy: each cell is a braille character holding 2×4 dots, line segments are rasterised vectorised,
and cells of one colour are merged into one Segment.

Layout for a `width` × `height` chart (height ≥ 5; smaller gets the canvas only):

    title  last 12.3 · ema 11.8          row 0
     15.2┤⠀⠀⡠⠊⠉⠢⡀                         plot rows, y tick labels on the left
      7.6┤⠔⠊                              …
      0.0┼────────────────────           x axis
         0       episode       1,234     x tick labels and the x label
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

BRAILLE_BASE = 0x2800
# Bit of each dot in a braille cell, indexed [row 0..3][column 0..1] (Unicode braille numbering).
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)


@dataclass(frozen=True)
class ChartLine:
    """One polyline: finite x/y values in drawing order, and how to paint it (later lines are drawn on top)."""

    xs: np.ndarray
    ys: np.ndarray
    style: Style


def format_tick(value: float) -> str:
    """Short tick label: 3 significant digits, k/M suffixes for big numbers (axis labels must stay narrow)."""
    if not math.isfinite(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def rasterise(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the straight segments joining consecutive (px, py) dots (integers), vectorised."""
    if px.size < 2:
        return px, py
    dx, dy = np.diff(px), np.diff(py)
    steps = np.maximum(np.maximum(np.abs(dx), np.abs(dy)), 1)
    segment = np.repeat(np.arange(steps.size), steps)
    offset = np.arange(segment.size) - np.repeat(np.cumsum(steps) - steps, steps)
    fraction = offset / steps[segment]
    xs = np.rint(px[segment] + dx[segment] * fraction).astype(np.intp)
    ys = np.rint(py[segment] + dy[segment] * fraction).astype(np.intp)
    return np.append(xs, px[-1]), np.append(ys, py[-1])


def _span(low: float, high: float) -> tuple[float, float]:
    """A non-empty range around [low, high] (a flat series gets ±1 or ±5 %)."""
    if high > low:
        return low, high
    pad = abs(low) * 0.05 or 1.0
    return low - pad, high + pad


def _text_row(text: str, width: int, style: Style | None) -> Strip:
    return Strip([Segment(text[:width].ljust(width), style)], width)


def render_chart(lines: Sequence[ChartLine], width: int, height: int, *, title: str | Sequence[Segment] = "",
                 xlabel: str = "",
                 background: Style | None = None, label_style: Style | None = None,
                 title_style: Style | None = None, y_labels: Sequence[str] | None = None) -> list[Strip]:
    """Exactly `height` strips of `width` cells: title, braille canvas with y ticks, x axis and x ticks.

    `title` is a string or styled segments (a legend). `y_labels` overrides the y tick texts (top, middle,
    bottom), e.g. for a log axis drawn as log10 values.
    """
    if width <= 0 or height <= 0:
        return []
    with_axes = height >= 5 and width >= 12
    lines = [line for line in lines if line.xs.size]
    if lines:
        x_low, x_high = _span(min(float(line.xs.min()) for line in lines), max(float(line.xs.max()) for line in lines))
        y_low, y_high = _span(min(float(line.ys.min()) for line in lines), max(float(line.ys.max()) for line in lines))
    else:
        x_low, x_high, y_low, y_high = 0.0, 1.0, 0.0, 1.0
    rows = height - 3 if with_axes else height
    ticks = (y_high, (y_high + y_low) / 2, y_low)
    labels = [format_tick(t) for t in ticks] if lines else ["", "", ""]  # no data: no made-up 0..1 scale
    if y_labels is not None:
        labels = list(y_labels)
    label_width = max(len(label) for label in labels) if with_axes else 0
    columns = width - label_width - 1 if with_axes else width

    # Dots → cells: OR the dot bits into each cell; a cell takes the colour of the last line that touched it.
    bits = np.zeros((rows, columns), dtype=np.uint8)
    owner = np.full((rows, columns), -1, dtype=np.intp)
    dot_w, dot_h = 2 * columns, 4 * rows
    for index, line in enumerate(lines):
        px = np.rint((line.xs - x_low) / (x_high - x_low) * (dot_w - 1)).astype(np.intp)
        py = np.rint((y_high - line.ys) / (y_high - y_low) * (dot_h - 1)).astype(np.intp)
        dx, dy = rasterise(px, py)
        cell_y, cell_x = dy // 4, dx // 2
        np.bitwise_or.at(bits, (cell_y, cell_x), DOT_BITS[dy % 4, dx % 2])
        owner[cell_y, cell_x] = index
    styles = [line.style for line in lines]

    strips: list[Strip] = []
    if with_axes:
        if isinstance(title, str):
            strips.append(_text_row(f" {title}", width, title_style))
        else:
            used = 1 + sum(segment.cell_length for segment in title)
            # No cell_length argument: a Strip told it is `width` long skips the crop of a longer title.
            strips.append(Strip([Segment(" ", title_style), *title,
                                 Segment(" " * max(width - used, 0), background)]).crop(0, width))
    tick_rows = {0: labels[0], (rows - 1) // 2: labels[1], rows - 1: labels[2]} if with_axes else {}
    # The whole canvas at once (per-row numpy calls were most of a redraw): its text as one string, and its runs of
    # cells of one owner as (row, start, end) in reading order.
    codes = np.where(bits > 0, BRAILLE_BASE + bits.astype(np.uint32), 0x20).astype("<u4")
    text = codes.tobytes().decode("utf-32-le")
    change = np.ones((rows, columns), dtype=bool)
    change[:, 1:] = owner[:, 1:] != owner[:, :-1]
    run_rows, run_starts = np.nonzero(change)
    run_ends = np.append(run_starts[1:], columns)
    run_ends[np.append(run_rows[1:] != run_rows[:-1], True)] = columns  # a row's last run ends at its edge
    run_styles = [styles[who] if who >= 0 else background for who in owner[run_rows, run_starts].tolist()]
    row_segments: list[list[Segment]] = [[] for _ in range(rows)]
    for r, start, end, style in zip(run_rows.tolist(), run_starts.tolist(), run_ends.tolist(), run_styles,
                                    strict=True):
        row_segments[r].append(Segment(text[r * columns + start:r * columns + end], style))
    for r, segments in enumerate(row_segments):
        if with_axes:
            label = tick_rows.get(r)
            axis = "┤" if label is not None else "│"
            segments.insert(0, Segment((label or "").rjust(label_width) + axis, label_style))
        strips.append(Strip(segments, width))
    if with_axes:
        strips.append(_text_row(" " * label_width + "└" + "─" * columns, width, label_style))
        left, right = format_tick(x_low), format_tick(x_high)
        room = columns - len(left) - len(right)
        middle = xlabel if xlabel and len(xlabel) + 2 <= room else ""
        gap = max(room - len(middle), 0)
        x_row = " " * (label_width + 1) + left + " " * (gap // 2) + middle + " " * (gap - gap // 2) + right
        strips.append(_text_row(x_row if lines else " " * (label_width + 1) + middle, width, label_style))
    return strips
