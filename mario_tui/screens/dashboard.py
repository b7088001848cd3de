"""Dashboard: the live view of a run — workers, coordinator figures, plots, log and the game frame.

Everything here only *reads* the run (cheap shared-memory snapshots and in-memory histories) on timers;
actions that take time (checkpoint, stop) run in thread workers so a key press is always answered at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Log, Static
from textual.widgets.data_table import ColumnKey

from mario_tui.defaults import DEFAULT_PREVIEW_FPS
from mario_tui.engine.registry import REGISTRY
from mario_tui.textual_fixes import PrunedFooter
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import MetricPlot
from mario_tui.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from mario_tui.engine.session import Run, WorkerRow

WORKER_COLUMNS = ("id", "state", "level", "episodes", "steps", "steps/s", "last R", "best R", "best x", "epsilon",
                  "grads sent", "heartbeat", "restarts", "last error")
PANEL_INTERVAL = 1.0  # s between coordinator-panel refreshes
PAUSE_SETTLE = 0.5  # s after a pause toggle until the table looks again: workers hold within a step or two
TABLE_INTERVAL = 2.0  # s between worker-table refreshes (a key press refreshes it at once)
STATE_STYLES = {"running": "green", "pausing": "yellow", "paused": "yellow", "stale": "bold yellow",
                "restarting": "cyan", "starting": "cyan", "dead": "bold red", "failed": "bold red reverse",
                "stopped": "dim"}


def fmt(value: float, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "-"
    return format(value, spec)


def worker_cells(row: WorkerRow) -> tuple:
    state = Text(row.state, style=STATE_STYLES.get(row.state, ""))
    beat = Text(f"{row.heartbeat_age:.1f}s", style="bold red" if row.heartbeat_age > 5 else "")
    return (str(row.worker_id), state, row.level, f"{row.episodes:,}", f"{row.steps:,}", f"{row.steps_per_s:.0f}",
            f"{row.last_reward:.0f}", f"{row.best_reward:.0f}", str(row.best_x_pos), f"{row.epsilon:.3f}",
            f"{row.grads_sent:,}", beat, str(row.restarts), Text(row.last_error[:60], style="red"))


def metric_value(row: dict[str, float], key: str) -> float:
    return row.get(key, math.nan)


class SeriesTail:
    """Numeric columns of a capped history that another thread appends to (a deque), converted incrementally:
    each `update` reads only the items added since the last one (found by identity from the right)."""

    def __init__(self, x_key: str, columns: dict[str, Callable[[Any], float]], cap: int = 100_000) -> None:
        self.x_key = x_key
        self.cap = cap
        self.version = 0  # bumps when new items arrived
        self._getters = columns
        self._columns: dict[str, list[float]] = {key: [] for key in columns}
        self._last: object = None

    def update(self, history: Iterable[Any]) -> None:
        items = list(history)  # one C-level copy: the appending thread cannot change it under us
        if not items or items[-1] is self._last:
            return
        start = len(items)
        while start > 0 and items[start - 1] is not self._last:
            start -= 1
        if start == 0:  # first call, or everything we had was dropped from the history: start over
            for values in self._columns.values():
                values.clear()
        new = items[start:]
        for key, get in self._getters.items():
            values = self._columns[key]
            values.extend(float(get(item)) for item in new)
            if len(values) > self.cap:
                del values[: len(values) - self.cap]
        self._last = items[-1]
        self.version += 1

    def column(self, key: str) -> np.ndarray:
        return np.asarray(self._columns[key], dtype=np.float64)


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


class RunLog(Log):
    """Log with a line-render cache sized for a panel: the stock 1,024 cached lines (each a Strip with its own
    caches, ~15 objects) made ~15k live objects once a run had logged that much, walked by every paced GC pass."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._render_line_cache = LRUCache(256)


PANEL_WIDTH = 76
"""Columns inside the coordinator panel in a 120-column terminal: lines are built to fit it. The panel never
wraps (a wrap would change its height without the re-layout `show` does only when its line count changes); a
rare longer line ends in an ellipsis."""
VALUE_WIDTH = 6  # a typical `fmt` value: "0.0563", "-1.47", "1.38e+03" is 8


@cache
def metric_lines(names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Names packed into lines that fit PANEL_WIDTH with typical values: a fixed line count per model."""
    lines: list[list[str]] = []
    width = PANEL_WIDTH + 1
    for name in names:
        item = len(name) + 1 + VALUE_WIDTH
        if width + 3 + item > PANEL_WIDTH:
            lines.append([])
            width = item
        else:
            width += 3 + item
        lines[-1].append(name)
    return tuple(tuple(line) for line in lines)


SHORT_GROUP_NAMES = {"world_model": "wm"}  # as in the wm_* metrics; keeps the line inside a 120-column panel


def eval_waiting(updates: int, eval_every: int) -> str:
    """What the greedy evaluation is doing before its first result (panel line and plot title say the same)."""
    if eval_every <= 0:
        return "off (--eval-every 0)"
    if updates < eval_every:
        return f"first eval at update {eval_every:,}"
    return f"no result yet (every {eval_every:,} updates)"  # the first is under way (or a resumed run's next)


def eval_line(stats: dict[str, float], eval_every: int) -> str:
    """The panel's greedy-evaluation line: the last evaluation (mean and max of the episodes' max x, flag rate),
    or why there is none yet; then best.pt's score (a resumed run has one before its first evaluation) and, where
    room allows, the update its weights come from. It fits PANEL_WIDTH whatever the values (4-digit x and 100 %
    flags leave the update out past 999,999)."""
    x_mean = stats.get("eval_x_mean", math.nan)
    if math.isfinite(x_mean):
        text = (f"greedy eval  x mean {x_mean:.0f} · max {fmt(stats.get('eval_x_max', math.nan), '.0f')} · "
                f"flags {fmt(stats.get('eval_flag_rate', math.nan), '.0%')}")
    else:
        text = "greedy eval  " + eval_waiting(int(stats.get("updates", 0)), eval_every)
    best = stats.get("eval_best_x", math.nan)
    if not math.isfinite(best):
        return text
    text += f" · best {best:.0f}"
    best_updates = stats.get("eval_best_updates", math.nan)
    where = f" (update {int(best_updates):,})" if math.isfinite(best_updates) else ""
    return text + where if len(text) + len(where) <= PANEL_WIDTH else text


class CoordinatorPanel(Static):
    """The coordinator's figures in a few lines."""

    DEFAULT_CSS = """
    CoordinatorPanel { height: auto; padding: 0 1; border: round $primary; text-wrap: nowrap;
                       text-overflow: ellipsis; }
    """

    _last: str = ""

    def show(self, stats: dict[str, float], paused: bool, fractions: dict[str, float], model: str, *,
             eval_every: int = 0, ended: str | None = None) -> None:
        """`eval_every` (the run's --eval-every) words the greedy-eval line, which is always there (off, waiting or
        a result): the line count stays fixed per model. `ended`: why the run stopped (it stays on screen)."""
        head = Text()  # the status line is always there, so pausing never changes the panel's height (a re-layout)
        if ended is not None:
            head.append(" STOPPED ", style="bold white on red")
            head.append("  n new run · v replay viewer · q quit\n")
            head.append(f"{ended}\n", style="bold")
        elif paused:
            head.append(" PAUSED ", style="bold black on yellow")
            head.append("  workers hold, no updates are applied — press p to resume\n")
        else:
            head.append(" TRAINING ", style="bold black on green")
            head.append("  press p to pause\n")
        updates = int(stats.get("updates", 0))
        lines = [
            f"updates {updates:,}   {fmt(stats.get('updates_per_s', 0.0), '.2f')}/s   "
            f"env {fmt(stats.get('frames_per_s', 0.0), '.0f')} frames/s   "
            f"episodes {int(stats.get('episodes', 0)):,}   best x {int(stats.get('best_x_pos', 0))}",
        ]
        learner = [name for name in REGISTRY[model].metrics if name != "batch_size"]
        for group in metric_lines(tuple(learner)):
            lines.append("   ".join(f"{name} {fmt(stats.get(name, math.nan))}" for name in group))
        norms = "   grad norm " + fmt(stats.get("grad_norm", math.nan))
        parts = {key.removeprefix("grad_norm_"): value for key, value in stats.items() if key.startswith("grad_norm_")}
        if parts:  # Dreamer: each part is clipped on its own, so each norm says whether its clip bites
            norms += " (" + ", ".join(f"{SHORT_GROUP_NAMES.get(name, name)} {fmt(value)}"
                                      for name, value in parts.items()) + ")"
        lines.append(f"LR {fmt(stats.get('lr', math.nan), '.2e')}{norms}")
        lines.append(
            f"gradients applied {int(stats.get('grads_applied', 0)):,}   dropped: stale "
            f"{int(stats.get('dropped_stale', 0))}, non-finite {int(stats.get('dropped_nonfinite', 0))}")
        lines.append(f"policy lag mean {fmt(stats.get('policy_lag_mean', math.nan), '.2f')} max "
                     f"{int(stats.get('policy_lag_max', 0))} versions")
        lines.append(eval_line(stats, eval_every))
        if fractions:
            lines.append("worker time: " + "  ".join(f"{k} {v:.0%}" for k, v in fractions.items()))
        head.append("\n".join(lines))
        if head.plain != self._last:  # skip the repaint when nothing changed (e.g. while paused)
            same_height = head.plain.count("\n") == self._last.count("\n")
            self._last = head.plain
            self.update(head, layout=not same_height)  # a re-layout only when the line count changes


class DashboardScreen(Screen):
    """Live view of one run."""

    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("r", "restart_selected", "Restart worker"),
        Binding("R", "restart_stale", "Restart stale", key_display="R"),
        Binding("s", "checkpoint", "Checkpoint"),
        Binding("v", "app.replay", "Replay viewer"),
        Binding("n", "app.new_run", "New run"),
        Binding("question_mark", "app.help", "Help", key_display="?"),
        Binding("q", "app.quit_app", "Quit"),
    ]

    DEFAULT_CSS = """
    DashboardScreen #dash-left { width: 2fr; }
    DashboardScreen #dash-right { width: 1fr; min-width: 40; }
    DashboardScreen #workers-box { height: auto; }
    DashboardScreen #workers { height: auto; max-height: 12; }
    DashboardScreen #dash-body { height: 1fr; }
    DashboardScreen #plots { grid-size: 2 3; grid-rows: 1fr 1fr 1fr; height: 1fr; min-height: 18; }
    DashboardScreen #plot-eval { column-span: 2; }
    DashboardScreen #frame { height: 1fr; min-height: 12; border: round $primary; }
    DashboardScreen #log { height: 1fr; border: round $primary; }
    """

    def __init__(self, run: Run, preview: str = "auto", preview_fps: float = DEFAULT_PREVIEW_FPS) -> None:
        super().__init__()
        self.run = run
        self.preview_mode = preview
        self.frame_interval = 1.0 / preview_fps
        self.selected_worker = 0
        self._frame_version = 0
        self._cells: dict[tuple[int, str], object] = {}
        self._plot_turn = -1
        loss_name, value_name = REGISTRY[run.config.model].headline
        self._plot_sources = (("#plot-reward", "reward"), ("#plot-x", "x_pos"), ("#plot-loss", loss_name),
                              ("#plot-q", value_name), ("#plot-eval", "x_mean"))
        self._episode_tail = SeriesTail("index", {"index": lambda e: e.index, "reward": lambda e: e.reward,
                                                  "x_pos": lambda e: e.x_pos})
        self._metric_tail = SeriesTail("updates", {key: partial(metric_value, key=key)
                                                   for key in ("updates", loss_name, value_name)})
        self._eval_tail = SeriesTail("updates", {"updates": lambda p: p.updates, "x_mean": lambda p: p.x_mean})
        self._drawn_version = [-1] * len(self._plot_sources)
        self._updates = 0  # the update count the panel showed last
        self._refresh_timers: list[Timer] = []
        self._suspended = False
        self._notice_cursor = 0

    def compose(self) -> ComposeResult:
        yield StatusHeader()
        with Vertical(id="workers-box"):  # its own clip region: repaints elsewhere (the frame) skip the table
            yield WorkerTable(id="workers", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="dash-body"):
            with Vertical(id="dash-left"):
                yield CoordinatorPanel(id="coordinator")
                with Grid(id="plots"):
                    yield MetricPlot(title="episode reward", xlabel="episode", id="plot-reward", interval=0.1)
                    yield MetricPlot(title="x position per episode", xlabel="episode", id="plot-x", interval=0.1)
                    # How the agent plays (exploring episodes, then greedy evaluations: the full width, as sparse
                    # points over the whole run read best wide), then how the learner is doing.
                    yield MetricPlot(title=self.eval_title(), xlabel="update", id="plot-eval", interval=0.1,
                                     smooth=False)
                    loss_name, value_name = REGISTRY[self.run.config.model].headline
                    yield MetricPlot(title=loss_name, xlabel="update", id="plot-loss", interval=0.1)
                    yield MetricPlot(title=value_name, xlabel="update", id="plot-q", interval=0.1)
            with Vertical(id="dash-right"):
                yield FrameView(mode=self.preview_mode, id="frame")
                yield RunLog(id="log", max_lines=2000)  # plain lines: Log is cheaper than RichLog (no Rich rendering)
        yield PrunedFooter()

    def on_mount(self) -> None:
        self.title = f"mario-tui — {self.run.name}"
        table = self.query_one("#workers", DataTable)
        for column in WORKER_COLUMNS:
            table.add_column(column, key=column)
        for i in range(self.run.config.workers):
            table.add_row(*(["-"] * len(WORKER_COLUMNS)), key=str(i))
        self.query_one("#frame", FrameView).border_title = self.frame_title(0)
        self.query_one("#log", Log).border_title = "training.log"
        self.run.set_preview_worker(0)
        # Timers are offset from each other: two updates landing in one frame repaint the rectangle around both
        # (Textual unions the dirty regions), which can drag the plots into a frame-preview repaint.
        timers = ((0.01, TABLE_INTERVAL, self.refresh_table), (0.55, PANEL_INTERVAL, self.refresh_panel),
                  (0.125, 0.25, self.refresh_plots), (0.05, self.frame_interval, self.refresh_frame),
                  (0.3, 0.5, self.refresh_log))
        for offset, interval, callback in timers:
            self.set_timer(offset, partial(self._start_timer, interval, callback))
        self.refresh_figures()
        self.refresh_log()

    def _start_timer(self, interval: float, callback: Callable[[], None]) -> None:
        self._refresh_timers.append(self.set_interval(interval, callback, pause=self._suspended))

    def on_screen_suspend(self) -> None:
        """Covered by another screen (replay viewer, help, a dialog): draw nothing and stop the frame feed, so
        training (and the replay) get the CPU."""
        self._suspended = True
        for timer in self._refresh_timers:
            timer.pause()
        self.run.set_preview_worker(-1)

    def on_screen_resume(self) -> None:
        if not self._suspended:
            return
        self._suspended = False
        self.run.set_preview_worker(self.selected_worker)
        self._frame_version = 0
        for timer in self._refresh_timers:
            timer.resume()
        self.refresh_figures()

    def frame_title(self, worker_id: int) -> str:
        if self.run.config.model == "dreamer":
            return f"worker {worker_id}: real | reconstruction / imagined +5 | +10"
        return f"worker {worker_id}"

    # --- timers ----------------------------------------------------------------------------------
    def refresh_figures(self) -> None:
        """Table, state and panel (after a key press, and when shown again): the table and the header's state in
        this frame, the panel in the next. Textual repaints the rectangle around everything that changed in one
        frame; table and panel together span the frame preview, the log and their scroll bars, which re-rendered
        for nothing (2-3 ms of CPU a press, measured)."""
        self.refresh_table()
        self.refresh_status()
        self.call_after_refresh(self.refresh_panel)

    def refresh_table(self) -> None:
        run = self.run
        table = self.query_one("#workers", DataTable)
        with self.app.batch_update():
            for row in run.worker_rows():
                for column, value in zip(WORKER_COLUMNS, worker_cells(row), strict=True):
                    key = (row.worker_id, column)
                    if self._cells.get(key) != value:  # no change, no repaint
                        self._cells[key] = value
                        # Widen the column only when the text outgrew it (else the table truncates "1,234,567" to
                        # "1,234"); measuring widths on every update would cost a full table re-layout each time.
                        wider = len(str(value)) > table.columns[ColumnKey(column)].content_width
                        table.update_cell(str(row.worker_id), column, value, update_width=wider)

    def eval_title(self) -> str:
        """The eval plot's title: what it shows, and until the first result what the evaluation is doing."""
        if self._eval_tail.column("updates").size:
            return "greedy eval x (mean of episodes' max x)"
        return "greedy eval x   " + eval_waiting(self._updates, self.run.config.eval_every)

    def refresh_panel(self) -> None:
        run = self.run
        self.show_notices()
        stats = run.coordinator_stats()
        self.query_one(CoordinatorPanel).show(stats, run.paused, run.worker_time_fractions(), run.config.model,
                                              eval_every=run.config.eval_every, ended=self.ended_text())
        self._updates = int(stats.get("updates", 0))
        self.query_one("#plot-eval", MetricPlot).set_title(self.eval_title())  # "first eval at…" follows updates
        self.refresh_status()

    def refresh_status(self) -> None:
        run = self.run
        status = ("stopped" if run.stopped.is_set() else "stopping…" if run.stopping.is_set() or run.done.is_set()
                  else "PAUSED" if run.paused else "training")
        self.query_one(StatusHeader).show_status(status)

    def ended_text(self) -> str | None:
        """Why the run is over, once it is stopping or stopped (None while it trains)."""
        run = self.run
        if not (run.stopping.is_set() or run.done.is_set()):
            return None
        reason = run.end_reason or "stopped"
        if run.stop_error:
            reason += f"; {run.stop_error}"
        elif not run.stopped.is_set():
            reason += "; stopping (final checkpoint, workers, shared memory)…"
        return reason

    def show_notices(self) -> None:
        """The run's notices (a file it could not write, why it ended) as toasts; the log has them too."""
        notices, self._notice_cursor = self.run.notices.since(self._notice_cursor)
        for notice in notices:
            severity = {"info": "information"}.get(notice.severity, notice.severity)
            self.notify(notice.text, severity=severity, timeout=30 if severity == "error" else 10)

    def _refuse_when_stopped(self) -> bool:
        """Keys that drive training do nothing on a run that stopped: say so instead."""
        if self.run.stopping.is_set() or self.run.done.is_set():
            self.notify("The run has stopped: n starts a new run, v opens the replay viewer, q quits.")
            return True
        return False

    def refresh_plots(self) -> None:
        """One plot per tick, round robin, so each redraws at most every 1.25 s and the plot work is spread
        evenly over time instead of landing in one frame. Histories are converted incrementally (a long run holds
        20k metric rows and up to 100k episodes: re-reading them all each time cost milliseconds per plot)."""
        turn = self._plot_turn = (self._plot_turn + 1) % len(self._plot_sources)
        tail, history = ((self._episode_tail, self.run.episodes) if turn < 2 else
                         (self._metric_tail, self.run.metric_history) if turn < 4 else
                         (self._eval_tail, self.run.eval_history))
        tail.update(history)
        if tail.version == self._drawn_version[turn]:
            return
        self._drawn_version[turn] = tail.version
        plot_id, key = self._plot_sources[turn]
        plot = self.query_one(plot_id, MetricPlot)
        if tail is self._eval_tail:
            plot.set_title(self.eval_title())  # with its first point, the plot says what it shows
        plot.set_series(key, tail.column(tail.x_key), tail.column(key))

    def refresh_frame(self) -> None:
        frame_view = self.query_one("#frame", FrameView)
        if frame_view.mode == "off":
            return
        result = self.run.read_preview(self.selected_worker, self._frame_version)
        if result is not None:
            self._frame_version, frame = result
            frame_view.update_frame(frame)

    def refresh_log(self) -> None:
        lines = self.run.new_log_lines()
        if lines:
            self.query_one("#log", Log).write_lines(lines)

    # --- selection and actions -------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#workers")
    def _worker_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected_worker = int(event.row_key.value or 0)
        self._frame_version = 0
        self.run.set_preview_worker(self.selected_worker)
        self.query_one("#frame", FrameView).border_title = self.frame_title(self.selected_worker)

    def action_toggle_pause(self) -> None:
        """No toast: the panel's PAUSED banner and the title say it, and toasts cost a re-layout each."""
        if self._refuse_when_stopped():
            return
        self.run.toggle_pause()
        self.refresh_figures()
        self.set_timer(PAUSE_SETTLE, self.refresh_table)  # "pausing" → "paused" once the workers hold

    def action_restart_selected(self) -> None:
        if self._refuse_when_stopped():
            return
        self.run.restart_worker(self.selected_worker)
        self.notify(f"Restarting worker {self.selected_worker}…")

    def action_restart_stale(self) -> None:
        if self._refuse_when_stopped():
            return
        ids = self.run.restart_stale_workers()
        self.notify(f"Restarting workers {', '.join(map(str, ids))}…" if ids else "No stale workers.")

    def action_checkpoint(self) -> None:
        if self._refuse_when_stopped():
            return
        self.notify("Writing checkpoint…")
        self._write_checkpoint()

    @work(thread=True, exclusive=True, group="checkpoint")
    def _write_checkpoint(self) -> None:
        ok = self.run.save_checkpoint(timeout=120)
        message = (f"Checkpoint written: {self.run.paths.checkpoint}" if ok else
                   f"No checkpoint: {self.run.last_checkpoint_error or 'timed out'}; {self.run.intact_text()}")
        self.app.call_from_thread(self.notify, message, severity="information" if ok else "error")
