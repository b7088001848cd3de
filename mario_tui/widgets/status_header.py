"""A Header that shows the run's state ("training", "PAUSED", …) without repainting the whole screen."""

from __future__ import annotations

from textual.content import Content
from textual.css.query import NoMatches
from textual.events import Mount
from textual.screen import Screen
from textual.widget import NoScreen, Widget
from textual.widgets import Header, Static


class StatusHeader(Header):
    """`Header` whose sub-title is the run's state, set with `show_status`.

    Setting `Screen.sub_title` instead repaints the *whole* screen (it is a repaint reactive on the screen) and then
    the title in later frames: 13-18 ms of CPU on the dashboard per change, measured, most of a pause key press's
    repaint. This repaints the one-line title only.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._status: str | None = None

    @property
    def status(self) -> str | None:
        return self._status

    def _on_mount(self, event: Mount) -> None:
        """Header's own title watchers, minus their crash: a title change that lands while the header is being
        removed (the app quitting as a screen changes) finds no HeaderTitle and raised NoMatches from Textual."""
        Widget._on_mount(self, event)
        event.prevent_default()  # Header._on_mount would add its unguarded watchers
        screen: Screen = self.screen
        for node, name in ((self.app, "title"), (self.app, "sub_title"), (screen, "title"), (screen, "sub_title")):
            self.watch(node, name, self._refresh_title)

    def _refresh_title(self) -> None:
        self._update_title(layout=True)

    def _update_title(self, layout: bool) -> None:
        """Repaint the title line; nothing when the header's title child is already gone."""
        try:
            # HeaderTitle is a Static (private class in textual.widgets._header): select it by its type name.
            self.query_one("HeaderTitle", Static).update(self.format_title(), layout=layout)
        except (NoMatches, NoScreen):
            pass

    def show_status(self, status: str) -> None:
        if status == self._status:
            return
        self._status = status
        if self.is_mounted:
            self._update_title(layout=False)  # the title line has a fixed size

    def format_title(self) -> Content:
        sub_title = self._status if self._status is not None else self.screen_sub_title
        return self.app.format_title(self.screen_title, sub_title)
