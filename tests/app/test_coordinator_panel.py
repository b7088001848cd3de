"""The coordinator panel's text for each model."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region

from mario_tui.screens.dashboard import CoordinatorPanel

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
