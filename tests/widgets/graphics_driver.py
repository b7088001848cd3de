"""A tiny app for test_graphics_terminal.py: one FrameView showing a known image, run inside a pseudo-terminal.

    python graphics_driver.py MODE REPORT_PATH

It probes the terminal the way `run_app` does (`probe_graphics()` before `App.run()`), shows `quadrant_image()` in a
40×12-cell `FrameView(mode=MODE)`, quits on `q`, and then writes a JSON report of what it resolved to REPORT_PATH.
A safety timer ends it with exit code 3 if nobody presses `q`, so a broken test never leaves it running.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from textual.app import App, ComposeResult

from mario_tui.widgets.frame_view import FrameView, probe_graphics, resolve_mode

VIEW_CELLS = (40, 12)  # FrameView width × height in cells
SAFETY_EXIT_S = 30.0

QUADRANTS = {  # (row, column) of the quadrant -> its flat RGB colour
    (0, 0): (220, 40, 40),
    (0, 1): (40, 200, 60),
    (1, 0): (40, 60, 220),
    (1, 1): (240, 220, 40),
}


def quadrant_image(width: int = 256, height: int = 240) -> np.ndarray:
    """An NES-sized RGB frame of four flat colour quadrants (distinct, so flips and swaps show)."""
    image = np.empty((height, width, 3), np.uint8)
    for (row, col), rgb in QUADRANTS.items():
        image[row * height // 2:(row + 1) * height // 2, col * width // 2:(col + 1) * width // 2] = rgb
    return image


class GraphicsApp(App[int]):
    CSS = f"FrameView {{ width: {VIEW_CELLS[0]}; height: {VIEW_CELLS[1]}; }}"
    BINDINGS = [("q", "quit_ok", "Quit")]

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.view = FrameView(mode=mode)

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self.view.update_frame(quadrant_image())
        self.set_timer(SAFETY_EXIT_S, lambda: self.exit(3))

    def action_quit_ok(self) -> None:
        self.exit(0)


def main() -> int:
    mode, report_path = sys.argv[1], sys.argv[2]
    probed = probe_graphics()  # before App.run(), as run_app does: textual-image asks the terminal here
    from textual_image._terminal import get_cell_size  # cached by the probe above: no second query

    app = GraphicsApp(mode)
    code = app.run()
    report = {
        "probed": probed,
        "auto": resolve_mode("auto", headless=False),
        "requested": mode,
        "active_mode": app.view.active_mode,
        "cell_size": list(get_cell_size()),
        "view_cells": list(VIEW_CELLS),
    }
    with open(report_path, "w") as f:
        json.dump(report, f)
    return 1 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
