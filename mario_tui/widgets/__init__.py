"""Widgets of the dashboard and the replay viewer: game frames, metric plots, Q-value bars, the worker table, the
coordinator panel, the log panel and the incremental history reader the plots draw from.

The names are imported on first use (PEP 562), so that importing one submodule (the graphics probe, before the
first paint) does not import the others and numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"CoordinatorPanel": "coordinator_panel", "FrameView": "frame_view", "MetricPlot": "plots",
          "QValueBars": "q_bars", "RunLog": "run_log", "SeriesTail": "series_tail", "WorkerTable": "worker_table"}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
