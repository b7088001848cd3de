"""Layout snapshots with fixed data (update them with `uv run pytest tests/app/test_snapshots.py --snapshot-update`)."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import numpy as np
import torch
from textual.app import App
from textual.widgets import DataTable, Log

from mario_tui.engine.config import RunConfig
from mario_tui.engine.notices import Notices
from mario_tui.engine.periodic_eval import EvalPoint
from mario_tui.engine.runs import RunPaths
from mario_tui.engine.view import EpisodeRecord, WorkerRow
from mario_tui.screens.dashboard import DashboardScreen
from mario_tui.screens.launch import LaunchScreen
from mario_tui.screens.modals import HelpScreen
from mario_tui.widgets.coordinator_panel import CoordinatorPanel
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.plots import MetricPlot
from tests.polling import wait_until

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "app.tcss"


class FixedRun:
    """A `RunView` with fixed figures, standing in for a live Run: a snapshot checks the layout, not the engine.

    Its controls change only what the dashboard reads back (pause, stop); restarts and checkpoints do nothing."""

    def __init__(self, root: Path, evaluations: int = 3, eval_every: int = 100, backend: str = "local") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.paths = RunPaths(root)
        log = self.paths.log
        log.write_text("2026-11-24 10:00:00 [coord] new run demo: model ddqn, 2 workers, level 1-1\n"
                       "2026-11-24 10:00:01 [w0] started (pid 100, epsilon → 0.050)\n"
                       "2026-11-24 10:00:01 [w1] started (pid 101, epsilon → 0.003)\n")
        self._unread = log.read_text().splitlines()
        self.config = RunConfig(workers=2, eval_every=eval_every, backend=backend)
        self.name = "demo"
        self.csv_path = self.paths.csv
        self.device = torch.device("cpu")
        self.paused = False
        self.stopping, self.stopped, self.done = threading.Event(), threading.Event(), threading.Event()
        self.notices = Notices()
        self.error: BaseException | None = None
        self.end_reason: str | None = None
        self.stop_error: str | None = None
        self.workers_failed = False
        self.last_checkpoint_error: str | None = None
        rng = np.random.default_rng(0)
        self.episodes = deque(EpisodeRecord(i % 2, i + 1, float(200 + 10 * i + rng.normal() * 30),
                                            int(300 + 8 * i), 300, False, 1, 1, 0.0) for i in range(60))
        self.metric_history = deque({"updates": u, "q_loss": 0.5 / (1 + u / 50), "q_mean": u / 100}
                                    for u in range(1, 400))
        scores = (310.0, 402.0, 388.0, 455.0, 431.0)
        self.eval_history: deque[EvalPoint] = deque()
        for i in range(evaluations):
            self.add_evaluation(scores[i % len(scores)] + 10 * (i // len(scores)))
        y, x = np.mgrid[0:240, 0:256]
        self.frame = np.stack([(x % 256), (y * 255 // 239), ((x + y) % 256)], axis=-1).astype(np.uint8)

    def add_evaluation(self, x_mean: float, flag_rate: float = 0.0) -> EvalPoint:
        """What the run appends after an evaluation (from the coordinator thread in a real run)."""
        best = all(x_mean > point.x_mean for point in self.eval_history)
        point = EvalPoint(self.config.eval_every * (len(self.eval_history) + 1), 60.0 * len(self.eval_history),
                          x_mean, int(x_mean * 1.3), flag_rate, x_mean * 0.8, 5, best)
        self.eval_history.append(point)
        return point

    def eval_stats(self) -> dict[str, float]:
        """As Run.eval_stats: the last evaluation and the best (NaN before the first)."""
        nan = float("nan")
        if not self.eval_history:
            return {"evals": 0, "eval_updates": nan, "eval_x_mean": nan, "eval_x_max": nan, "eval_flag_rate": nan,
                    "eval_return": nan, "eval_best_x": nan, "eval_best_updates": nan}
        last = self.eval_history[-1]
        best = next(point for point in reversed(self.eval_history) if point.best)
        return {"evals": len(self.eval_history), "eval_updates": last.updates, "eval_x_mean": last.x_mean,
                "eval_x_max": last.x_max, "eval_flag_rate": last.flag_rate, "eval_return": last.return_mean,
                "eval_best_x": best.x_mean, "eval_best_updates": best.updates}

    def end(self, reason: str, worker_error: str) -> None:
        """As a run that ended on its own and was stopped: its workers failed with `worker_error`."""
        self.end_reason, self._worker_error = reason, worker_error
        self.workers_failed = True
        for event in (self.stopping, self.stopped, self.done):
            event.set()

    def worker_rows(self) -> list[WorkerRow]:
        error = getattr(self, "_worker_error", "")
        state = "failed" if error else "running"
        return [WorkerRow(i, state, 1000 + i, "1-1", 30 + i, 12_000 + 50 * i, 180.0, 612.0, 1090.0, 1396 - i,
                          0.05 ** (1 + i), 375 + i, 0.2, i, error,
                          node="" if self.config.backend == "local" else f"10.0.0.{i + 2} 3f9a{i}c")
                for i in range(2)]

    def coordinator_stats(self) -> dict[str, float]:
        return {"updates": 399, "updates_per_s": 6.5, "frames_per_s": 1420.0, "episodes": 60, "best_x_pos": 1396,
                "q_loss": 0.0563, "q_mean": 3.99, "q_max": 4.5, "td_error_mean": 0.31, "lr": 2.5e-4,
                "grad_norm": 0.8, "grads_applied": 401, "dropped_stale": 1, "dropped_nonfinite": 0,
                "policy_lag_mean": 1.9, "policy_lag_max": 3, **self.eval_stats()}

    def worker_time_fractions(self) -> dict[str, float]:
        return {"env": 0.7, "act": 0.05, "learn": 0.23, "wait": 0.01}

    def new_log_lines(self) -> list[str]:
        lines, self._unread = self._unread, []
        return lines

    def set_preview_worker(self, worker_id: int) -> None:
        pass

    def read_preview(self, worker_id: int, current_version: int) -> tuple[int, np.ndarray] | None:
        return (1, self.frame) if current_version < 1 else None

    def toggle_pause(self) -> bool:
        self.paused = not self.paused
        return self.paused

    def restart_worker(self, worker_id: int) -> None:
        if not 0 <= worker_id < self.config.workers:
            raise IndexError(f"no worker {worker_id}")

    def restart_stale_workers(self) -> list[int]:
        ids = [row.worker_id for row in self.worker_rows() if row.state in ("stale", "dead", "failed")]
        for worker_id in ids:
            self.restart_worker(worker_id)
        return ids

    def save_checkpoint(self, timeout: float = 60.0) -> bool:
        self.last_checkpoint_error = "a fixed-data run writes no checkpoint"
        return False

    def intact_text(self) -> str:
        return "no earlier checkpoint of this run exists"

    def start(self) -> None:
        """Its figures are there from the start: nothing to start."""

    def stop(self, timeout: float = 30.0, checkpoint: bool = True) -> None:
        for event in (self.stopping, self.stopped, self.done):
            event.set()


class ScreenApp(App):
    CSS_PATH = str(ASSETS)

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.screen_factory = screen_factory

    def on_mount(self) -> None:
        self.push_screen(self.screen_factory())


def test_launch_screen_layout(snap_compare):
    config = RunConfig(run_dir="no-such-folder")  # fixed text: the path shows in the runs panel
    assert snap_compare(ScreenApp(lambda: LaunchScreen(config)), terminal_size=(120, 40))


def test_help_layout(snap_compare):
    assert snap_compare(ScreenApp(HelpScreen), terminal_size=(120, 40))


def dashboard_drawn(screen: DashboardScreen) -> bool:
    """Every part of the dashboard shows its fixed data: table, panel, the five plots, the frame, the log."""
    table_filled = all(value != "-" for row in screen.query_one("#workers", DataTable).rows
                       for value in screen.query_one("#workers", DataTable).get_row(row))
    plots_drawn = all(plot.points_drawn > 0 for plot in screen.query(MetricPlot))
    return (table_filled and plots_drawn and screen.query_one(CoordinatorPanel)._last != ""
            and screen.query_one(FrameView).frame is not None and screen.query_one(Log).line_count == 3)


def test_dashboard_layout(snap_compare, tmp_path):
    run = FixedRun(tmp_path / "demo")

    async def settle(pilot) -> None:
        """Poll until each refresh timer has drawn once (a fixed wait was too short on a loaded CI box)."""
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen)
                         and dashboard_drawn(pilot.app.screen), 30, "every part of the dashboard drawn")

    assert snap_compare(ScreenApp(lambda: DashboardScreen(run, preview="halfblock")), terminal_size=(160, 50),
                        run_before=settle)


def test_dashboard_of_a_ray_run_shows_each_workers_node(snap_compare, tmp_path):
    """On the Ray backend the table gains a node column (address and node id) after the state."""
    run = FixedRun(tmp_path / "demo", backend="ray")

    async def settle(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen)
                         and dashboard_drawn(pilot.app.screen), 30, "every part of the dashboard drawn")

    assert snap_compare(ScreenApp(lambda: DashboardScreen(run, preview="halfblock")), terminal_size=(160, 50),
                        run_before=settle)


def test_dashboard_of_a_run_whose_workers_all_failed(snap_compare, tmp_path):
    """The run stopped on its own: the panel says why and what the keys do now; the table shows each error."""
    run = FixedRun(tmp_path / "demo")
    error = "killed by signal 9 (SIGKILL)"
    run.end(f"every worker failed and none will be restarted (last error: {error})", error)

    async def settle(pilot) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen)
                         and dashboard_drawn(pilot.app.screen)
                         and "STOPPED" in pilot.app.screen.query_one(CoordinatorPanel)._last, 30,
                         "the dashboard drawn with its STOPPED banner")

    assert snap_compare(ScreenApp(lambda: DashboardScreen(run, preview="halfblock")), terminal_size=(160, 50),
                        run_before=settle)
