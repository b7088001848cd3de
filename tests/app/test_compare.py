"""Run comparison: curves from fixed training.csv files, marked in the Launch screen's runs list, overlaid; a live
run's new rows appear; damaged or half-written files leave the other runs readable."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from textual.widgets import DataTable

from mario_tui.app import MarioApp
from mario_tui.engine.config import RunConfig
from mario_tui.engine.curves import load_curves
from mario_tui.screens.compare import ComparisonScreen
from mario_tui.screens.launch import LaunchScreen
from mario_tui.widgets.plots import MetricPlot
from tests.app.test_snapshots import ScreenApp
from tests.polling import wait_until

COLUMNS = ("wall_time", "updates", "env_steps", "elapsed_s", "reward_mean", "x_pos_mean", "eval_updates",
           "eval_x_mean")


def curve_rows(rows: int, speed: float, loss: str, eval_every: int = 0, start: int = 0) -> list[dict[str, str]]:
    """Deterministic rows every 100 updates: x grows at `speed`, the loss falls; an evaluation every `eval_every`."""
    out = []
    for i in range(start, start + rows):
        updates = 100 * (i + 1)
        row = {"wall_time": "2026-12-01T10:00:00", "updates": str(updates), "env_steps": str(updates * 64),
               "elapsed_s": f"{updates * 0.12:.1f}", "reward_mean": f"{200 + speed * i + 30 * math.sin(i):.1f}",
               "x_pos_mean": f"{300 + 2 * speed * i:.1f}", loss: f"{1.0 / (1 + 0.1 * i * speed):.4f}",
               "eval_updates": "", "eval_x_mean": ""}
        if eval_every:
            evaluated = (updates // eval_every) * eval_every
            if evaluated:
                row["eval_updates"] = str(evaluated)
                row["eval_x_mean"] = f"{250 + 3 * speed * evaluated / 100:.1f}"
        out.append(row)
    return out


def make_run(root: Path, name: str, model: str, rows: list[dict[str, str]], loss: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(RunConfig(model=model, name=name).to_dict()))
    (folder / "checkpoint.pt").write_bytes(b"not read by the runs list")
    updates = int(rows[-1]["updates"]) if rows else 0
    (folder / "status.json").write_text(json.dumps({"model": model, "updates": updates, "best_x_pos": 700}))
    append_rows(folder, rows, [*COLUMNS, loss])
    return folder


def append_rows(folder: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    path = folder / "training.csv"
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def three_runs(root: Path) -> list[Path]:
    return [make_run(root, "fast-ddqn", "ddqn", curve_rows(40, 12, "q_loss", eval_every=500), "q_loss"),
            make_run(root, "slow-ddqn", "ddqn", curve_rows(30, 4, "q_loss", eval_every=1000), "q_loss"),
            make_run(root, "world-model", "dreamer", curve_rows(20, 6, "wm_loss"), "wm_loss")]


def test_comparison_layout(snap_compare, tmp_path):
    folders = three_runs(tmp_path / "runs")
    assert snap_compare(ScreenApp(lambda: ComparisonScreen(folders)), terminal_size=(160, 48))


def test_curves_read_eval_points_once_and_survive_damaged_files(tmp_path):
    fast, _slow, dreamer = three_runs(tmp_path)
    curves = load_curves(fast)
    assert curves.rows == 40 and curves.model == "ddqn" and curves.loss_name == "q_loss"
    assert list(curves.eval_at["updates"]) == list(range(500, 4001, 500))  # one point per evaluation
    assert curves.eval_at["minutes"][0] == np.float64(500 * 0.12 / 60)  # first row showing it: update 500
    assert load_curves(dreamer).loss_name == "wm_loss" and load_curves(dreamer).eval_x.size == 0
    with (fast / "training.csv").open("a") as handle:
        handle.write("2026-12-01T10:00:00,41")  # a live run half-way through writing a row
    assert load_curves(fast).rows == 40
    (dreamer / "training.csv").write_bytes(b"\xff\xfe\x00garbage")
    (dreamer / "config.json").write_text("{broken")
    damaged = load_curves(dreamer)
    assert damaged.rows == 0 and damaged.model == "?"
    assert load_curves(tmp_path / "no-such-run").rows == 0


async def test_mark_runs_in_the_launch_list_and_compare_them_live(tmp_path, apps):
    root = tmp_path / "runs"
    three_runs(root)
    app = MarioApp(RunConfig(run_dir=str(root)))
    apps.append(app)
    async with app.run_test(size=(160, 48)) as pilot:
        launch = app.screen
        assert isinstance(launch, LaunchScreen)
        table = launch.query_one("#runs-table", DataTable)
        assert table.row_count == 3
        table.focus()
        await pilot.pause()
        await pilot.press("c")  # nothing marked yet: a hint, no screen
        await pilot.pause()
        assert app.screen is launch
        assert any("Mark two or more runs" in n.message for n in app._notifications)
        rows = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(3)]
        await pilot.press("space", "down", "space", "down", "space", "space")  # the third: marked, then unmarked
        assert launch.marked == rows[:2]
        assert [table.get_cell_at((i, 0)) for i in range(3)] == [f"✓ {Path(rows[0]).name}",
                                                                 f"✓ {Path(rows[1]).name}", Path(rows[2]).name]
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ComparisonScreen), 10, "the comparison")
        screen = app.screen
        assert [c.folder for c in screen.curves] == [Path(k) for k in rows[:2]]
        legend = str(screen.query_one("#compare-legend").render())
        assert all(Path(k).name in legend for k in rows[:2]) and Path(rows[2]).name not in legend
        plot = screen.query_one("#plot-x", MetricPlot)
        assert set(plot._series) == {"1", "2"} and plot.xlabel == "update"
        await pilot.press("x")
        assert plot.xlabel == "agent step" and plot._series["1"][0][-1] > 100_000
        await pilot.press("x")
        assert plot.xlabel == "minutes"
        await pilot.press("s", "s")
        assert not plot.smooth and screen.query_one("#plot-eval", MetricPlot).smooth is False

        grow = screen.curves[0].folder
        before, loss = load_curves(grow).rows, load_curves(grow).loss_name
        append_rows(grow, curve_rows(5, 12, loss, eval_every=500, start=before), [*COLUMNS, loss])
        screen.reload_changed()  # what its timer does every few seconds
        assert max(c.rows for c in screen.curves if c.folder == grow) == before + 5
        await pilot.press("escape")
        assert app.screen is launch and launch.marked == rows[:2]
