"""The `mario-tui` app: hosts the coordinator in this process, workers in their own processes.

Screens: Launch (configure / resume) → Dashboard (live run) ⇄ Replay viewer. SIGTERM and SIGHUP (terminal
closed) stop the run cleanly — final checkpoint, workers joined, shared memory unlinked — and restore the
terminal, exactly like `q`.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding

from mario_tui.defaults import DEFAULT_PREVIEW_FPS
from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.errors import CheckpointError
from mario_tui.gc_pacing import PacedCollector
from mario_tui.screens.launch import LaunchScreen
from mario_tui.screens.modals import ConfirmScreen, HelpScreen
from mario_tui.textual_fixes import release_styles_caches

if TYPE_CHECKING:
    from mario_tui.engine.view import RunView

ENGINE_PRELOAD_DELAY_S = 0.5
"""After mounting Launch, the engine import and the forkserver wait this long: started at once, their imports (on a
2-core box, one core each) held the first paint back by ~1.5 s (benchmarks/bench_first_paint.py)."""


def assets_folder() -> Path:
    """The styles: inside the package when installed from a wheel (pyproject's force-include), else the
    checkout's top-level `assets/` (running from the tree or an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "assets"
    return installed if (installed / "app.tcss").is_file() else package.parent / "assets"


ASSETS = assets_folder()


class MarioApp(App):
    """Configure, launch, watch and replay Super Mario Bros training runs."""

    TITLE = "mario-tui"
    CSS_PATH = str(ASSETS / "app.tcss")
    BINDINGS = [Binding("ctrl+c", "quit_app", "Quit", show=False, priority=True)]

    def __init__(self, config: RunConfig | None = None, resume_dir: str | Path | None = None,
                 preview: str = "auto", autostart: bool = False, preview_fps: float = DEFAULT_PREVIEW_FPS) -> None:
        super().__init__()
        self.initial_config = config or RunConfig()
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.preview = preview
        self.preview_fps = preview_fps
        self.autostart = autostart or resume_dir is not None
        self.current_run: RunView | None = None
        self._stopping = False
        self._hard_exit_after_stop = False
        self.final_error: str | None = None  # the last run's final checkpoint could not be written
        self.starting = threading.Event()  # a run is being started (workers spawning): quitting must wait for it
        self.engine_ready = threading.Event()  # the engine (torch) is imported: see preload_engine
        self._quit_when_started = False
        self._start_lock = threading.Lock()
        self.collector = PacedCollector()
        release_styles_caches()

    # --- life cycle ------------------------------------------------------------------------------
    def on_mount(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._on_signal)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        self.collector.start()
        self.set_interval(self.collector.period, self.collector.tick)
        self.push_screen(LaunchScreen(self.initial_config))
        self.set_timer(ENGINE_PRELOAD_DELAY_S, self.preload_engine)
        self.set_interval(1.0, self._stop_ended_run)
        if self.autostart:
            self.start_run(self.initial_config, self.resume_dir)

    def on_unmount(self) -> None:
        self.collector.stop()

    def _on_signal(self) -> None:
        self.shutdown()

    def on_launch_screen_launch_requested(self, message: LaunchScreen.LaunchRequested) -> None:
        self.start_run(message.config, message.resume_dir)

    @property
    def run_live(self) -> bool:
        return self.current_run is not None and not self.current_run.stopped.is_set()

    # --- starting and stopping runs (off the event loop) -----------------------------------------
    @work(thread=True, exclusive=True, group="engine-import")
    def preload_engine(self) -> None:
        """Import the engine (torch: 5-9 s on a small box) after the first paint, while the user reads the form, and
        start the forkserver, which imports it in its own process for the workers.

        The Launch screen needs none of it; a run started before this ends waits for it (the import lock)."""
        try:
            from mario_tui.engine.processes import process_context, start_process_helpers

            start_process_helpers(process_context())
            import mario_tui.engine.session  # noqa: F401
            import mario_tui.screens.dashboard  # noqa: F401
        finally:
            self.engine_ready.set()

    @work(thread=True, exclusive=True, group="run-lifecycle")
    def start_run(self, config: RunConfig, resume_dir: Path | None = None) -> None:
        if self.run_live or not self._start_lock.acquire(blocking=False):
            return  # a second Launch while one is starting or live (the dashboard replaces Launch as it comes up)
        self.starting.set()
        try:
            self._start_run(config, resume_dir)
        finally:
            self.starting.clear()
            self._start_lock.release()

    def _start_run(self, config: RunConfig, resume_dir: Path | None) -> None:
        waiting = not self.engine_ready.is_set()
        if waiting:
            self.call_from_thread(self.notify, "Loading the engine (torch)… the run starts as soon as it is ready.",
                                  timeout=15)
            self.call_from_thread(self._show_launch_waiting, True)
        from mario_tui.engine.session import Run, StartError  # waits for preload_engine's import, if under way

        if waiting:
            self.call_from_thread(self._show_launch_waiting, False)
        self.call_from_thread(self.notify, "Resuming run…" if resume_dir else "Starting run…")
        try:
            with self.collector.held():
                run = Run(config, resume_dir)
                run.start()
        except (ConfigError, CheckpointError, StartError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), title="Cannot start the run", severity="error",
                                  timeout=10)
            if self._quit_when_started:
                self.call_from_thread(self.exit, 0)
            return
        if self._quit_when_started:  # q, Ctrl+C or SIGTERM came while the workers were starting
            self.current_run = run
            self.stop_run("exit")
            return
        # The run's model and buffers are long-lived: freeze them now, while "Starting run…" shows. The collection
        # before the freeze walks ~200k new objects (0.2–0.3 s holding the GIL); done 1 s after the dashboard
        # appeared, it delayed any key pressed then by as much.
        self.collector.freeze()
        self.current_run = run
        self.call_from_thread(self._show_dashboard)

    def _show_launch_waiting(self, waiting: bool) -> None:
        """A spinner on the Launch button while a launched run waits for the engine import."""
        for screen in self.screen_stack:
            if isinstance(screen, LaunchScreen):
                screen.query_one("#launch").loading = waiting

    def _stop_ended_run(self) -> None:
        """A run that ended on its own (steps reached, every worker failed, the coordinator broke) is stopped at
        once — final checkpoint, workers, shared memory — whatever screen is showing; the dashboard stays on it
        so the user can read why."""
        run = self.current_run
        if run is not None and run.done.is_set() and not run.stopping.is_set() and not self._stopping:
            self.stop_run("stay")

    def _show_dashboard(self) -> None:
        from mario_tui.screens.dashboard import DashboardScreen

        self.switch_screen(DashboardScreen(self.current_run, preview=self.preview, preview_fps=self.preview_fps))
        # The dashboard's ~30k widget, style and cache objects are long-lived too: left unfrozen, every paced pass
        # walks them (passes took 60-90 ms instead of 20-40). Freezing them is one pass of the same size.
        self.set_timer(1.0, self.collector.freeze)

    @work(thread=True, group="run-lifecycle")
    def stop_run(self, then: str = "exit") -> None:
        """Stop the run, then `exit` the app, go to the `launch` screen, or `stay` on the dashboard (the run
        ended on its own: the user reads why, then presses n or q)."""
        run = self.current_run
        if run is not None:
            if then != "stay":
                self.call_from_thread(self.notify, "Stopping: final checkpoint, workers, shared memory…", timeout=30)
            run.stop()
            if run.stop_error:
                self.final_error = run.stop_error
                if then == "launch":
                    self.call_from_thread(self.notify, run.stop_error, title="Final checkpoint", severity="error",
                                          timeout=30)
        if then == "stay":
            return
        self.current_run = None
        if then == "exit":
            if self._hard_exit_after_stop:
                # After SIGHUP the terminal is gone and Textual's writer thread can hang on shutdown (seen with
                # textual 8.2.8). The run is already stopped and checkpointed: make sure the process ends.
                watchdog = threading.Timer(5.0, os._exit, args=(0,))
                watchdog.daemon = True
                watchdog.start()
            self.call_from_thread(self.exit, 0)
        elif then == "launch":
            self.call_from_thread(self.switch_screen, LaunchScreen(self.initial_config))

    def shutdown(self) -> None:
        """SIGTERM/SIGHUP: the same cleanup as quitting, without asking."""
        if self._stopping:
            return
        self._stopping = True
        self._hard_exit_after_stop = True
        if self.starting.is_set():
            self._quit_when_started = True  # the starting thread stops the run once it exists, then exits
            return
        self.stop_run("exit")

    def get_system_commands(self, screen):
        """Every action of the footer is also in the command palette (ctrl+p), by name."""
        yield from super().get_system_commands(screen)
        from textual.app import SystemCommand

        from mario_tui.screens.dashboard import DashboardScreen

        if isinstance(screen, DashboardScreen):
            for title, help_text, action in (
                ("Pause / resume training", "Workers hold and the coordinator applies nothing (p)",
                 screen.action_toggle_pause),
                ("Restart selected worker", "Kill and respawn the worker selected in the table (r)",
                 screen.action_restart_selected),
                ("Restart stale workers", "Restart every stale, dead or failed worker (R)",
                 screen.action_restart_stale),
                ("Checkpoint now", "Write checkpoint.pt and weights.pt (s)", screen.action_checkpoint),
                ("Replay viewer", "Watch a checkpoint play an episode, export a GIF (v)", self.action_replay),
                ("New run", "Stop this run after a checkpoint and configure a new one (n)", self.action_new_run),
            ):
                yield SystemCommand(title, help_text, action)
        if isinstance(screen, LaunchScreen):
            yield SystemCommand("Compare marked runs", "Overlay the curves of the runs marked with space in the runs "
                                "list (c)", screen.action_compare)
        yield SystemCommand("Help: keys", "Every key of mario-tui (?)", self.action_help)

    # --- actions shared by screens ---------------------------------------------------------------
    async def action_quit(self) -> None:
        """Textual's own ctrl+q and the palette's "Quit": the same as q (asks while a run is live)."""
        self.action_quit_app()

    def action_quit_app(self) -> None:
        if self._stopping:
            return
        if self.starting.is_set():
            self._stopping = self._quit_when_started = True
            self.notify("Quitting as soon as the run has started (it is stopped cleanly)…", timeout=30)
            return
        if not self.run_live:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._stopping = True
                self.stop_run("exit")

        self.push_screen(ConfirmScreen("A run is live. Quit? A checkpoint is written, the workers are stopped "
                                       "and shared memory is freed.", yes="Quit"), answered)

    def action_new_run(self) -> None:
        if not self.run_live:
            self.switch_screen(LaunchScreen(self.initial_config))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_run("launch")

        self.push_screen(ConfirmScreen("Stop the current run (after a checkpoint) and configure a new one?",
                                       yes="Stop and configure"), answered)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_replay(self) -> None:
        from mario_tui.screens.replay import ReplayScreen

        run = self.current_run
        if run is None:
            self.push_screen(ReplayScreen(self.launch_run_dir()))
            return
        self.push_screen(ReplayScreen(str(run.paths.root.parent), selected=run.paths.root,
                                      first_checkpoint_at=run.config.checkpoint_every))

    def launch_run_dir(self) -> str:
        """The run folder typed in the Launch form (so the viewer lists the runs the user is looking at)."""
        screen = self.screen
        if isinstance(screen, LaunchScreen):
            return screen.current_run_dir()
        return self.initial_config.run_dir


def run_app(config: RunConfig, resume_dir: str | None = None, preview: str = "auto",
            preview_fps: float = DEFAULT_PREVIEW_FPS) -> int:
    from mario_tui.widgets.graphics_probe import probe_graphics

    if preview in ("auto", "sixel", "kitty"):
        probe_graphics()  # asks the terminal what it can draw: only possible before Textual owns stdin
    app = MarioApp(config, resume_dir, preview=preview, preview_fps=preview_fps)
    app.run()
    _wait_cleared(app.starting, 120)
    if app.current_run is not None and not app.current_run.stopped.is_set():  # the app crashed: never leak workers
        app.current_run.stop()
    final_error = app.final_error or (app.current_run.stop_error if app.current_run is not None else None)
    if final_error:  # after the terminal is restored, where it stays readable
        import sys

        print(f"mario-tui: error: {final_error}", file=sys.stderr)
        return app.return_code or 1
    return app.return_code or 0


def _wait_cleared(event: threading.Event, timeout: float) -> None:
    """Wait until a run that was starting when the app ended has started (so it can be stopped, not leaked)."""
    import time

    deadline = time.monotonic() + timeout
    while event.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
