"""`QValueBars`: one horizontal bar per action with its Q-value, the chosen action highlighted (replay viewer).

Bars are relative to the spread of the current values (min → a sliver, max → full width): Q-values of one state
are usually close together, and the ranking is what a viewer wants to see. Eighth-block characters give the bars
sub-cell resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widget import Widget

EIGHTHS = " ▏▎▍▌▋▊▉"
MIN_FRACTION = 0.05  # the lowest value still shows a sliver


def bar(fraction: float, width: int) -> str:
    """A bar `fraction` (0..1) of `width` cells long, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def fractions(values: np.ndarray) -> np.ndarray:
    """Bar lengths in [MIN_FRACTION, 1] from the values' min..max (all equal: full bars; NaN: 0)."""
    finite = np.isfinite(values)
    out = np.zeros(values.shape)
    if not finite.any():
        return out
    low, high = values[finite].min(), values[finite].max()
    if high > low:
        out[finite] = MIN_FRACTION + (1 - MIN_FRACTION) * (values[finite] - low) / (high - low)
    else:
        out[finite] = 1.0
    return out


class QValueBars(Widget):
    """Action name, value and bar per action; `update_values(names, values, chosen)` replaces them."""

    COMPONENT_CLASSES = {"qvaluebars--bar", "qvaluebars--chosen", "qvaluebars--muted"}
    DEFAULT_CSS = """
    QValueBars { height: auto; min-height: 1; padding: 0 1; }
    QValueBars > .qvaluebars--bar { color: $primary; }
    QValueBars > .qvaluebars--chosen { color: $accent; text-style: bold; }
    QValueBars > .qvaluebars--muted { color: $text-muted; }
    """

    NAME_WIDTH = 14

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.names: list[str] = []
        self.values = np.zeros(0)
        self.chosen: int | None = None

    def update_values(self, names: Sequence[str], values: Sequence[float] | np.ndarray | None,
                      chosen: int | None = None) -> None:
        """Show `values` (None or empty: names only, e.g. a model without Q-values) and highlight index `chosen`."""
        resized = len(names) != len(self.names)
        self.names = [str(n) for n in names]
        array = np.full(len(self.names), np.nan) if values is None or len(values) == 0 else (
            np.asarray(values, dtype=np.float64).ravel())
        if array.size != len(self.names):
            raise ValueError(f"{array.size} values for {len(self.names)} actions")
        self.values = array
        self.chosen = chosen if chosen is not None and 0 <= chosen < len(self.names) else None
        self.refresh(layout=resized)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self.names))

    def render(self) -> RenderResult:
        if not self.names:
            return Text("no Q-values yet", style=self.get_component_rich_style("qvaluebars--muted"))
        bar_style = self.get_component_rich_style("qvaluebars--bar")
        chosen_style = self.get_component_rich_style("qvaluebars--chosen")
        name_width = min(self.NAME_WIDTH, max(len(n) for n in self.names))
        bar_width = max(0, self.size.width - name_width - 12)  # "▶ " + name + " " + value(8) + " "
        text = Text(no_wrap=True, overflow="crop")
        for i, (name, value, fraction) in enumerate(zip(self.names, self.values, fractions(self.values),
                                                        strict=True)):
            chosen = i == self.chosen
            label = name if len(name) <= name_width else name[: name_width - 1] + "…"
            number = f"{value:+8.3f}" if math.isfinite(value) else f"{'-':>8}"
            if i:
                text.append("\n")
            text.append(f"{'▶' if chosen else ' '} {label:<{name_width}} {number} ", style=chosen_style if chosen
                        else "")
            text.append(bar(fraction, bar_width), style=chosen_style if chosen else bar_style)
        return text
