"""Replay viewer: a checkpoint plays one episode greedily in a background process; then the viewer plays the
recorded frames with play/pause, stepping, speed, per-frame action, Q-value bars, reward and x_pos, and
exports the episode as an animated GIF into the run folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, Select, Static

from mario_tui.engine.config import RunConfig
from mario_tui.engine.errors import CheckpointError
from mario_tui.engine.runs import BEST_FILE, CHECKPOINT_FILE, EMA_WEIGHTS_FILE, WEIGHTS_FILE, list_runs
from mario_tui.textual_fixes import PrunedFooter
from mario_tui.widgets.frame_view import FrameView
from mario_tui.widgets.q_bars import QValueBars

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BASE_FPS = 15.0  # agent steps per second at speed 1 (one step = 4 NES frames: NES speed is 15 steps/s)
FILE_CHOICES = ((BEST_FILE, "best.pt (best eval)"), (WEIGHTS_FILE, "weights.pt"), (CHECKPOINT_FILE, "checkpoint.pt"),
                (EMA_WEIGHTS_FILE, "weights-ema.pt (averaged)"))
"""The files a run can be watched from, as the file select lists them: best.pt (the weights of the best greedy
evaluation) and weights-ema.pt (the averaged weights of an `--eval-ema` run) only where the run has them."""
DEFAULT_FILE = WEIGHTS_FILE  # the newest weights, as before evaluations existed


def file_options(run: Path | None) -> list[tuple[str, str]]:
    """(label, file name) of the watchable files `run` has; with no run (or none left) the files every run has,
    so the select is never empty (Textual refuses an empty select that cannot be blank)."""
    found = [(label, name) for name, label in FILE_CHOICES if run is not None and (run / name).is_file()]
    return found or [(label, name) for name, label in FILE_CHOICES if name not in (BEST_FILE, EMA_WEIGHTS_FILE)]


def pick_file(options: list[tuple[str, str]], current: object) -> str:
    """Keep the current file where the run has it, else weights.pt, else the first the run has."""
    names = [name for _label, name in options]
    for wanted in (current, DEFAULT_FILE):
        if wanted in names:
            return str(wanted)
    return names[0]


class ReplayScreen(Screen):
    BINDINGS = [
        Binding("space", "toggle_play", "Play/pause"),
        Binding("left", "step(-1)", "Back"),
        Binding("right", "step(1)", "Forward"),
        Binding("plus,equals_sign", "speed(1)", "Faster", key_display="+"),
        Binding("minus", "speed(-1)", "Slower", key_display="-"),
        Binding("g", "export_gif", "Export GIF"),
        Binding("enter", "play_episode", "Play episode", show=False),
        Binding("escape", "back", "Back"),
    ]

    DEFAULT_CSS = """
    ReplayScreen #replay-controls { height: auto; padding: 0 1; }
    ReplayScreen #replay-controls Select { width: 1fr; }
    ReplayScreen #replay-controls Input { width: 12; }
    ReplayScreen #replay-controls Label { padding: 1 1 0 1; }
    ReplayScreen #replay-body { height: 1fr; }
    ReplayScreen #replay-frame { width: 2fr; border: round $primary; }
    ReplayScreen #replay-side { width: 1fr; min-width: 36; }
    ReplayScreen #replay-info, ReplayScreen #replay-summary { height: auto; padding: 0 1; border: round $primary; }
    ReplayScreen #replay-q { height: auto; border: round $primary; }
    ReplayScreen #replay-progress { height: auto; padding: 0 1; }
    """

    def __init__(self, run_dir: str, selected: Path | None = None, first_checkpoint_at: int | None = None) -> None:
        """`first_checkpoint_at`: the update at which the live run (`selected`) writes its first checkpoint, so
        that a viewer opened before it says when there will be something to play."""
        super().__init__()
        self.run_dir = run_dir
        self.selected = selected
        self.first_checkpoint_at = first_checkpoint_at
        self.recording = None
        self.position = 0
        self.playing = False
        self.speed_index = SPEEDS.index(1.0)
        self._job = None
        self._episode_pending = False  # Play was pressed and its episode has not come back (or failed) yet
        self._timer = None
        self._file_options: list[tuple[str, str]] = []  # what the file select lists now

    def compose(self) -> ComposeResult:
        yield Header()
        runs = [r for r in list_runs(self.run_dir) if any((r.path / name).is_file() for name, _ in FILE_CHOICES)]
        options = [(f"{r.name} ({r.model}, {r.updates:,} updates)", str(r.path)) for r in runs]
        values = [v for _label, v in options]
        value = str(self.selected) if str(self.selected) in values else (values[0] if values else Select.NULL)
        files = self._file_options = file_options(None if value is Select.NULL else Path(str(value)))
        with Horizontal(id="replay-controls"):
            yield Select(options, value=value, prompt="run", id="replay-run", allow_blank=not options)
            yield Select(files, value=pick_file(files, DEFAULT_FILE), allow_blank=False, id="replay-file",
                         disabled=not options)
            yield Label("level")
            yield Input(placeholder="run's", id="replay-level")
            yield Label("ε")
            yield Input(value="0.02", id="replay-epsilon")
            yield Button("Play episode", id="replay-play", variant="success", disabled=not options)
        yield Static("" if options else self.no_checkpoint_text(), id="replay-progress", markup=False)
        with Horizontal(id="replay-body"):
            yield FrameView(id="replay-frame")
            with Vertical(id="replay-side"):
                yield Static("", id="replay-info", markup=False)
                yield QValueBars(id="replay-q")
                yield Static("", id="replay-summary", markup=False)
        yield PrunedFooter()

    def no_checkpoint_text(self) -> str:
        if self.selected is not None and self.first_checkpoint_at is not None:
            return (f"No checkpoints in {self.run_dir}/ yet: {self.selected.name} writes its first at update "
                    f"{self.first_checkpoint_at:,} (--checkpoint-every).")
        return f"No checkpoints in {self.run_dir}/ yet: train a run first."

    def on_mount(self) -> None:
        self.query_one("#replay-frame", FrameView).border_title = "episode"
        self.query_one("#replay-info", Static).border_title = "frame"
        self.query_one("#replay-q", QValueBars).border_title = "Q-values"
        self.query_one("#replay-summary", Static).border_title = "episode summary"

    @on(Select.Changed, "#replay-run")
    def _run_changed(self, event: Select.Changed) -> None:
        """The file select lists what the chosen run has (best.pt only where it was evaluated), keeping the file
        chosen before where this run has it too."""
        run = None if event.value is Select.NULL or event.value is None else Path(str(event.value))
        options = file_options(run)
        if options == self._file_options:
            return  # the same files: nothing to redo (set_options would reset the choice)
        self._file_options = options
        select = self.query_one("#replay-file", Select)
        current = select.value
        select.set_options(options)
        select.value = pick_file(options, current)

    # --- playing an episode in the background ------------------------------------------------
    def checkpoint_path(self) -> Path | None:
        run = self.query_one("#replay-run", Select).value
        if run is Select.NULL or run is None:
            return None
        return Path(str(run)) / str(self.query_one("#replay-file", Select).value)

    @on(Button.Pressed, "#replay-play")
    def action_play_episode(self) -> None:
        if self._episode_pending:  # Enter while one plays: a second job would orphan the first one's process
            self.notify("An episode is already being played (escape cancels it).", severity="warning")
            return
        path = self.checkpoint_path()
        if path is None:
            self.notify("Pick a run first.", severity="warning")
            return
        level = self.query_one("#replay-level", Input).value.strip() or None
        try:
            epsilon = float(self.query_one("#replay-epsilon", Input).value or 0)
            if not 0 <= epsilon <= 1:
                raise ValueError
        except ValueError:
            self.notify("ε must be a number between 0 and 1.", severity="error")
            return
        if level is not None:
            from mario_tui.engine.config import ConfigError, parse_level_spec

            try:
                parse_level_spec(level)
            except ConfigError as exc:
                self.notify(str(exc), severity="error")
                return
        self._episode_pending = True
        self.query_one("#replay-play", Button).disabled = True
        self.query_one("#replay-progress", Static).update(f"playing {path} …")
        self._play(path, level, epsilon)

    def _open(self) -> bool:
        """The viewer is still on the screen stack: closing it (escape) pops it at once, while its widgets go away
        over the next moments and its progress loop may still be running in its thread."""
        return self.is_attached and self in self.app.screen_stack

    def _from_thread(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the app's thread while the viewer is open; once it is closed (or the app ended)
        nobody wants the progress or the result, and its widgets are gone (querying them raised NoMatches in the
        playback thread, which took the whole app down)."""
        if not self._open():
            return
        with contextlib.suppress(RuntimeError):  # the app stopped running meanwhile
            self.app.call_from_thread(self._if_open, callback, *args)

    def _if_open(self, callback: Callable[..., object], *args: object) -> None:
        if self._open():
            callback(*args)

    @work(thread=True, exclusive=True, group="playback")
    def _play(self, path: Path, level: str | None, epsilon: float) -> None:
        import time

        from mario_tui.engine.playback import PlaybackError, PlaybackJob

        try:
            # a stuck agent's episode ends as `--eval` ends it, not after 2,000 steps of standing at a pipe
            job = PlaybackJob(path, level=level, epsilon=epsilon, stall_steps=RunConfig.eval_stall_steps)
            self._job = job
            job.start()
            if not self._open():  # closed while the process was being started: on_unmount's cancel came too early
                job.cancel()
            while not job.done():
                self._from_thread(self._progress, f"the agent is playing {path.parent.name}/{path.name}: "
                                                  f"{job.progress()} steps…")
                time.sleep(0.2)
            recording = job.result(timeout=30)
        except (CheckpointError, PlaybackError, OSError, TimeoutError, ValueError) as exc:
            self._from_thread(self._failed, str(exc))
            return
        self._from_thread(self._loaded, recording)

    def _progress(self, text: str) -> None:
        self.query_one("#replay-progress", Static).update(text)

    def _failed(self, message: str) -> None:
        self._episode_pending = False
        self.query_one("#replay-play", Button).disabled = False
        self.query_one("#replay-progress", Static).update(f"failed: {message}")
        self.notify(message, title="Replay failed", severity="error", timeout=10)

    def _loaded(self, recording) -> None:
        self._episode_pending = False
        self.recording = recording
        self.position = 0
        self.query_one("#replay-play", Button).disabled = False
        self.query_one("#replay-progress", Static).update(
            f"{len(recording.frames)} frames — space plays, ←/→ step, +/- speed, g exports a GIF")
        self.query_one("#replay-summary", Static).update(recording.summary())
        self.set_focus(None)  # the playback keys (space, arrows, g) go to the viewer, not to a form field
        self.show_frame()
        self.playing = True
        self._restart_timer()

    def on_unmount(self) -> None:
        if self._job is not None and not self._job.done():
            self._job.cancel()

    # --- playback controls -------------------------------------------------------------------
    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(1.0 / (BASE_FPS * SPEEDS[self.speed_index]), self._tick)

    def _tick(self) -> None:
        if not self.playing or self.recording is None:
            return
        if self.position >= len(self.recording.frames) - 1:
            self.playing = False
            return
        self.position += 1
        self.show_frame()

    def show_frame(self) -> None:
        rec = self.recording
        if rec is None:
            return
        frame = rec.frames[self.position]
        self.query_one("#replay-frame", FrameView).update_frame(frame.rgb)
        running_return = sum(f.reward for f in rec.frames[: self.position + 1])
        state = "playing" if self.playing else "paused"
        self.query_one("#replay-info", Static).update(
            f"frame {self.position + 1}/{len(rec.frames)}  ({state}, {SPEEDS[self.speed_index]}×)\n"
            f"action: {frame.action_name or '-'}\nreward: {frame.reward:+.0f}   return: {running_return:.0f}\n"
            f"x_pos: {frame.x_pos}   world {frame.world}-{frame.stage}")
        self.query_one("#replay-q", QValueBars).update_values(rec.action_names, frame.q_values,
                                                               frame.action if frame.action >= 0 else None)

    def action_toggle_play(self) -> None:
        if self.recording is None:
            return
        if not self.playing and self.position >= len(self.recording.frames) - 1:
            self.position = 0
        self.playing = not self.playing
        self.show_frame()

    def action_step(self, delta: int) -> None:
        if self.recording is None:
            return
        self.playing = False
        self.position = max(0, min(len(self.recording.frames) - 1, self.position + delta))
        self.show_frame()

    def action_speed(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self._restart_timer()
        self.show_frame()

    def action_export_gif(self) -> None:
        if self.recording is None:
            self.notify("Play an episode first.", severity="warning")
            return
        self.notify("Writing GIF…")
        self._export(self.recording, self.checkpoint_path())

    @work(thread=True, exclusive=True, group="gif")
    def _export(self, recording, checkpoint: Path | None) -> None:
        from mario_tui.engine.playback import default_gif_path, export_gif

        folder = checkpoint.parent if checkpoint is not None else Path(self.run_dir)
        try:
            path = export_gif(recording, default_gif_path(folder, recording))
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"GIF export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"GIF written: {path}", timeout=8)

    def action_back(self) -> None:
        self.app.pop_screen()
