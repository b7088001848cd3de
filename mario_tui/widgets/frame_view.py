"""`FrameView`: a game frame in colour — half-block cells everywhere, sixel/kitty graphics where the terminal has them.

Half-block mode uses the Line API with strips cached per (frame, size, style), so a repaint for another reason costs
nothing. A new frame of the same size rebuilds and repaints only the cell rows that changed: the sky, the HUD and
anything not scrolling stay as they were, which saves Textual most of its per-line work (and garbage).
Graphics modes need the optional `textual-image` package and a terminal probe that must run before the App starts
(Textual owns stdin afterwards): call `probe_graphics()` before `App.run()`. Without that, or headless, they fall
back to half blocks.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget

from mario_tui.widgets import graphics_probe
from mario_tui.widgets.frame_render import cell_rows_strips, halfblock_cells, placed_strips
from mario_tui.widgets.graphics_probe import probe_graphics

__all__ = ["FrameView", "probe_graphics", "resolve_mode"]

log = logging.getLogger(__name__)

MODES = ("auto", "halfblock", "sixel", "kitty", "off")
GRAPHICS_MODES = ("sixel", "kitty")


def resolve_mode(mode: str, headless: bool) -> str:
    """The mode actually shown for a requested `mode`.

    Graphics need `probe_graphics()` to have succeeded; `auto` is half blocks headless (tests), and so is kitty
    (textual-image's kitty widget writes escape codes to the real stdout; headless sixel renders nothing, harmlessly).
    A forced sixel/kitty is honoured even when the probe did not report it (tmux passthrough answers no probe).
    """
    if mode in ("off", "halfblock"):
        return mode
    if not graphics_probe.probed():
        return "halfblock"
    if mode == "auto":
        return "halfblock" if headless else graphics_probe.best()
    if headless and mode == "kitty":
        return "halfblock"
    return mode


class FrameView(Widget):
    """Shows the latest RGB frame (H×W×3 uint8) scaled to fit, aspect kept, centred."""

    DEFAULT_CSS = """
    FrameView {
        width: 1fr;
        height: 1fr;
        min-height: 4;
        background: $surface;
        align: center middle;
    }
    FrameView > .-graphics { width: auto; height: auto; }
    """

    mode: reactive[str] = reactive("auto", init=False)
    """Requested mode: auto, halfblock, sixel, kitty or off. `active_mode` says what is shown."""

    graphics_fps: float = 4.0
    """Graphics modes encode on the event loop (sixel: 50–100 ms a frame), so they show at most this rate."""

    def __init__(self, mode: str = "auto", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.set_reactive(FrameView.mode, self.validate_mode(mode))
        self.active_mode = "halfblock" if mode != "off" else "off"
        self._frame: np.ndarray | None = None
        self._image_widget: Widget | None = None
        self._shown: np.ndarray | None = None  # the frame handed to the graphics widget
        self._graphics_timer: Timer | None = None  # runs only while a graphics widget shows the frame
        self._cache_frame: np.ndarray | None = None
        self._cache_key: tuple[Any, ...] | None = None
        self._cache_lines: list[Strip] = []
        self._cache_cells: np.ndarray | None = None  # packed colour pairs behind the cached half-block lines
        self._cache_origin = (0, 0)  # (left, top) of the image inside the widget
        self.rows_repainted = 0  # cell rows rebuilt by the last incremental update (tests, benchmarks)

    def validate_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown preview mode {mode!r}: choose one of {', '.join(MODES)}")
        return mode

    def on_mount(self) -> None:
        self._apply_mode()

    def watch_mode(self) -> None:
        if self.is_mounted:
            self._apply_mode()

    @property
    def frame(self) -> np.ndarray | None:
        """The latest frame (a private copy), or None before the first one."""
        return self._frame

    def update_frame(self, frame: np.ndarray) -> None:
        """Show `frame` (H×W×3 or H×W uint8). Safe from any thread: it stores a copy and schedules a repaint."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
            raise ValueError(f"expected an H×W×3 or H×W uint8 frame, got {frame.dtype} {frame.shape}")
        self._frame = frame.copy()  # the caller may reuse its buffer (shared memory, a replay list)
        self.call_later(self._show_new_frame)  # post_message underneath: thread-safe, and a no-op once closed

    # --- modes ---------------------------------------------------------------------------------------
    def _apply_mode(self) -> None:
        active = resolve_mode(self.mode, self.app.is_headless)
        if active in GRAPHICS_MODES and self._image_widget is not None and active == self.active_mode:
            return
        if self._image_widget is not None:
            self._image_widget.remove()
            self._image_widget = None
        if active in GRAPHICS_MODES:
            try:
                self._image_widget = self._make_image_widget(active)
            except Exception:  # a broken optional dependency must not take the dashboard down
                log.exception("graphics preview %s unavailable, using half blocks", active)
                active = "halfblock"
            else:
                self._shown = None
                self.mount(self._image_widget)
        if self._image_widget is not None and self._graphics_timer is None:
            self._graphics_timer = self.set_interval(1.0 / self.graphics_fps, self._flush_graphics)
        elif self._image_widget is None and self._graphics_timer is not None:
            self._graphics_timer.stop()
            self._graphics_timer = None
        self.active_mode = active
        self.refresh()

    @staticmethod
    def _make_image_widget(mode: str) -> Widget:
        from textual_image.widget import SixelImage, TGPImage

        widget_class = SixelImage if mode == "sixel" else TGPImage
        return widget_class(classes="-graphics")

    def _flush_graphics(self) -> None:
        """Hand the latest frame to the graphics widget (timer: graphics encode on the loop, so rate-limited)."""
        frame = self._frame
        if self._image_widget is None or frame is None or frame is self._shown:
            return
        from PIL import Image

        self._shown = frame
        self._image_widget.image = Image.fromarray(frame)  # type: ignore[attr-defined]

    def _show_new_frame(self) -> None:
        """Repaint for a new frame: only the changed cell rows when the cached lines are for the same size/style."""
        frame = self._frame
        width, height = self.size
        key = (self.active_mode, width, height, self.visual_style.rich_style)
        if (frame is None or self.active_mode != "halfblock" or key != self._cache_key or self._cache_cells is None
                or frame is self._cache_frame):
            self.refresh()
            return
        cells, left, top = halfblock_cells(frame, width, height)
        if cells.shape != self._cache_cells.shape or (left, top) != self._cache_origin:
            self.refresh()
            return
        changed = np.flatnonzero((cells != self._cache_cells).any(axis=1)).tolist()
        lines = list(self._cache_lines)
        for row, strip in zip(changed, cell_rows_strips(cells[changed], width, left, key[3]), strict=True):
            lines[top + row] = strip
        self._cache_frame, self._cache_cells, self._cache_lines = frame, cells, lines
        self.rows_repainted = len(changed)
        regions: list[Region] = []  # one per run of consecutive changed rows
        for row in changed:
            if regions and regions[-1].bottom == top + row:
                regions[-1] = regions[-1].grow((0, 0, 1, 0))
            else:
                regions.append(Region(0, top + row, width, 1))
        if regions:
            self.refresh(*regions)

    # --- Line API ------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        lines = self._lines()
        return lines[y] if 0 <= y < len(lines) else Strip.blank(self.size.width, self.visual_style.rich_style)

    def _lines(self) -> list[Strip]:
        """All content lines, rebuilt only when the frame, size, mode or style changed."""
        width, height = self.size
        frame = self._frame  # one read: another thread may replace it meanwhile
        background = self.visual_style.rich_style
        key = (self.active_mode, width, height, background)
        if frame is self._cache_frame and key == self._cache_key:
            return self._cache_lines
        self._cache_cells = None
        if self.active_mode == "halfblock" and frame is not None and width > 0 and height > 0:
            cells, left, top = halfblock_cells(frame, width, height)
            lines = placed_strips(cells, width, height, left, top, background)
            self._cache_cells, self._cache_origin = cells, (left, top)
        elif self.active_mode in GRAPHICS_MODES:
            lines = []  # the child image widget covers us
        else:
            text = "preview off" if self.active_mode == "off" else "waiting for a frame…"
            lines = self._placeholder(text, width, height, background)
        self._cache_frame, self._cache_key, self._cache_lines = frame, key, lines
        return lines

    @staticmethod
    def _placeholder(text: str, width: int, height: int, background: Style) -> list[Strip]:
        blank = Strip.blank(width, background)
        lines = [blank] * height
        if height and width:
            label = Segment(text[:width].center(width), background + Style(dim=True, italic=True))
            lines[height // 2] = Strip([label], width)
        return lines
