"""Compare runs: their curves overlaid (reward, x per episode, loss, greedy evaluation x), one colour per run, on
updates, agent steps or wall-clock minutes. Read from each run's training.csv and re-read while it grows, so a
live run (another terminal's `--batch`) moves on the screen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Header, Static

from mario_tui.engine.curves import X_AXES, RunCurves, csv_signature, load_curves
from mario_tui.textual_fixes import PrunedFooter
from mario_tui.widgets.plots import PALETTE, MetricPlot, rgb_style

SMOOTHING: tuple[tuple[str, float | None], ...] = (("as the dashboard", 0.05), ("light", 0.3), ("off", None))
"""EMA weights per row the `s` key cycles through: the first is the dashboard plots' own; None draws raw lines."""

RELOAD_S = 5.0  # how often the runs' CSV files are checked for new rows

PLOTS = (("plot-reward", "reward (mean of the last 100 episodes)", "reward_mean"),
         ("plot-x", "x position (mean of the last 100 episodes)", "x_pos_mean"),
         ("plot-loss", "loss", "loss"),
         ("plot-eval", "greedy evaluation: mean max x", "eval"))


class ComparisonScreen(Screen):
    """Two or more runs' training.csv curves, overlaid with a legend."""

    DEFAULT_CSS = """
    ComparisonScreen #compare-legend { height: auto; padding: 0 1; }
    ComparisonScreen #compare-plots { grid-size: 2 2; height: 1fr; padding: 0 1; }
    ComparisonScreen #compare-status { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("x", "next_axis", "x axis"),
        Binding("s", "next_smoothing", "Smoothing"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit_app", "Quit"),
    ]

    def __init__(self, folders: Sequence[Path | str], axis: str = "updates") -> None:
        super().__init__()
        self.folders = [Path(f) for f in folders]
        self.axis = axis
        self.smoothing = 0
        self.curves: list[RunCurves] = [load_curves(folder) for folder in self.folders]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("", id="compare-legend")
        with Grid(id="compare-plots"):
            for plot_id, title, _column in PLOTS:
                yield MetricPlot(title=title, xlabel=X_AXES[self.axis], id=plot_id, interval=0.1,
                                 smooth=plot_id != "plot-eval")
        yield Static("", id="compare-status", markup=False)
        yield PrunedFooter()

    def on_mount(self) -> None:
        self.title = f"mario-tui — compare {len(self.curves)} runs"
        self.draw()
        self.set_interval(RELOAD_S, self.reload_changed)

    # --- data ------------------------------------------------------------------------------------
    def reload_changed(self) -> None:
        """Re-read the runs whose CSV files changed since they were read (a live run's new rows)."""
        changed = False
        for i, curves in enumerate(self.curves):
            if csv_signature(curves.folder) != curves.signature:
                self.curves[i] = load_curves(curves.folder)
                changed = True
        if changed:
            self.draw()

    def draw(self) -> None:
        label, alpha = SMOOTHING[self.smoothing]
        for plot_id, _title, column in PLOTS:
            plot = self.query_one(f"#{plot_id}", MetricPlot)
            plot.clear()
            plot.xlabel = X_AXES[self.axis]
            if plot_id != "plot-eval":
                plot.set_smoothing(alpha)
            if column == "loss":
                losses = sorted({c.loss_name for c in self.curves})
                plot.set_title(f"loss ({' / '.join(losses)})")
            for number, curves in enumerate(self.curves, start=1):
                if column == "eval":
                    xs, ys = curves.eval_at[self.axis], curves.eval_x
                else:
                    xs, ys = curves.x(self.axis), curves.columns[curves.loss_name if column == "loss" else column]
                plot.set_series(str(number), xs, ys)
        self.query_one("#compare-legend", Static).update(self.legend())
        self.query_one("#compare-status", Static).update(
            f"x axis: {X_AXES[self.axis]} (x)   smoothing: {label} (s)   re-read every {RELOAD_S:.0f} s while a "
            "run grows (r: now)")

    def legend(self) -> Text:
        """One line per run: its colour and number (the plots' legend), name, model and where it got to."""
        text = Text()
        for number, curves in enumerate(self.curves, start=1):
            if number > 1:
                text.append("\n")
            text.append(f"━ {number} ", rgb_style(PALETTE[(number - 1) % len(PALETTE)], bold=True))
            text.append(curves.name, "bold")
            if not curves.rows:
                text.append("   no rows in training.csv yet", "dim")
                continue
            minutes = curves.last("elapsed_s") / 60
            best_eval = float(curves.eval_x.max()) if curves.eval_x.size else None
            text.append(f"   {curves.model}   {curves.last('updates'):,.0f} updates   "
                        f"{curves.last('env_steps'):,.0f} agent steps   {minutes:,.1f} min   "
                        f"x {curves.last('x_pos_mean'):,.0f}", "dim")
            text.append(f"   best greedy x {best_eval:,.0f}" if best_eval is not None else "   not evaluated",
                        "dim")
        return text

    # --- actions ---------------------------------------------------------------------------------
    def action_next_axis(self) -> None:
        axes = list(X_AXES)
        self.axis = axes[(axes.index(self.axis) + 1) % len(axes)]
        self.draw()

    def action_next_smoothing(self) -> None:
        self.smoothing = (self.smoothing + 1) % len(SMOOTHING)
        self.draw()

    def action_reload(self) -> None:
        self.curves = [load_curves(folder) for folder in self.folders]
        self.draw()

    def action_back(self) -> None:
        self.app.pop_screen()
