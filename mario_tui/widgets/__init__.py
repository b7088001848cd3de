"""Reusable widgets for the dashboard and the replay viewer: game frames, metric plots, Q-value bars."""

from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import MetricPlot
from mario_tui.widgets.q_bars import QValueBars

__all__ = ["FrameView", "MetricPlot", "QValueBars"]
