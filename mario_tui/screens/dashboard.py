"""Dashboard: the live view of a run — workers, coordinator figures, plots, log and the game frame.

Everything here only *reads* the run (cheap shared-memory snapshots and in-memory histories) on timers;
actions that take time (checkpoint, stop) run in thread workers so a key press is always answered at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Log
from textual.widgets.data_table import ColumnKey

from mario_tui.defaults import DEFAULT_PREVIEW_FPS
from mario_tui.engine.registry import REGISTRY
from mario_tui.textual_fixes import PrunedFooter
from mario_tui.widgets.coordinator_panel import CoordinatorPanel, eval_waiting
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import MetricPlot
from mario_tui.widgets.run_log import RunLog
from mario_tui.widgets.series_tail import SeriesTail, metric_value
from mario_tui.widgets.status_header import StatusHeader
from mario_tui.widgets.worker_table import WorkerTable

if TYPE_CHECKING:
    from mario_tui.engine.view import RunView, WorkerRow

WORKER_COLUMNS = ("id", "state", "level", "episodes", "steps", "steps/s", "last R", "best R", "best x", "epsilon",
                  "grads sent", "heartbeat", "restarts", "last error")
PANEL_INTERVAL = 1.0  # s between coordinator-panel refreshes
PAUSE_SETTLE = 0.5  # s after a pause toggle until the table looks again: workers hold within a step or two
TABLE_INTERVAL = 2.0  # s between worker-table refreshes (a key press refreshes it at once)
STATE_STYLES = {"running": "green", "pausing": "yellow", "paused": "yellow", "stale": "bold yellow",
                "restarting": "cyan", "starting": "cyan", "dead": "bold red", "failed": "bold red reverse",
                "stopped": "dim"}


def worker_columns(backend: str) -> tuple[str, ...]:
    """The worker table's columns: on a cluster (the Ray backend) also the node each worker runs on."""
    if backend == "local":
        return WORKER_COLUMNS
    return WORKER_COLUMNS[:2] + ("node",) + WORKER_COLUMNS[2:]


def worker_cells(row: WorkerRow, columns: tuple[str, ...] = WORKER_COLUMNS) -> tuple:
    """One row's cells, in the order of `columns` (from `worker_columns`)."""
    state = Text(row.state, style=STATE_STYLES.get(row.state, ""))
    beat = Text(f"{row.heartbeat_age:.1f}s", style="bold red" if row.heartbeat_age > 5 else "")
    cells = {"id": str(row.worker_id), "state": state, "node": row.node or "-", "level": row.level,
             "episodes": f"{row.episodes:,}", "steps": f"{row.steps:,}", "steps/s": f"{row.steps_per_s:.0f}",
             "last R": f"{row.last_reward:.0f}", "best R": f"{row.best_reward:.0f}", "best x": str(row.best_x_pos),
             "epsilon": f"{row.epsilon:.3f}", "grads sent": f"{row.grads_sent:,}", "heartbeat": beat,
             "restarts": str(row.restarts), "last error": Text(row.last_error[:60], style="red")}
    return tuple(cells[column] for column in columns)


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

    def __init__(self, run: RunView, preview: str = "auto", preview_fps: float = DEFAULT_PREVIEW_FPS) -> None:
        super().__init__()
        self.run = run
        self._columns = worker_columns(run.config.backend)
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
        for column in self._columns:
            table.add_column(column, key=column)
        for i in range(self.run.config.workers):
            table.add_row(*(["-"] * len(self._columns)), key=str(i))
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
                for column, value in zip(self._columns, worker_cells(row, self._columns), strict=True):
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
