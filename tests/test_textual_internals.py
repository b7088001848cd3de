"""The Textual internals this project leans on are still there: a Textual release that moves them fails here, by
name, instead of silently undoing a workaround (pyproject pins the range these were written against)."""

from __future__ import annotations

import inspect

import pytest
from textual._styles_cache import StylesCache
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Log, Select
from textual.widgets._select import SelectCurrent

from mario_tui.textual_fixes import TeardownSafeSelect, release_styles_caches


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
            assert hasattr(table, name), f"DataTable.{name} is gone: review WorkerTable in widgets/worker_table.py"
        assert hasattr(app.query_one(Log), "_render_line_cache"), "Log._render_line_cache: review RunLog"
        footer = app.query_one(Footer)
        await pilot.pause()
        assert isinstance(getattr(footer, "__watchers", None), dict), "Footer watchers moved: review PrunedFooter"
        assert HeaderTitle.__mro__[1].__name__ == "Static", "HeaderTitle: review widgets/status_header.py"


class ChildlessSelect(Select):
    """A Select mounted with no children, as one is when the app's teardown prunes them before its Mount."""

    def compose(self) -> ComposeResult:
        return iter(())


class ChildlessTeardownSafeSelect(ChildlessSelect, TeardownSafeSelect):
    pass


class OneSelect(App):
    def __init__(self, select_type: type[Select]) -> None:
        super().__init__()
        self.select_type = select_type

    def compose(self) -> ComposeResult:
        yield self.select_type([("a", "a"), ("b", "b")], value="a", allow_blank=False)


async def test_select_mounted_without_children_crashes_textual_but_not_the_teardown_safe_select():
    """The race TeardownSafeSelect guards: Select's own mount handler raises on a childless Select (if Textual stops
    doing so, the workaround can go); ours mounts it quietly and works normally when children are there."""
    with pytest.raises(NoMatches):
        async with OneSelect(ChildlessSelect).run_test() as pilot:
            await pilot.pause()
    async with OneSelect(ChildlessTeardownSafeSelect).run_test() as pilot:
        await pilot.pause()
    async with OneSelect(TeardownSafeSelect).run_test() as pilot:
        await pilot.pause()
        select = pilot.app.query_one(Select)
        select.value = "b"
        await pilot.pause()
        assert select.query_one(SelectCurrent).query_one("#label").render().plain == "b"
