"""The greedy evaluation in the app: the dashboard's eval plot and panel line, the runs list's best greedy x, and
the replay viewer's best.pt."""

from __future__ import annotations

import json
import os
from pathlib import Path

from textual.widgets import DataTable, Select

from mario_tui.engine.config import RunConfig
from mario_tui.screens.dashboard import DashboardScreen
from mario_tui.screens.launch import LaunchScreen
from mario_tui.screens.replay import ReplayScreen
from mario_tui.widgets.coordinator_panel import CoordinatorPanel
from mario_tui.widgets.plots import MetricPlot
from tests.app.test_snapshots import FixedRun, ScreenApp
from tests.polling import wait_until


def panel_eval_line(screen: DashboardScreen) -> str:
    return next(line for line in str(screen.query_one(CoordinatorPanel).render()).splitlines()
                if line.startswith("greedy eval"))


async def test_eval_plot_and_panel_follow_the_runs_eval_history(tmp_path):
    run = FixedRun(tmp_path / "demo", evaluations=0, eval_every=500)
    app = ScreenApp(lambda: DashboardScreen(run, preview="off"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                         and app.screen.query_one(CoordinatorPanel)._last != "", 10, "the panel")
        screen = app.screen
        plot = screen.query_one("#plot-eval", MetricPlot)
        panel = screen.query_one(CoordinatorPanel)
        lines = panel.size.height
        await wait_until(pilot, lambda: "first eval at update 500" in plot.plain_text(), 10, "the waiting title")
        assert plot.points_drawn == 0
        assert panel_eval_line(screen) == "greedy eval  first eval at update 500"

        run.add_evaluation(412.0)  # what the run's coordinator thread appends after an evaluation
        await wait_until(pilot, lambda: plot.points_drawn == 1, 10, "the first evaluation plotted")
        await wait_until(pilot, lambda: "greedy eval x (mean of episodes' max x)   last 412 · best 412"
                         in plot.plain_text(), 10, "the title with the first result")
        await wait_until(pilot, lambda: panel_eval_line(screen).startswith("greedy eval  x mean 412"), 10,
                         "the panel's eval line")
        assert panel_eval_line(screen) == "greedy eval  x mean 412 · max 535 · flags 0% · best 412 (update 500)"

        run.add_evaluation(455.0, flag_rate=0.2)
        run.add_evaluation(430.0)
        await wait_until(pilot, lambda: plot.points_drawn == 3, 10, "three evaluations plotted")
        assert "last 430 · best 455" in plot.plain_text()
        x_ticks = plot.plain_text().splitlines()[-1].split()
        assert (x_ticks[0], x_ticks[-1]) == ("500", "1500")  # against the update each evaluation was at
        await wait_until(pilot, lambda: "x mean 430" in panel_eval_line(screen), 10, "the panel's last evaluation")
        assert panel_eval_line(screen) == "greedy eval  x mean 430 · max 559 · flags 0% · best 455 (update 1,000)"
        assert panel.size.height == lines  # the eval line was there from the start: no re-layout


async def test_eval_plot_and_panel_say_when_evaluation_is_off(tmp_path):
    run = FixedRun(tmp_path / "demo", evaluations=0, eval_every=0)
    app = ScreenApp(lambda: DashboardScreen(run, preview="off"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                         and app.screen.query_one(CoordinatorPanel)._last != "", 10, "the panel")
        plot = app.screen.query_one("#plot-eval", MetricPlot)
        await wait_until(pilot, lambda: "greedy eval x   off (--eval-every 0)" in plot.plain_text(), 10,
                         "the plot saying evaluation is off")
        assert panel_eval_line(app.screen) == "greedy eval  off (--eval-every 0)"


def make_run(root: Path, name: str, files: tuple[str, ...], status: dict | None = None, age_s: float = 0) -> Path:
    """A run folder as list_runs reads it: config.json, status.json and (empty) files of the given names."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "ddqn"}))
    if status is not None:
        (folder / "status.json").write_text(json.dumps(status))
    for file in files:
        (folder / file).write_bytes(b"")
    when = 1_790_000_000 - age_s  # a fixed order in the lists: newest first
    for path in folder.iterdir():
        os.utime(path, (when, when))
    return folder


async def test_runs_list_shows_the_best_greedy_x_beside_the_best_exploring_x(tmp_path):
    make_run(tmp_path, "evaluated", ("checkpoint.pt", "weights.pt", "best.pt"),
             {"updates": 12345, "best_x_pos": 1396, "best_eval_x": 455.4})
    make_run(tmp_path, "older", ("checkpoint.pt", "weights.pt"), {"updates": 800, "best_x_pos": 722}, age_s=60)
    app = ScreenApp(lambda: LaunchScreen(RunConfig(run_dir=str(tmp_path))))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.query("#runs-table")
                         and app.screen.query_one("#runs-table", DataTable).row_count == 2, 10, "the runs list")
        table = app.screen.query_one("#runs-table", DataTable)
        headers = [str(column.label).replace("\n", " ") for column in table.columns.values()]
        assert headers[:4] == ["run", "updates", "best x greedy", "best x explore"]
        assert table.get_row_at(0)[:4] == ["evaluated", "12,345", "455", "1396"]
        assert table.get_row_at(1)[:4] == ["older", "800", "-", "722"]  # never evaluated
        # Both best x columns are in sight in a 120-column terminal (not scrolled off to the right).
        region = table.content_region
        shown = "\n".join(table.render_line(y).text for y in range(region.height))
        assert "explore" in shown and "455" in shown and "1396" in shown


def file_select_values(screen: ReplayScreen) -> list[str]:
    return [str(value) for _label, value in screen.query_one("#replay-file", Select)._options]


async def test_replay_viewer_offers_best_pt_only_for_a_run_that_has_one(tmp_path):
    evaluated = make_run(tmp_path, "evaluated", ("checkpoint.pt", "weights.pt", "best.pt"))
    plain = make_run(tmp_path, "plain", ("checkpoint.pt", "weights.pt"), age_s=60)
    weights_only = make_run(tmp_path, "exported", ("weights.pt",), age_s=120)
    checkpoint_only = make_run(tmp_path, "crashed", ("checkpoint.pt",), age_s=180)
    app = ScreenApp(lambda: ReplayScreen(str(tmp_path), selected=evaluated))
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen.is_mounted, 10, "viewer")
        screen = app.screen
        runs, files = screen.query_one("#replay-run", Select), screen.query_one("#replay-file", Select)
        assert file_select_values(screen) == ["best.pt", "weights.pt", "checkpoint.pt"]
        assert files.value == "weights.pt"  # the newest weights stay the default
        assert "best.pt (best eval)" in [str(label) for label, _value in files._options]
        files.value = "best.pt"
        await pilot.pause()
        assert screen.checkpoint_path() == evaluated / "best.pt"

        runs.value = str(plain)  # no best.pt here: it is not offered, and the choice falls back to weights.pt
        await wait_until(pilot, lambda: file_select_values(screen) == ["weights.pt", "checkpoint.pt"], 10,
                         "the plain run's files")
        assert files.value == "weights.pt" and screen.checkpoint_path() == plain / "weights.pt"
        files.value = "checkpoint.pt"
        runs.value = str(evaluated)  # back: the checkpoint.pt chosen is kept, since this run has one too
        await wait_until(pilot, lambda: "best.pt" in file_select_values(screen), 10, "best.pt offered again")
        assert files.value == "checkpoint.pt"

        runs.value = str(weights_only)
        await wait_until(pilot, lambda: file_select_values(screen) == ["weights.pt"], 10, "weights.pt only")
        assert screen.checkpoint_path() == weights_only / "weights.pt"
        runs.value = str(checkpoint_only)
        await wait_until(pilot, lambda: file_select_values(screen) == ["checkpoint.pt"], 10, "checkpoint.pt only")
        assert screen.checkpoint_path() == checkpoint_only / "checkpoint.pt" and screen.checkpoint_path().is_file()


async def test_replay_viewer_without_runs_has_a_file_select_and_no_play(tmp_path):
    app = ScreenApp(lambda: ReplayScreen(str(tmp_path / "none-yet")))
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen.is_mounted, 10, "viewer")
        screen = app.screen
        assert screen.query_one("#replay-play").disabled and screen.query_one("#replay-file").disabled
        assert screen.checkpoint_path() is None
        assert "No checkpoints" in str(screen.query_one("#replay-progress").render())
