"""`WorkerTable`: the dashboard's worker table, a `DataTable` that re-renders only the cells that changed.

It is refreshed every two seconds and after each key press for as long as a run lasts: the stock table's cost per
refresh (all cells re-rendered, stale renders piling up for the GC) was most of a key press's repaint.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable


class WorkerTable(DataTable):
    """DataTable that re-renders only the cells that changed, and keeps no stale renders.

    Any cell update changes every cell's cache key in `DataTable` (`_update_count`), so each refresh re-rendered all
    ~40 cells (7 ms of CPU per refresh, measured: most of a pause key press's repaint) and left a whole table of
    stale renders behind in its LRU caches. With the stock sizes (10,000 cells; 1,000 rows, renderables and lines)
    they piled up to ~50k live objects that every paced full GC pass then walked (passes grew from ~20 to 60-210 ms).

    So: the stock render caches are emptied at each update (nothing can hit an entry made before one), and each
    cell's last render is kept here, keyed by what it depends on plus the cell's own update count. Whatever else
    makes DataTable render everything again drops them too: an update it made itself (rows or columns added,
    sorted, cleared, a resize), its own cache clearing (header, zebra stripes, cursor shown…) and style changes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._cell_versions: dict[tuple[Any, Any], int] = {}
        self._kept_cells: dict[tuple[Any, Any], tuple[tuple, Any]] = {}  # (row, column) -> (render key, lines)
        super().__init__(*args, **kwargs)
        self._counted_updates = self._update_count  # the table's update count after our last cell update

    def _clear_caches(self) -> None:
        """DataTable's own "render everything again" (header, labels, zebra, cursor shown, fixed rows…)."""
        super()._clear_caches()
        self._kept_cells.clear()

    def notify_style_update(self) -> None:
        """Styles changed (theme, focus, CSS): the kept renders carry the old colours."""
        super().notify_style_update()
        self._kept_cells.clear()

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        if self._update_count != self._counted_updates:
            self._kept_cells.clear()
        super().update_cell(row_key, column_key, value, update_width=update_width)
        cell = (self._row_locations.get_key(self.get_row_index(row_key)),
                self._column_locations.get_key(self.get_column_index(column_key)))
        self._cell_versions[cell] = self._cell_versions.get(cell, 0) + 1
        self._counted_updates = self._update_count
        self._drop_stale_renders()

    def _drop_stale_renders(self) -> None:
        caches = (self._cell_render_cache, self._row_render_cache, self._row_renderable_cache, self._line_cache)
        for render_cache in caches:
            render_cache.clear()

    def _render_cell(self, row_index: int, column_index: int, base_style: Any, width: int, cursor: bool = False,
                     hover: bool = False) -> Any:
        if self._update_count != self._counted_updates:  # rows/columns changed, not through update_cell
            self._kept_cells.clear()
            self._counted_updates = self._update_count
        row_key = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        cell = (row_key, self._column_locations.get_key(column_index))
        key = (row_index, column_index, base_style, width, cursor, hover, self.show_cursor, self._show_hover_cursor,
               self._pseudo_class_state, self._cell_versions.get(cell, 0))
        kept = self._kept_cells.get(cell)
        if kept is not None and kept[0] == key:
            return kept[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._kept_cells[cell] = (key, lines)
        return lines
