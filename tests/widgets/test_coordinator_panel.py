"""The coordinator panel's text for each model."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult
from textual.geometry import Region

from mario_tui.widgets.coordinator_panel import PANEL_WIDTH, CoordinatorPanel

STATS = {"updates": 120, "updates_per_s": 1.1, "frames_per_s": 151.0, "episodes": 6, "best_x_pos": 1136,
         "lr": 2.5e-4, "grad_norm": 1186.5, "grads_applied": 120, "dropped_stale": 0, "dropped_nonfinite": 0,
         "policy_lag_mean": 2.0, "policy_lag_max": 3}


class PanelApp(App):
    CSS = "CoordinatorPanel { width: 80; }"  # its width in the dashboard of a 120-column terminal
    def compose(self) -> ComposeResult:
        yield CoordinatorPanel()


async def test_dreamer_shows_each_parts_gradient_norm_within_a_120_column_panel():
    app = PanelApp()
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.query_one(CoordinatorPanel)
        dreamer = {**STATS, "grad_norm_world_model": 1186.53, "grad_norm_actor": 0.3286, "grad_norm_critic": 6.636}
        panel.show(dreamer, False, {}, "dreamer")
        await pilot.pause()
        lines = str(panel.render()).splitlines()
        norm_line = next(line for line in lines if line.startswith("LR "))
        assert norm_line == "LR 2.50e-04   grad norm 1.19e+03 (wm 1.19e+03, actor 0.329, critic 6.64)"
        assert len(norm_line) <= 120 * 2 // 3 - 4  # the panel's share of a 120-column terminal, less border
        # No line wraps, whatever the values: the height is the line count (a wrap would need a re-layout).
        assert panel.size.height == len(lines)
        huge = {key: -12345.6 for key in dreamer} | {"updates": 10**9, "grads_applied": 10**9}
        panel.show(huge, True, {"env": 0.7, "act": 0.05, "learn": 0.23, "wait": 0.01}, "dreamer")
        await pilot.pause()
        shown = [strip.text for strip in panel.render_lines(Region(0, 0, *panel.outer_size))]
        assert len(str(panel.render()).splitlines()) == len(lines) + 1  # the worker-time line
        assert panel.size.height == len(lines) + 1 and any(line.endswith("… │") for line in shown)
        panel.show(STATS, False, {}, "ddqn")  # one parameter group: no parts
        await pilot.pause()
        assert "LR 2.50e-04   grad norm 1.19e+03" in str(panel.render()).splitlines()


NO_EVAL = {"evals": 0, "eval_updates": math.nan, "eval_x_mean": math.nan, "eval_x_max": math.nan,
           "eval_flag_rate": math.nan, "eval_return": math.nan, "eval_best_x": math.nan, "eval_best_updates": math.nan}
ONE_EVAL = {"evals": 1, "eval_updates": 1000, "eval_x_mean": 412.4, "eval_x_max": 596, "eval_flag_rate": 0.0,
            "eval_return": 310.2, "eval_best_x": 455.0, "eval_best_updates": 500}


def eval_shown(panel: CoordinatorPanel) -> tuple[str, list[str]]:
    """The eval line as built, and every line as drawn (inside the border)."""
    line = next(line for line in str(panel.render()).splitlines() if line.startswith("greedy eval"))
    shown = [strip.text for strip in panel.render_lines(Region(0, 0, *panel.outer_size))]
    return line, shown


async def test_the_greedy_eval_line_fits_the_panel_before_after_and_without_evaluations():
    app = PanelApp()
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.query_one(CoordinatorPanel)
        fractions = {"env": 0.7, "act": 0.05, "learn": 0.23, "wait": 0.01}
        cases = [
            ({**STATS, **NO_EVAL}, 500, "greedy eval  first eval at update 500"),
            ({**STATS, **NO_EVAL, "updates": 700}, 500, "greedy eval  no result yet (every 500 updates)"),
            ({**STATS, **ONE_EVAL}, 500, "greedy eval  x mean 412 · max 596 · flags 0% · best 455 (update 500)"),
            ({**STATS, **NO_EVAL}, 0, "greedy eval  off (--eval-every 0)"),
            # A resumed run knows best.pt's score before its first evaluation of this session.
            ({**STATS, **NO_EVAL, "updates": 12_345, "eval_best_x": 455.0, "eval_best_updates": 12_000}, 500,
             "greedy eval  no result yet (every 500 updates) · best 455 (update 12,000)"),
            # The widest values: the best's update gives way rather than the line being cut.
            ({**STATS, **ONE_EVAL, "eval_x_mean": 3161.0, "eval_x_max": 3266, "eval_flag_rate": 1.0,
              "eval_best_x": 3161.0, "eval_best_updates": 9_999_500}, 500,
             "greedy eval  x mean 3161 · max 3266 · flags 100% · best 3161"),
            ({**STATS, **ONE_EVAL, "eval_x_mean": 3161.0, "eval_x_max": 3266, "eval_flag_rate": 1.0,
              "eval_best_x": 3161.0, "eval_best_updates": 99_500}, 500,
             "greedy eval  x mean 3161 · max 3266 · flags 100% · best 3161 (update 99,500)"),
            # best.pt ranks flags first, so its flag rate stands beside its score; the update gives way to it
            ({**STATS, **ONE_EVAL, "eval_x_mean": 2680.0, "eval_flag_rate": 0.0, "eval_best_x": 2301.2,
              "eval_best_flag_rate": 0.2, "eval_best_updates": 65_776}, 500,
             "greedy eval  x mean 2680 · max 596 · flags 0% · best 2301, flags 20%"),
            ({**STATS, **ONE_EVAL, "eval_x_mean": 3161.0, "eval_x_max": 3266, "eval_flag_rate": 1.0,
              "eval_best_x": 3161.0, "eval_best_flag_rate": 1.0, "eval_best_updates": 99_500}, 500,
             "greedy eval  x mean 3161 · max 3266 · flags 100% · best 3161, flags 100%"),
        ]
        heights = set()
        for stats, eval_every, expected in cases:
            panel.show(stats, False, fractions, "ddqn", eval_every=eval_every)
            await pilot.pause()
            line, shown = eval_shown(panel)
            assert line == expected
            assert len(line) <= PANEL_WIDTH
            assert any(row.startswith(f"│ {line}") and not row.endswith("… │") for row in shown)  # drawn whole
            heights.add(panel.size.height)
        assert heights == {len(str(panel.render()).splitlines())}  # one line count in every state: no re-layout


async def test_an_optional_learner_metric_is_listed_only_once_it_arrives():
    app = PanelApp()
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.query_one(CoordinatorPanel)
        ddqn = {**STATS, "q_loss": 0.05, "q_mean": 3.9, "q_max": 4.5, "td_error_mean": 0.3}
        panel.show(ddqn, False, {}, "ddqn")
        await pilot.pause()
        assert "q_loss" in str(panel.render()) and "bound_share" not in str(panel.render())
        panel.show({**ddqn, "bound_share": 0.125}, False, {}, "ddqn")  # a run with --lower-bound
        await pilot.pause()
        assert "bound_share 0.125" in str(panel.render())
