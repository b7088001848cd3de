"""The Textual internals this project leans on are still there: a Textual release that moves them fails here, by
name, instead of silently undoing a workaround (pyproject pins the range these were written against)."""

from __future__ import annotations

import inspect

from textual._styles_cache import StylesCache
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Log

from mario_tui.textual_fixes import release_styles_caches


def test_styles_cache_method_the_fix_rewraps():
    """textual_fixes.release_styles_caches: an lru_cache'd `get_inner_outer` (or a classmethod once fixed)."""
    current = inspect.getattr_static(StylesCache, "get_inner_outer")
    assert isinstance(current, classmethod) or (hasattr(current, "__wrapped__") and hasattr(current, "cache_clear"))
    assert release_styles_caches()


class Widgets(App):
    BINDINGS = [("x", "bell", "A key")]  # a footer key: it binds the footer's `compact`, which makes its watchers

    def compose(self) -> ComposeResult:
        yield DataTable()
        yield Log()
        yield Footer()


async def test_widget_internals_the_dashboard_uses():
    """WorkerTable (its render caches and update count), RunLog (its line cache), PrunedFooter (its watcher list),
    StatusHeader (the HeaderTitle it updates)."""
    from textual.widgets._header import HeaderTitle

    app = Widgets()
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(DataTable)
        for name in ("_update_count", "_cell_render_cache", "_row_render_cache", "_row_renderable_cache",
                     "_line_cache", "_row_locations", "_column_locations", "_clear_caches"):
            assert hasattr(table, name), f"DataTable.{name} is gone: review WorkerTable in screens/dashboard.py"
        assert hasattr(app.query_one(Log), "_render_line_cache"), "Log._render_line_cache: review RunLog"
        footer = app.query_one(Footer)
        await pilot.pause()
        assert isinstance(getattr(footer, "__watchers", None), dict), "Footer watchers moved: review PrunedFooter"
        assert HeaderTitle.__mro__[1].__name__ == "Static", "HeaderTitle: review widgets/status_header.py"
