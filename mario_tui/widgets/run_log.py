"""`RunLog`: the dashboard's training.log panel, a `Log` with a line cache sized for a panel.

A run logs for hours: with the stock cache, the cached lines became thousands of live objects every paced GC pass
walked.
"""

from __future__ import annotations

from typing import Any

from textual.cache import LRUCache
from textual.widgets import Log


class RunLog(Log):
    """Log with a line-render cache sized for a panel: the stock 1,024 cached lines (each a Strip with its own
    caches, ~15 objects) made ~15k live objects once a run had logged that much, walked by every paced GC pass."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._render_line_cache = LRUCache(256)
