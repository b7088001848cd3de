"""Launch screen: every run option as a form generated from `RunConfig`, plus previous runs to resume.

Labels, help and validation come from `RunConfig` itself (field docstrings, `problems()`), so the form,
the CLI flags and config.json can never disagree.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Collapsible, DataTable, Header, Input, Label, Select, Static, Switch

from mario_tui.engine.config import (
    MODEL_DEFAULTS,
    ConfigError,
    RunConfig,
    coerce,
    field_choices,
    field_help,
    field_label,
    field_type,
    model_default,
    model_defaults_text,
)
from mario_tui.engine.registry import REGISTRY
from mario_tui.engine.runs import list_runs
from mario_tui.textual_fixes import PrunedFooter, TeardownSafeSelect

ADVANCED_ROWS_PER_BATCH = 6
"""Advanced option rows mounted per step after the first paint (composing all ~60 up front tripled the time to
the first paint: benchmarks/bench_first_paint.py); a batch is short enough that keys stay responsive."""

BASIC_FIELDS = ("model", "workers", "level", "actions", "lr", "lr_min", "gamma", "n_step", "batch_size",
                "buffer_size", "collect_steps", "accumulate_grads", "per", "seed", "device", "name")


class OptionRow(Vertical):
    """Label + input + help/error line for one RunConfig field."""

    DEFAULT_CSS = """
    OptionRow { height: auto; margin: 0 0 1 0; }
    OptionRow > Horizontal { height: auto; }
    OptionRow .option-label { width: 20; padding: 0 1 0 0; text-style: bold; }
    OptionRow Input { width: 1fr; height: 1; border: none; padding: 0 1; background: $boost; }
    OptionRow Input:focus { background: $primary 30%; }
    OptionRow.-invalid Input { background: $error 35%; }
    OptionRow Select { width: 1fr; height: auto; }
    OptionRow Select > SelectCurrent { border: none; height: 1; padding: 0 1; background: $boost; }
    OptionRow Select:focus > SelectCurrent { background: $primary 30%; }
    OptionRow Switch { width: auto; height: 1; border: none; padding: 0; }
    OptionRow .option-help { color: $text-muted; padding-left: 20; }
    OptionRow .option-error { color: $error; padding-left: 20; display: none; }
    OptionRow.-invalid .option-error { display: block; }
    """

    def __init__(self, name: str, value: Any) -> None:
        super().__init__(id=f"row-{name}")
        self.field_name = name
        self.value = value

    def compose(self) -> ComposeResult:
        name, value = self.field_name, self.value
        kind = field_type(name)
        choices = field_choices(name)
        with Horizontal():
            yield Label(field_label(name), classes="option-label")
            if kind is bool:
                yield Switch(value=bool(value), id=f"opt-{name}")
            elif choices:
                options = [(c, c) for c in choices]
                if name == "model":
                    options = [(f"{c} — {REGISTRY[c].description}" + ("" if REGISTRY[c].build else
                                " (not available yet)"), c) for c in choices]
                yield TeardownSafeSelect(options, value=value, allow_blank=False, id=f"opt-{name}")
            else:
                placeholder = "timestamp + model" if name == "name" else ""
                yield Input(value="" if value == "" else str(value), placeholder=placeholder, id=f"opt-{name}")
        others = model_defaults_text(name)
        yield Static(field_help(name) + (f" (default for {others})" if others else ""), classes="option-help",
                     markup=False)
        yield Static("", classes="option-error", id=f"err-{name}", markup=False)

    @property
    def composed(self) -> bool:
        """Whether the row's input exists yet (a row of a batch being mounted may not have composed)."""
        return bool(self.query(f"#opt-{self.field_name}")) and bool(self.query(f"#err-{self.field_name}"))

    def raw_value(self) -> Any:
        widget = self.query_one(f"#opt-{self.field_name}")
        if isinstance(widget, Switch | Select):
            return widget.value
        return widget.value  # type: ignore[attr-defined]

    def show_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(f"#err-{self.field_name}", Static).update(message or "")


def form_config(values: dict[str, Any]) -> tuple[RunConfig | None, dict[str, str]]:
    """Coerce raw form values; returns (config or None, problems by field)."""
    problems: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            typed[name] = coerce(name, raw)
        except ConfigError as exc:
            problems[name] = str(exc)
    if problems:
        return None, problems
    config = RunConfig(**typed)
    problems = config.problems()
    entry = REGISTRY.get(config.model)
    if entry is not None and entry.build is None:
        problems["model"] = f"--model: {config.model!r} is not available yet"
    return (None if problems else config), problems


def marked_name(name: str, marked: bool) -> str:
    """A run's name in the runs list, with a check mark when it is marked for a comparison."""
    return f"✓ {name}" if marked else name


class RunsTable(DataTable):
    """The previous runs; while it has the focus, space marks runs and c compares the marked ones."""

    BINDINGS = [
        Binding("space", "screen.toggle_mark", "Mark to compare"),
        Binding("c", "screen.compare", "Compare marked"),
    ]


class LaunchScreen(Screen):
    """First screen: configure a new run or resume one."""

    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", show=True),
        Binding("ctrl+r", "resume_selected", "Resume selected run", show=True),
        Binding("ctrl+o", "app.replay", "Replay viewer", show=True),
        Binding("ctrl+t", "focus_runs", "Runs list", show=True),
        Binding("q", "app.quit_app", "Quit", show=True),
        Binding("question_mark", "app.help", "Help", show=True, key_display="?"),
    ]

    class LaunchRequested(Message):
        """The user asked to start a run (a new one, or a resume when `resume_dir` is set)."""

        def __init__(self, config: RunConfig, resume_dir: Path | None = None) -> None:
            super().__init__()
            self.config = config
            self.resume_dir = resume_dir

    def __init__(self, config: RunConfig | None = None) -> None:
        super().__init__()
        self.initial = config or RunConfig()
        self.config: RunConfig | None = self.initial
        self.model = self.initial.model
        self.marked: list[str] = []  # run folders marked in the runs list, in marking order, for a comparison
        self.unmounted_rows = [f.name for f in fields(RunConfig) if f.name not in BASIC_FIELDS]
        """Advanced options whose rows are still to be mounted; until then the form uses `unmounted_value`."""

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="launch-body"):
            with VerticalScroll(id="launch-form"):
                yield Static("New run", classes="section-title")
                for name in BASIC_FIELDS:
                    yield OptionRow(name, getattr(self.initial, name))
                yield Collapsible(title="Advanced options", collapsed=True, id="advanced")  # rows: on_mount
            with Vertical(id="launch-side"):
                yield Static("Previous runs", classes="section-title")
                yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True, header_height=2)
                yield Static("", id="runs-empty", markup=False)
                with Horizontal(id="launch-buttons"):
                    yield Button("Launch", id="launch", variant="success")
                    yield Button("Resume selected", id="resume", variant="primary")
                    yield Button("Replay viewer", id="open-replay")
                yield Static("", id="launch-reason", markup=False)
        yield PrunedFooter()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        # Two "best x": the greedy evaluation kept as best.pt (the mean of its episodes' max x: what the agent
        # reliably does) and the furthest exploring (epsilon-greedy) training episode. Both right after the updates,
        # in sight in a 120-column terminal; two-line headers keep the columns as narrow as their numbers.
        table.add_column("run", key="run")
        table.add_columns("updates", "best x\ngreedy", "best x\nexplore", "model", "last\nmodified")
        self.refresh_runs()
        self.validate_form()
        self.call_after_refresh(self._mount_advanced_rows)

    async def _mount_advanced_rows(self) -> None:
        """Mount the next few advanced option rows, then come back after the next refresh until all are in."""
        if not self.is_attached or not self.unmounted_rows:
            return
        batch = self.unmounted_rows[:ADVANCED_ROWS_PER_BATCH]
        rows = [OptionRow(name, self.unmounted_value(name)) for name in batch]
        await self.query_one("#advanced", Collapsible).query_one(Collapsible.Contents).mount_all(rows)
        del self.unmounted_rows[:len(batch)]
        if self.unmounted_rows:
            self.call_after_refresh(self._mount_advanced_rows)
        else:
            self.validate_form()

    def unmounted_value(self, name: str) -> Any:
        """The value an advanced option has before its row exists: the initial one, or the current model's
        default where the initial value was the initial model's default (as `apply_model_defaults` does)."""
        value = getattr(self.initial, name)
        if self.model != self.initial.model and value == model_default(self.initial.model, name):
            return model_default(self.model, name)
        return value

    def refresh_runs(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        runs = [r for r in list_runs(self.current_run_dir()) if r.resumable]
        self.marked = [key for key in self.marked if key in {str(run.path) for run in runs}]
        for run in runs:
            greedy = "-" if run.best_eval_x is None else f"{run.best_eval_x:.0f}"
            table.add_row(marked_name(run.name, str(run.path) in self.marked), f"{run.updates:,}", greedy,
                          str(run.best_x_pos), run.model, f"{run.modified:%Y-%m-%d %H:%M}", key=str(run.path))
        empty = self.query_one("#runs-empty", Static)
        empty.update("Enter resumes the selected run; space marks runs, c compares the marked ones." if runs
                     else f"No resumable runs in {self.current_run_dir()}/ yet.")
        self.query_one("#resume", Button).disabled = not runs

    def current_run_dir(self) -> str:
        try:
            value = self.query_one("#opt-run_dir", Input).value.strip()
        except Exception:  # noqa: BLE001 - before compose
            value = ""
        return value or self.initial.run_dir

    def form_values(self) -> dict[str, Any]:
        rows = {row.field_name: row for row in self.query(OptionRow) if row.composed}
        values = {f.name: self.unmounted_value(f.name) for f in fields(RunConfig) if f.name not in rows}
        values.update((name, row.raw_value()) for name, row in rows.items())
        return values

    def validate_form(self) -> None:
        if not self.query("#launch"):  # the screen is going (a run launched while rows mounted): no form to check
            return
        config, problems = form_config(self.form_values())
        self.config = config
        for row in self.query(OptionRow):
            if row.composed:
                row.show_error(problems.get(row.field_name))
        launch = self.query_one("#launch", Button)
        launch.disabled = config is None
        reason = self.query_one("#launch-reason", Static)
        if problems:
            first = next(iter(problems.values()))
            reason.update(f"Launch is disabled: {first}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1
                                                            else ""))
        else:
            reason.update("Ready: Ctrl+L or the Launch button starts the run.")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event: Message) -> None:
        if isinstance(event, Select.Changed) and event.select.id == "opt-model":
            self.apply_model_defaults(str(event.value))
        self.validate_form()
        if getattr(event, "input", None) is not None and event.input.id == "opt-run_dir":  # type: ignore[attr-defined]
            self.refresh_runs()

    def apply_model_defaults(self, model: str) -> None:
        """Switching models: options still at the old model's default take the new one's (Dreamer's epsilon is
        0); values the user typed stay."""
        old, self.model = self.model, model
        for name in {*MODEL_DEFAULTS.get(old, {}), *MODEL_DEFAULTS.get(model, {})}:
            if not self.query(f"#opt-{name}"):
                continue  # not mounted (or composed) yet: unmounted_value follows self.model
            widget = self.query_one(f"#opt-{name}", Input)
            try:
                untouched = coerce(name, widget.value) == model_default(old, name)
            except ConfigError:
                untouched = False
            if untouched:
                widget.value = str(model_default(model, name))

    @on(Button.Pressed, "#launch")
    def action_launch(self) -> None:
        self.validate_form()
        if self.config is not None:
            self.post_message(self.LaunchRequested(self.config))

    @on(Button.Pressed, "#resume")
    def action_resume_selected(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            self.notify("No run to resume.", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.resume_run(Path(str(key)))

    def action_focus_runs(self) -> None:
        """Move the focus to the runs list (space marks runs there, c compares, Enter resumes)."""
        self.query_one("#runs-table", DataTable).focus()

    def action_toggle_mark(self) -> None:
        """Mark or unmark the run under the cursor for a comparison."""
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked.append(key)
        table.update_cell(key, "run", marked_name(Path(key).name, key in self.marked), update_width=True)

    def action_compare(self) -> None:
        """Open the comparison of the marked runs (two or more)."""
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with space in the runs list, then press c.", severity="warning")
            return
        from mario_tui.screens.compare import ComparisonScreen

        self.app.push_screen(ComparisonScreen([Path(key) for key in self.marked]))

    @on(Button.Pressed, "#open-replay")
    def _open_replay(self) -> None:
        self.app.action_replay()

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.resume_run(Path(str(event.row_key.value)))

    def resume_run(self, folder: Path) -> None:
        try:
            config = RunConfig.load(folder / "config.json")
        except ConfigError as exc:
            self.notify(str(exc), severity="error", title="Cannot resume")
            return
        config = config.replace(name=folder.name, run_dir=str(folder.parent), steps=0)
        self.post_message(self.LaunchRequested(config, folder))
