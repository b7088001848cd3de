"""Workarounds for Textual bugs that cost a long-lived dashboard, each removable once Textual fixes it upstream."""

from __future__ import annotations

import functools
import inspect

from textual import events
from textual._styles_cache import StylesCache
from textual.widgets import Footer, Select


def release_styles_caches() -> bool:
    """Stop `StylesCache.get_inner_outer` from keeping every widget's render cache alive.

    Textual decorates that method with `lru_cache(1024)` without `classmethod`, so each call is keyed on the
    `StylesCache` instance and the cache pins up to 1,024 of them, each holding its widget's last rendered lines
    (Strips with their own caches): https://github.com/Textualize/textual/issues/6665 (open). Every screen switch
    makes new ones (the footer rebuilds its keys), so with the dashboard live the heap of live objects grew by
    ~400 objects/s, and the app's paced full GC passes, which walk all of them, grew from ~10 to 100+ ms: a key
    press landing on one waited that long. The method's body reads only its two colour arguments, so caching it
    per class, as its `cls` parameter says was meant, gives the same results. Returns whether the fix is in place.
    """
    current = inspect.getattr_static(StylesCache, "get_inner_outer")
    if isinstance(current, classmethod):
        return True  # already fixed (here or upstream)
    original = getattr(current, "__wrapped__", None)
    if original is None or not hasattr(current, "cache_clear"):
        return False  # Textual changed the method: nothing of this workaround applies
    StylesCache.get_inner_outer = classmethod(functools.lru_cache(1024)(original))  # type: ignore[method-assign]
    return True


class PrunedFooter(Footer):
    """Footer that lets go of the keys it replaced.

    Each `FooterKey` binds to the footer's `compact` reactive (`data_bind`), which stores the key in the footer's
    watcher list. Textual prunes that list of removed widgets only when `compact` changes, which it never does
    here, while the footer rebuilds all its keys whenever the bindings change (every screen switch, focus change):
    https://github.com/Textualize/textual/issues/6666 (open). The dead keys, with their render caches, then stay
    alive for the life of the screen, for every paced GC pass to walk. This prunes the list after each rebuild.
    """

    async def recompose(self) -> None:
        await super().recompose()
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, callback) for node, callback in watchers if not (node._closing or node._closed)]


class TeardownSafeSelect(Select):
    """A Select that tolerates being mounted after its own children were pruned.

    Select's `_on_mount` queries its overlay child unguarded. When the app exits while a batch of Launch form rows
    is still mounting, the screen's teardown can remove a new Select's children before its Mount is handled, and
    the NoMatches from that query crashed the exit (seen in the wheel test's teardown). With no children there is
    nothing to set up, so the mount handlers are skipped; otherwise Select's own runs unchanged.
    """

    def _on_mount(self, event: events.Mount) -> None:
        if not self.children:
            event.prevent_default()
