"""Pure half-block rendering of RGB frames into Textual strips (no app needed, so it is testable and benchmarkable).

One terminal cell shows two vertically stacked pixels: `▀` with the top pixel as foreground and the bottom pixel as
background. Terminal cells are about twice as tall as wide, so a half cell is roughly square and the frame keeps its
aspect ratio. Rows are built with numpy; neighbouring cells with the same colour pair are merged into one Segment
(NES frames have ~25 colours and large flat areas), and Styles are cached by colour pair, so a 128×60-cell frame
costs a few milliseconds instead of ~8,000 Segment/Style constructions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

UPPER_HALF = "▀"
_STYLE_CACHE: dict[int, Style] = {}
_STYLE_CACHE_LIMIT = 8192  # colour pairs; NES frames use a few hundred at most


def fit_size(src_w: int, src_h: int, cells_w: int, cells_h: int) -> tuple[int, int]:
    """Largest (width, height) in pixels with the source's aspect that fits `cells_w` × `cells_h` half-block cells.

    The height is even (two pixels per cell row); both are at least 1 and 2 when any room is left.
    """
    if cells_w <= 0 or cells_h <= 0 or src_w <= 0 or src_h <= 0:
        return 0, 0
    scale = min(cells_w / src_w, 2 * cells_h / src_h)
    width = min(cells_w, max(1, round(src_w * scale)))
    rows = min(cells_h, max(1, round(src_h * scale / 2)))
    return width, 2 * rows


@lru_cache(maxsize=32)
def scale_indices(src_h: int, src_w: int, out_h: int, out_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour source rows and columns (pixel centres) for an `out_h` × `out_w` image; cached per size."""
    rows = ((np.arange(out_h) + 0.5) * (src_h / out_h)).astype(np.intp)
    cols = ((np.arange(out_w) + 0.5) * (src_w / out_w)).astype(np.intp)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def _style(pair: int) -> Style:
    """The Style for a packed (top RGB << 24 | bottom RGB) pair, cached: Style construction dominates otherwise."""
    style = _STYLE_CACHE.get(pair)
    if style is None:
        if len(_STYLE_CACHE) >= _STYLE_CACHE_LIMIT:
            _STYLE_CACHE.clear()
        top, bottom = pair >> 24, pair & 0xFFFFFF
        style = Style(color=Color.from_rgb(top >> 16, (top >> 8) & 255, top & 255),
                      bgcolor=Color.from_rgb(bottom >> 16, (bottom >> 8) & 255, bottom & 255))
        _STYLE_CACHE[pair] = style
    return style


def halfblock_cells(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """`frame` scaled to fit `width` × `height` half-block cells: (rows × columns packed colour pairs, left, top).

    The image keeps the frame's aspect ratio (nearest neighbour) and is centred: `left`/`top` are the margins.
    """
    if frame.ndim == 2:
        frame = frame[:, :, None].repeat(3, axis=2)
    src_h, src_w = frame.shape[:2]
    out_w, out_h = fit_size(src_w, src_h, width, height)
    rows_idx, cols_idx = scale_indices(src_h, src_w, out_h, out_w)
    image = frame[rows_idx[:, None], cols_idx[None, :]].astype(np.uint32)
    packed = (image[..., 0] << 16) | (image[..., 1] << 8) | image[..., 2]  # out_h × out_w RGB ints
    cells = (packed[0::2].astype(np.uint64) << np.uint64(24)) | packed[1::2]  # rows × out_w colour pairs
    return cells, (width - out_w) // 2, (height - cells.shape[0]) // 2


def cell_rows_strips(cells: np.ndarray, width: int, left: int, background: Style | None = None) -> list[Strip]:
    """One strip of `width` cells per row of `cells`, the image starting `left` cells in; margins in `background`."""
    n_rows, out_w = cells.shape
    if n_rows == 0:
        return []
    # Run starts: every row start, and every cell whose colour pair differs from its left neighbour.
    change = np.empty(cells.shape, dtype=bool)
    change[:, 0] = True
    np.not_equal(cells[:, 1:], cells[:, :-1], out=change[:, 1:])
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=cells.size)  # a row's last run ends where the next row's first one starts
    pairs = cells.ravel()[starts]
    row_bounds = np.searchsorted(starts, np.arange(n_rows + 1) * out_w).tolist()

    segments = [Segment(UPPER_HALF * n, _style(p)) for p, n in zip(pairs.tolist(), lengths.tolist(), strict=True)]
    right = width - out_w - left
    left_pad = [Segment(" " * left, background)] if left else []
    right_pad = [Segment(" " * right, background)] if right else []
    return [Strip([*left_pad, *segments[row_bounds[r]:row_bounds[r + 1]], *right_pad], width) for r in range(n_rows)]


def halfblock_strips(frame: np.ndarray, width: int, height: int, background: Style | None = None) -> list[Strip]:
    """Render `frame` (H×W×3 uint8, or H×W grey) into exactly `height` strips of `width` cells.

    The image is scaled (nearest neighbour) to the largest size with the frame's aspect ratio that fits and is
    centred; the margins use `background` (None: the terminal's default).
    """
    if width <= 0 or height <= 0:
        return []
    cells, left, top = halfblock_cells(frame, width, height)
    return placed_strips(cells, width, height, left, top, background)


def placed_strips(cells: np.ndarray, width: int, height: int, left: int, top: int,
                  background: Style | None = None) -> list[Strip]:
    """All `height` lines: `cells` (from `halfblock_cells`) at (`left`, `top`), blank `background` lines around."""
    blank = Strip.blank(width, background)
    strips = [blank] * top
    strips.extend(cell_rows_strips(cells, width, left, background))
    strips.extend([blank] * (height - len(strips)))
    return strips
