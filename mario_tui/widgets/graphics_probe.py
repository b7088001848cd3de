"""Which image protocol the terminal has (sixel, kitty or none), asked once before the App starts.

Apart from `frame_view` (numpy, the renderers) so that `run_app` can ask before the first paint without paying for
them.
"""

from __future__ import annotations

import logging

_best = "halfblock"  # what probe_graphics() found
_graphics_ok = False  # textual-image imported (and the terminal probed) before the App started


def probe_graphics() -> str:
    """Ask the terminal (once) for the best image protocol: "sixel", "kitty" or "halfblock".

    Call this before `App.run()`: textual-image queries the terminal on import, which only works while nothing
    else reads stdin. Until it has run, and without textual-image installed, every mode shows half blocks.
    """
    global _best, _graphics_ok
    if not _graphics_ok:
        # A terminal that leaves the probe unanswered makes textual-image log a warning with a traceback; with no
        # logging configured, Python's last-resort handler would print it on the user's screen. Half blocks are the
        # documented fallback, so keep it quiet (a handler configured by the caller still gets the record).
        image_log = logging.getLogger("textual_image")
        if not any(isinstance(h, logging.NullHandler) for h in image_log.handlers):
            image_log.addHandler(logging.NullHandler())
        try:
            import textual_image.widget  # noqa: F401  (probes the terminal and caches the cell size)
            from textual_image.renderable import Image, SixelImage, TGPImage
        except ImportError:
            return "halfblock"
        _best = "sixel" if Image is SixelImage else "kitty" if Image is TGPImage else "halfblock"
        _graphics_ok = True
    return _best


def probed() -> bool:
    """Whether `probe_graphics()` ran and textual-image is there (graphics modes can work)."""
    return _graphics_ok


def best() -> str:
    """The best mode the probe found ("halfblock" before it ran)."""
    return _best
