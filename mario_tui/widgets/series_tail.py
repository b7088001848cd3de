"""`SeriesTail`: a run's histories as plot columns, converted incrementally.

A long run holds 20k metric rows and up to 100k episodes in deques its coordinator thread appends to; re-reading
them all for every plot redraw cost milliseconds each, so only the items added since the last read are converted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def metric_value(row: dict[str, float], key: str) -> float:
    """A metric row's `key`, NaN where that update did not report it (a gap in the plot, not an error)."""
    return row.get(key, math.nan)


class SeriesTail:
    """Numeric columns of a capped history that another thread appends to (a deque), converted incrementally:
    each `update` reads only the items added since the last one (found by identity from the right)."""

    def __init__(self, x_key: str, columns: dict[str, Callable[[Any], float]], cap: int = 100_000) -> None:
        self.x_key = x_key
        self.cap = cap
        self.version = 0  # bumps when new items arrived
        self._getters = columns
        self._columns: dict[str, list[float]] = {key: [] for key in columns}
        self._last: object = None

    def update(self, history: Iterable[Any]) -> None:
        items = list(history)  # one C-level copy: the appending thread cannot change it under us
        if not items or items[-1] is self._last:
            return
        start = len(items)
        while start > 0 and items[start - 1] is not self._last:
            start -= 1
        if start == 0:  # first call, or everything we had was dropped from the history: start over
            for values in self._columns.values():
                values.clear()
        new = items[start:]
        for key, get in self._getters.items():
            values = self._columns[key]
            values.extend(float(get(item)) for item in new)
            if len(values) > self.cap:
                del values[: len(values) - self.cap]
        self._last = items[-1]
        self.version += 1

    def column(self, key: str) -> np.ndarray:
        return np.asarray(self._columns[key], dtype=np.float64)
