"""`CoordinatorPanel`: the coordinator's figures (updates, rates, losses, greedy evaluation) in a few lines.

Its line count stays fixed per model whatever the run does (paused, waiting for an evaluation, stopped), so a
refresh repaints the panel without re-laying out the dashboard around it.
"""

from __future__ import annotations

import math
from functools import cache

from rich.text import Text
from textual.widgets import Static

from mario_tui.engine.metrics import best_flags_text
from mario_tui.engine.registry import REGISTRY


def fmt(value: float | None, spec: str = ".3g") -> str:
    """A figure for the panel: `-` for a missing (None, NaN or infinite) one."""
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "-"
    return format(value, spec)


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
    text += f" · best {best:.0f}" + best_flags_text(stats)
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
        entry = REGISTRY[model]
        learner = [name for name in entry.metrics
                   if name != "batch_size" and (name in stats or name not in entry.optional_metrics)]
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
