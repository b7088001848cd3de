"""The dashboard's worker table keeps only current renders, however long a run updates it."""

from __future__ import annotations

from textual.app import App, ComposeResult

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
