"""Pure helpers: half-block rendering, scaling, EMA and decimation (no app)."""

from __future__ import annotations

import numpy as np
import pytest
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

from mario_tui.widgets.chart_render import ChartLine, format_tick, rasterise, render_chart
from mario_tui.widgets.frame_render import UPPER_HALF, fit_size, halfblock_strips, scale_indices
from mario_tui.widgets.q_bars import bar, fractions
from mario_tui.widgets.series import downsample, ema

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def cells(strip) -> list[tuple[str, tuple | None, tuple | None]]:
    """(char, fg rgb, bg rgb) per cell of a strip."""
    out = []
    for segment in strip:
        style = segment.style
        fg = style.color.triplet if style and style.color else None
        bg = style.bgcolor.triplet if style and style.bgcolor else None
        out.extend((ch, tuple(fg) if fg else None, tuple(bg) if bg else None) for ch in segment.text)
    return out


def test_halfblock_top_pixel_is_foreground_and_bottom_pixel_is_background():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[0] = RED  # row 0 (top of cell row 0)
    frame[1] = GREEN  # row 1 (bottom of cell row 0)
    frame[2, :2], frame[2, 2:] = BLUE, WHITE
    frame[3] = RED
    strips = halfblock_strips(frame, 4, 2)
    assert len(strips) == 2 and all(s.cell_length == 4 for s in strips)
    assert cells(strips[0]) == [(UPPER_HALF, RED, GREEN)] * 4
    assert cells(strips[1]) == [(UPPER_HALF, BLUE, RED)] * 2 + [(UPPER_HALF, WHITE, RED)] * 2


def test_runs_of_equal_cells_are_merged_into_one_segment():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[2, :2], frame[2, 2:] = BLUE, WHITE
    strips = halfblock_strips(frame, 4, 2)
    assert [len(s) for s in strips] == [1, 2]  # uniform row: one segment; two colour pairs: two
    assert [seg.text for seg in strips[1]] == [UPPER_HALF * 2] * 2


def test_margins_use_the_background_and_every_strip_is_full_width():
    frame = np.full((240, 256, 3), 90, np.uint8)
    strips = halfblock_strips(frame, 100, 40)  # wider than the aspect allows: side margins
    assert len(strips) == 40 and {s.cell_length for s in strips} == {100}
    row = cells(strips[20])
    assert row[0][0] == " " and row[50] == (UPPER_HALF, (90, 90, 90), (90, 90, 90)) and row[-1][0] == " "
    assert halfblock_strips(frame, 0, 10) == [] and halfblock_strips(frame, 10, 0) == []


def test_grey_frames_render_like_rgb():
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    assert [cells(s) for s in halfblock_strips(grey, 4, 2)] == [cells(s) for s in halfblock_strips(rgb, 4, 2)]


@pytest.mark.parametrize(("cells_w", "cells_h"), [(128, 60), (200, 60), (128, 100), (64, 30), (37, 11), (300, 20)])
def test_scaling_keeps_the_aspect_ratio_and_fits(cells_w, cells_h):
    width, height = fit_size(256, 240, cells_w, cells_h)
    assert width <= cells_w and height <= 2 * cells_h and height % 2 == 0
    assert width == cells_w or height // 2 >= cells_h - 1  # one side is (nearly) full
    assert width / height == pytest.approx(256 / 240, rel=0.06)


def test_nes_frame_at_128x60_is_exactly_half_size_and_indices_are_cached():
    assert fit_size(256, 240, 128, 60) == (128, 120)
    rows, cols = scale_indices(240, 256, 120, 128)
    assert rows.tolist() == list(range(1, 240, 2)) and cols.tolist() == list(range(1, 256, 2))
    assert scale_indices(240, 256, 120, 128)[0] is rows


def test_ema_matches_hand_values():
    assert ema(np.array([1.0, 2.0, 3.0, 4.0]), 0.5).tolist() == [1.0, 1.5, 2.25, 3.125]
    assert ema(np.array([10.0, 0.0, 0.0]), 0.1) == pytest.approx([10.0, 9.0, 8.1])
    assert ema(np.array([]), 0.3).size == 0
    assert ema(np.array([1.0, 5.0]), 1.0).tolist() == [1.0, 5.0]
    with pytest.raises(ValueError):
        ema(np.ones(3), 0.0)


@pytest.mark.parametrize("alpha", [0.9, 0.3, 0.01, 1e-4])
def test_ema_long_series_matches_the_recursion(alpha):
    rng = np.random.default_rng(0)
    x = rng.normal(size=50_000) * 100 + 1e3
    expected = np.empty_like(x)
    expected[0] = x[0]
    for t in range(1, x.size):
        expected[t] = alpha * x[t] + (1 - alpha) * expected[t - 1]
    assert np.allclose(ema(x, alpha), expected, rtol=1e-9, atol=1e-9)


def test_downsample_keeps_spikes_order_and_bound():
    rng = np.random.default_rng(1)
    xs = np.arange(20_000, dtype=float)
    ys = rng.normal(size=20_000)
    ys[1234], ys[17_777] = 50.0, -60.0
    for n in (2, 3, 100, 237, 1000):
        dx, dy = downsample(xs, ys, n)
        assert dx.size == dy.size <= n
        assert dy.max() == 50.0 and dy.min() == -60.0
        assert np.all(np.diff(dx) > 0)  # in x order, no duplicates
        assert np.array_equal(ys[dx.astype(int)], dy)  # real points, not averages


def test_downsample_returns_short_series_unchanged():
    xs, ys = np.arange(5.0), np.arange(5.0) ** 2
    dx, dy = downsample(xs, ys, 10)
    assert np.array_equal(dx, xs) and np.array_equal(dy, ys)
    assert downsample(np.array([]), np.array([]), 10)[0].size == 0
    with pytest.raises(ValueError):
        downsample(np.arange(3.0), np.arange(4.0), 2)


def test_q_bar_lengths():
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "" and bar(0.5, 3) == "█▌"
    f = fractions(np.array([1.0, 2.0, np.nan, 3.0]))
    assert f[0] == pytest.approx(0.05) and f[1] == pytest.approx(0.525) and f[2] == 0 and f[3] == 1
    assert fractions(np.array([2.0, 2.0])).tolist() == [1.0, 1.0]


def test_style_colours_are_truecolor():
    strip = halfblock_strips(np.full((2, 2, 3), 7, np.uint8), 2, 1)[0]
    assert list(strip)[0].style.color == Color.from_rgb(7, 7, 7)


def test_rasterise_joins_dots_without_gaps():
    xs, ys = rasterise(np.array([0, 10, 10]), np.array([0, 3, -5]))
    assert (xs[0], ys[0]) == (0, 0) and (xs[-1], ys[-1]) == (10, -5)
    steps = np.maximum(np.abs(np.diff(xs)), np.abs(np.diff(ys)))
    assert steps.max() <= 1  # every dot touches the next one: a continuous line


def test_chart_braille_dots_layout_and_colour_order():
    red, blue = Style(color="rgb(255,0,0)"), Style(color="rgb(0,0,255)")
    flat_top = ChartLine(np.array([0.0, 9.0]), np.array([1.0, 1.0]), red)
    diagonal = ChartLine(np.array([0.0, 9.0]), np.array([0.0, 1.0]), blue)
    strips = render_chart([flat_top, diagonal], 30, 8, title="t", xlabel="x")
    assert len(strips) == 8 and all(strip.cell_length == 30 for strip in strips)
    assert strips[0].text.startswith(" t")
    canvas = [strip.text[strip.text.index(c) + 1:] for strip in strips[1:6] for c in "┤│" if c in strip.text]
    assert len(canvas) == 5
    # The flat line at the maximum lights the top dot row of every cell of the first canvas row (dots 1 and 4)...
    assert len(canvas[0]) == 30 - len("0.5┤") and all((ord(ch) - 0x2800) & 0x09 == 0x09 for ch in canvas[0])
    # ... and the diagonal, drawn last, owns (colours) the cell it shares with it at the top right.
    top_right = [seg for seg in strips[1] if seg.text.strip() and seg.text[-1] == strips[1].text[-1]][-1]
    assert top_right.style == blue
    assert strips[-1].text.split() == ["0", "x", "9"]  # x ticks and the label
    assert "1┤" in strips[1].text and "0┤" in strips[5].text


def test_chart_handles_empty_flat_and_tiny_sizes():
    empty = render_chart([], 20, 6, title="empty", xlabel="update")
    assert len(empty) == 6 and all(strip.cell_length == 20 for strip in empty)
    assert empty[0].text.startswith(" empty") and "update" in empty[-1].text
    assert not any(ch.isdigit() for strip in empty for ch in strip.text)  # no 0..1 scale made up for no data
    flat = ChartLine(np.arange(5.0), np.full(5, 3.0), Style())
    strips = render_chart([flat], 20, 6)
    assert any(chr(0x2800) < ch <= chr(0x28FF) for strip in strips for ch in strip.text)
    assert [strip.cell_length for strip in render_chart([flat], 6, 3)] == [6, 6, 6]  # canvas only
    assert render_chart([flat], 0, 5) == []
    # A legend title wider than the plot is cut at its edge (it overdrew the next widget at 120 columns).
    legend = [Segment("x position per episode"), Segment("   last 1155 · ema 711")]
    top = render_chart([flat], 40, 6, title=legend)[0]
    assert top.cell_length == 40 and len(top.text) == 40 and top.text.endswith("last 1155 · em")


def test_tick_labels_stay_short():
    assert [format_tick(v) for v in (0, 0.00123, 1.5, 250.4, 12_345, 3_400_000, float("nan"))] == [
        "0", "0.00123", "1.5", "250", "12.3k", "3.4M", "-"]
