"""The dashboard header shows the run's state by repainting its title only."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from mario_tui.widgets.status_header import StatusHeader


class HeaderApp(App):
    def compose(self) -> ComposeResult:
        yield StatusHeader()
        with Vertical():  # its own clip region, below the header
            yield Static("body " * 400, id="body")

    def on_mount(self) -> None:
        self.title = "mario-tui — run"


async def test_status_shows_in_the_title_and_repaints_nothing_else(monkeypatch):
    app = HeaderApp()
    async with app.run_test(size=(80, 20)) as pilot:
        header = app.query_one(StatusHeader)
        header.show_status("training")
        await pilot.pause()
        rendered: set[str] = set()
        render_lines = Widget.render_lines

        def counting_render_lines(widget, crop):
            rendered.add(type(widget).__name__ if widget.id is None else widget.id)
            return render_lines(widget, crop)

        monkeypatch.setattr(Widget, "render_lines", counting_render_lines)
        header.show_status("PAUSED")
        await pilot.pause()
        await pilot.pause()
        title = str(header.query_one("HeaderTitle", Static).render())
        assert "mario-tui — run" in title and "PAUSED" in title
        assert "HeaderTitle" in rendered and "body" not in rendered  # Screen.sub_title repaints the whole screen
        assert app.screen.sub_title is None
