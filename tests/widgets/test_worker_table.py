"""The dashboard's worker table keeps only current renders, however long a run updates it."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from mario_tui.widgets.worker_table import WorkerTable


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield WorkerTable()


def cached_renders(table: WorkerTable) -> int:
    caches = (table._cell_render_cache, table._row_render_cache, table._row_renderable_cache, table._line_cache)
    return sum(len(cache) for cache in caches)


def fill(table: DataTable, width: int | None = None) -> None:
    """Three columns, four workers."""
    for column in ("id", "steps", "reward"):
        table.add_column(column, key=column, width=width)
    for worker in range(4):
        table.add_row(str(worker), "0", "0.0", key=str(worker))


def table_text(table: WorkerTable) -> str:
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


async def test_worker_table_drops_stale_renders_at_each_update_and_shows_the_new_value():
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(WorkerTable)
        fill(table, width=10)
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
        fill(table, width=10)
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



class TwinApp(App):
    CSS = "DataTable { height: 8; }"

    def compose(self) -> ComposeResult:
        yield WorkerTable(id="kept", zebra_stripes=True)
        yield DataTable(id="stock", zebra_stripes=True)


def painted(table: DataTable) -> list[list[tuple[str, str]]]:
    """Each line's segments as (text, style without the mouse metadata)."""
    return [[(segment.text, str(segment.style.clear_meta_and_links() if segment.style else ""))
             for segment in table.render_line(y)] for y in range(table.size.height)]


async def test_worker_table_paints_exactly_what_a_stock_data_table_paints():
    """The kept renders never show anything stale: after every kind of change, both tables paint the same."""
    app = TwinApp()
    async with app.run_test(size=(80, 20)) as pilot:
        tables = list(app.query(DataTable))
        for table in tables:
            fill(table)
        changes = [
            lambda t: t.update_cell("2", "steps", "5000"),
            lambda t: t.update_cell("1", "reward", "123456789.5", update_width=True),  # the column widens
            lambda t: t.move_cursor(row=2),
            lambda t: t.add_row("4", "7", "7.0", key="4"),
            lambda t: t.sort("steps"),
            lambda t: setattr(t, "fixed_rows", 1),
            lambda t: setattr(t, "zebra_stripes", False),
            lambda t: setattr(t, "header_height", 2),
            lambda t: t.update_cell("0", "steps", "1"),
            lambda t: t.remove_row("3"),
        ]
        app.set_focus(None)  # one focused table would be painted in other colours
        await pilot.pause()
        for number, change in enumerate([None, *changes]):
            if change is not None:
                for table in tables:
                    change(table)
            await pilot.pause()
            kept, stock = (painted(table) for table in tables)
            assert kept == stock, f"after change {number}"
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        kept, stock = (painted(table) for table in tables)
        assert kept == stock, "after a theme change"
