"""The Textual workaround releases the render caches of screens that are gone."""

from __future__ import annotations

import gc
import inspect
import weakref

from textual._styles_cache import StylesCache
from textual.app import App, ComposeResult
from textual.color import Color
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from mario_tui.app import MarioApp
from mario_tui.textual_fixes import PrunedFooter, release_styles_caches
from tests.polling import wait_until


class Page(Screen):
    def compose(self) -> ComposeResult:
        yield Static("a page", classes="box")
        yield Footer()


class Pages(App):
    CSS = ".box { background: $panel; border: round $primary; }"


async def test_popped_screens_render_caches_are_freed():
    assert release_styles_caches()
    gone: list[weakref.ref] = []
    app = Pages()
    async with app.run_test(size=(60, 12)) as pilot:
        for _ in range(5):
            page = Page()
            await app.push_screen(page)
            await pilot.pause()
            gone += [weakref.ref(node._styles_cache) for node in page.walk_children(with_self=True)]
            await app.pop_screen()
            await pilot.pause()
            del page
        gc.collect()
        alive = sum(ref() is not None for ref in gone)
        # Stock Textual pins every one through StylesCache.get_inner_outer's lru_cache (textual#6665).
        assert alive == 0, f"{alive} of {len(gone)} render caches of popped screens are still alive"


def test_the_app_applies_the_fix_and_it_keeps_the_results():
    MarioApp()
    assert isinstance(inspect.getattr_static(StylesCache, "get_inner_outer"), classmethod)
    inner, outer = StylesCache().get_inner_outer(Color(10, 20, 30), Color(200, 0, 0, 0.5))
    assert inner.background == Color(10, 20, 30) + Color(200, 0, 0, 0.5)
    assert outer.background == Color(10, 20, 30)


class KeysPage(Screen):
    BINDINGS = [("a", "bell", "Ring"), ("b", "bell", "Ring again")]

    def compose(self) -> ComposeResult:
        yield Static("keys")
        yield PrunedFooter()


async def test_pruned_footer_lets_go_of_the_keys_it_rebuilt():
    app = Pages()
    async with app.run_test(size=(60, 12)) as pilot:
        await app.push_screen(KeysPage())
        await pilot.pause()
        footer = app.screen.query_one(PrunedFooter)
        replaced: list[weakref.ref] = []

        def all_detached() -> bool:
            return not any(ref() is not None and ref().is_attached for ref in replaced)

        for _ in range(4):
            keys = list(footer.query(FooterKey))
            assert len(keys) >= 2
            replaced += [weakref.ref(key) for key in keys]
            del keys
            app.screen.refresh_bindings()  # what a focus change or a screen switch does: the footer rebuilds its keys
            await wait_until(pilot, all_detached, 5, "the footer to rebuild its keys")
            await pilot.pause()
        gc.collect()
        # Stock Footer keeps every rebuilt key in its `compact` watcher list (textual#6666).
        assert sum(ref() is not None for ref in replaced) == 0
        assert len(getattr(footer, "__watchers")["compact"]) <= len(footer.query(FooterKey))
