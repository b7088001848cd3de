"""The dashboard's worker table keeps only current renders, however long a run updates it."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from mario_tui.screens.dashboard import WorkerTable


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield WorkerTable()


def cached_renders(table: WorkerTable) -> int:
    caches = (table._cell_render_cache, table._row_render_cache, table._row_renderable_cache, table._line_cache)
    return sum(len(cache) for cache in caches)


def table_text(table: WorkerTable) -> str:
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


async def test_worker_table_drops_stale_renders_at_each_update_and_shows_the_new_value():
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(WorkerTable)
        for column in ("id", "steps", "reward"):
            table.add_column(column, key=column, width=10)
        for worker in range(4):
            table.add_row(str(worker), "0", "0.0", key=str(worker))
        await pilot.pause()
        table_text(table)
        one_table = cached_renders(table)
        assert one_table > 0

        for step in range(1, 41):
            table.update_cell("2", "steps", str(step * 1000))
            await pilot.pause()
            text = table_text(table)
            # The stock caches keep every update's renders (10,000 cells, 1,000 lines) for the GC to walk.
            assert cached_renders(table) <= one_table
        assert "40000" in text and "39000" not in text


async def test_worker_table_re_renders_only_the_cells_that_changed(monkeypatch):
    rendered: list[tuple[int, int]] = []
    render_cell = DataTable._render_cell

    def counting_render_cell(table, row_index, column_index, *args, **kwargs):
        rendered.append((row_index, column_index))
        return render_cell(table, row_index, column_index, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_cell", counting_render_cell)
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(WorkerTable)
        table.cursor_type = "none"
        for column in ("id", "steps", "reward"):
            table.add_column(column, key=column, width=10)
        for worker in range(4):
            table.add_row(str(worker), "0", "0.0", key=str(worker))
        await pilot.pause()
        table_text(table)
        assert len(rendered) >= 15  # header and 4 rows of 3 cells

        rendered.clear()
        table.update_cell("2", "steps", "5000")
        await pilot.pause()
        text = table_text(table)
        assert rendered == [(2, 1)]  # the stock table re-renders all 15 cells after any update
        assert "5000" in text

        rendered.clear()
        table.add_row("4", "7", "7.0", key="4")  # a change not made through update_cell: everything again
        await pilot.pause()
        text = table_text(table)
        assert len(rendered) >= 18
        assert "5000" in text and "7.0" in text
        assert len(table._kept_cells) <= 3 * 6  # one render per cell (header included), however many updates
