"""The widgets mounted in a tiny headless app (pilot tests)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.widget import Widget

from mario_tui.widgets.frame_render import UPPER_HALF, halfblock_strips
from mario_tui.widgets.frame_view import FrameView, resolve_mode
from mario_tui.widgets.plots import MetricPlot
from mario_tui.widgets.q_bars import QValueBars
from tests.polling import wait_until


class OneWidget(App):
    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def make_frame(seed: int = 0) -> np.ndarray:
    frame = np.zeros((240, 256, 3), np.uint8)
    frame[:120] = (92, 148, 252)  # sky
    frame[120:] = (200, 76, 12)  # ground
    frame[100:140, 100:120] = np.random.default_rng(seed).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    return frame


def screen_text(view: Widget) -> str:
    return "\n".join(view.render_line(y).text for y in range(view.size.height))


async def test_frame_view_renders_coloured_half_blocks_after_update_frame():
    view = FrameView()
    async with OneWidget(view).run_test(size=(100, 40)) as pilot:
        assert view.active_mode == "halfblock"  # auto is half blocks headless
        assert "waiting for a frame" in screen_text(view)
        view.update_frame(make_frame())
        await pilot.pause()
        width, height = view.size
        strips = [view.render_line(y) for y in range(height)]
        assert {s.cell_length for s in strips} == {width}
        coloured = [seg for s in strips for seg in s if UPPER_HALF in seg.text]
        assert coloured and all(seg.style.color and seg.style.bgcolor for seg in coloured)
        assert {seg.style.color.triplet for seg in coloured} >= {(92, 148, 252), (200, 76, 12)}
        assert sum(seg.cell_length for seg in coloured) >= 0.9 * width * height * 0.9  # fills one side


async def test_a_new_frame_repaints_only_the_rows_that_changed_and_matches_a_full_render():
    view = FrameView()
    async with OneWidget(view).run_test(size=(100, 40)) as pilot:
        first = make_frame()
        view.update_frame(first)
        await pilot.pause()
        width, height = view.size
        second = first.copy()
        second[200:208, 40:60] = (0, 200, 0)  # a small change near the bottom: a few cell rows
        view.update_frame(second)
        await pilot.pause()
        assert 0 < view.rows_repainted <= 3
        full = halfblock_strips(second, width, height, view.visual_style.rich_style)
        assert [view.render_line(y).text for y in range(height)] == [strip.text for strip in full]
        assert [list(view.render_line(y)) for y in range(height)] == [list(strip) for strip in full]
        view.update_frame(second.copy())  # identical content: nothing to repaint
        await pilot.pause()
        assert view.rows_repainted == 0


async def test_frame_view_follows_resizes_and_accepts_frames_from_threads():
    view = FrameView()
    async with OneWidget(view).run_test(size=(100, 40)) as pilot:
        thread = threading.Thread(target=view.update_frame, args=(make_frame(1),))
        thread.start()
        thread.join()
        await pilot.pause()
        assert UPPER_HALF in screen_text(view)
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert view.size == (60, 20)
        assert {view.render_line(y).cell_length for y in range(20)} == {60}


async def test_frame_view_off_mode_shows_placeholder_and_can_be_switched():
    view = FrameView(mode="off")
    async with OneWidget(view).run_test(size=(100, 40)) as pilot:
        view.update_frame(make_frame())
        await pilot.pause()
        assert view.active_mode == "off" and "preview off" in screen_text(view)
        assert UPPER_HALF not in screen_text(view)
        view.mode = "halfblock"
        await pilot.pause()
        assert view.active_mode == "halfblock" and UPPER_HALF in screen_text(view)
        with pytest.raises(ValueError):
            view.mode = "ascii-art"


def test_frame_view_rejects_bad_frames_and_modes():
    view = FrameView()
    with pytest.raises(ValueError):
        view.update_frame(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        view.update_frame(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        FrameView(mode="png")


def test_graphics_modes_fall_back_to_half_blocks_without_a_probe():
    for mode in ("auto", "sixel", "kitty"):
        assert resolve_mode(mode, headless=True) == "halfblock"
        assert resolve_mode(mode, headless=False) == "halfblock"
    assert resolve_mode("off", headless=True) == "off"


async def test_metric_plot_redraws_with_data_nans_and_nothing():
    plot = MetricPlot(title="episode reward", xlabel="episode", interval=0.05)
    async with OneWidget(plot).run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert plot.points_drawn == 0  # empty: axes and title only
        rng = np.random.default_rng(0)
        ys = np.cumsum(rng.normal(size=20_000))
        plot.set_series("reward", np.arange(ys.size), ys)
        plot.redraw()
        assert 0 < plot.points_drawn <= 2 * 2 * 2 * plot.size.width  # raw + EMA, each ≤ 2 points per column
        assert "episode reward" in plot.plain_text() and "episode" in plot.plain_text().splitlines()[-1]
        ys[::3] = np.nan
        plot.set_series("reward", None, ys)
        plot.set_series("other", np.arange(3), np.array([np.nan, np.inf, np.nan]))  # nothing finite
        plot.redraw()
        assert plot.points_drawn > 0
        plot.clear()
        plot.set_series("reward", [], [])
        plot.redraw()
        assert plot.points_drawn == 0
        assert "episode reward" in plot.plain_text()


async def test_metric_plot_redraws_once_per_change_at_most_every_interval():
    plot = MetricPlot(title="loss", log_y=True, interval=0.4)
    async with OneWidget(plot).run_test(size=(100, 40)) as pilot:
        plot.set_series("loss", np.arange(500), np.exp(-np.arange(500) / 100) + 1e-3)
        assert plot.points_drawn == 0  # stored only: the redraw is scheduled, not done inline
        await wait_until(pilot, lambda: plot.points_drawn > 0, 10, "the redraw")
        first = plot.last_redraw_at
        rendered = plot.plain_text()
        assert "loss" in rendered and "0.00781┤" in rendered  # log axis with relabelled ticks
        plot.points_drawn = -1
        await pilot.pause(0.1)
        assert plot.points_drawn == -1  # nothing changed: no redraw
        for end in (300, 400):  # two changes inside one interval: one redraw, after the interval
            plot.set_series("loss", np.arange(end), np.exp(-np.arange(end) / 100) + 1e-3)
        await wait_until(pilot, lambda: plot.points_drawn > 0, 10, "the redraw")
        assert plot.last_redraw_at - first >= 0.4
        plot.points_drawn = -1
        await pilot.pause(0.5)
        assert plot.points_drawn == -1  # both changes were drawn by that one redraw


async def test_q_value_bars_show_names_values_and_the_chosen_action():
    bars = QValueBars()
    async with OneWidget(bars).run_test(size=(100, 40)) as pilot:
        assert "no Q-values" in str(bars.render())
        names = ["NOOP", "right", "right+A", "right+B", "right+A+B", "A", "left"]
        bars.update_values(names, np.linspace(-0.2, 0.6, len(names)), chosen=2)
        await pilot.pause()
        assert bars.size.height == len(names)
        lines = str(bars.render()).splitlines()
        assert [line.split()[0 if i != 2 else 1] for i, line in enumerate(lines)] == names
        assert lines[2].startswith("▶") and "+0.067" in lines[2]
        assert lines[-1].count("█") > lines[0].count("█")
        bars.update_values(names[:3], None, chosen=None)  # no Q-values (another model): names only
        await pilot.pause()
        assert bars.size.height == 3 and "NOOP" in str(bars.render())


async def test_sixel_mode_uses_textual_image_when_probed(monkeypatch):
    pytest.importorskip("textual_image")
    from mario_tui.widgets import graphics_probe

    monkeypatch.setattr(graphics_probe, "_graphics_ok", graphics_probe._graphics_ok)  # restored after the test
    monkeypatch.setattr(graphics_probe, "_best", graphics_probe._best)
    graphics_probe.probe_graphics()  # no TTY under pytest: textual-image reports no graphics, but loads
    assert resolve_mode("auto", headless=True) == "halfblock"
    assert resolve_mode("kitty", headless=True) == "halfblock"  # would write to the real stdout
    view = FrameView(mode="sixel")
    async with OneWidget(view).run_test(size=(100, 40)) as pilot:
        assert view.active_mode == "sixel"
        view.update_frame(make_frame())
        image = view.query_one(".-graphics")
        await wait_until(pilot, lambda: image.image is not None, 10, "the frame handed to the sixel widget")
        assert image.image.size == (256, 240)
        view.mode = "halfblock"
        await pilot.pause()
        assert not view.query(".-graphics") and UPPER_HALF in screen_text(view)


async def test_an_unsmoothed_plot_draws_its_points_as_one_line_titled_last_and_best():
    """The greedy-eval plot: a few already averaged points, where an EMA would only lag behind."""
    plot = MetricPlot(title="greedy eval x", xlabel="update", smooth=False, interval=0.05)
    async with OneWidget(plot).run_test(size=(80, 12)) as pilot:
        plot.set_series("x_mean", np.array([500, 1000, 1500]), np.array([412.0, 455.0, 430.0]))
        await wait_until(pilot, lambda: plot.points_drawn == 3, 10, "the three points, one line")
        assert plot.plain_text().splitlines()[0].startswith(" greedy eval x   last 430 · best 455")
        plot.set_title("greedy eval x   off")
        await wait_until(pilot, lambda: "greedy eval x   off" in plot.plain_text(), 10, "the new title")
        redrawn = plot.last_redraw_at
        plot.set_title("greedy eval x   off")  # the same title: no redraw
        await pilot.pause(0.2)
        assert plot.last_redraw_at == redrawn
