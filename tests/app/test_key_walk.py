"""No key in any screen state may crash the app: every binding, every palette command, a few generic keys.

`walk_keys` presses, in one screen state, every key the state binds (the screen's and the app's BINDINGS and
`app.active_bindings`, read at run time so a new binding is walked without touching this file), runs every
command-palette command as the palette does (`app.call_later(callback)`), and presses a few generic keys. After
each one the app must still run and answer, and is brought back to the state before the next. Keys that quit
are tried last, with `App.exit` intercepted for the press: so "quits without asking while a run is live" is a
finding, not the end of the walk, and states with no run can try every quitting key in one app.

The states are real: real runs with tiny models, real worker processes, shared memory. Where a state is a
moment (a run starting, a run stopping, an episode being played), the moment is held open: a gate on the engine
call in flight (`Run.start`, `Supervisor.stop_all`), or SIGSTOP on the playback process, so no walk depends on
timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandList, CommandPalette
from textual.dom import DOMNode
from textual.keys import REPLACED_KEYS, _get_unicode_name_from_key
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, Select

from mario_tui.app import MarioApp
from mario_tui.engine.session import Run, process_context, start_process_helpers
from mario_tui.screens.compare import ComparisonScreen
from mario_tui.screens.dashboard import DashboardScreen
from mario_tui.screens.launch import LaunchScreen
from mario_tui.screens.modals import ConfirmScreen, HelpScreen
from mario_tui.screens.replay import SPEEDS, ReplayScreen
from tests.app.test_app import tiny
from tests.app.test_compare import three_runs
from tests.polling import wait_until

GENERIC_KEYS = ("tab", "shift+tab", "enter", "escape", "up", "down", "left", "right", "space", "a", "x")
"""Keys a user presses anywhere, bound or not."""
QUIT_ACTIONS = frozenset({"quit", "app.quit", "quit_app", "app.quit_app"})
QUIT_CALLBACKS = frozenset({"action_quit", "action_quit_app"})
KEY_DEADLINE = 5.0
"""Seconds a key may take to be handled, and the app to answer after it: longer is "unresponsive" (a blocked event
loop). The slowest key here takes ~1 s (the theme palette over a live dashboard on 2 cores)."""

QuitExpect = Literal["exit", "ask"]
"""What quitting keys must do in a state: `exit` (no live run: the app ends), `ask` (a run is live: a confirm dialog
opens, the app goes on)."""


# --- the walk --------------------------------------------------------------------------------------------------
def key_event(key: str) -> events.Key:
    """The Key event a terminal sends for `key`, made as `Pilot.press` makes it."""
    char: str | None
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def press(pilot: Pilot, key: str) -> None:
    """The key into the app as the terminal driver sends it, then `pilot.pause()`.

    `Pilot.press` also waits twice per key for the process to look idle (CPU time against wall time): with a run's
    coordinator thread polling in this process each wait took ~65 ms, which over the walks' ~300 keys was most of
    the file's time. `pilot.pause()` waits for the screen's message queues, then once for idle."""
    pilot.app.post_message(key_event(key))
    await pilot.pause()


def state_bindings(app: App, screen: Screen) -> dict[str, list[tuple[DOMNode, str]]]:
    """Every key the state binds, with who binds it to what action: the active bindings (the focused widget's,
    the screen's, the app's), then what the screen and app classes declare, inherited ones included (so a binding
    that is not active at this moment, or hidden behind another, is pressed too)."""
    keys: dict[str, list[tuple[DOMNode, str]]] = {}
    for key, active in app.active_bindings.items():
        keys.setdefault(key, []).append((active.node, active.binding.action))
    for node in (screen, app):
        for cls in type(node).__mro__:
            for binding in Binding.make_bindings(vars(cls).get("BINDINGS", ())):
                keys.setdefault(binding.key, []).append((node, binding.action))
    return keys


def action_method(node: DOMNode, action: str) -> Callable[..., Any] | None:
    """The method a binding's action runs (`app.help` on any node: the app's `action_help`), None for actions
    with arguments."""
    namespace, _, name = action.rpartition(".")
    if "(" in name:
        return None
    target = {"app": node.app, "screen": node.screen}.get(namespace, node) if namespace else node
    return getattr(target, f"action_{name}", None)


def is_quit_command(command: SystemCommand) -> bool:
    return command.title == "Quit" or getattr(command.callback, "__name__", "") in QUIT_CALLBACKS


def commands_of(app: App, screen: Screen) -> dict[str, SystemCommand]:
    """The command palette's commands for `screen`, by title."""
    return {command.title: command for command in app.get_system_commands(screen)}


@contextlib.contextmanager
def exits_recorded(app: App) -> Iterator[list[tuple]]:
    """`app.exit` calls are recorded instead of ending the app (a quitting key can be tried and the walk go on)."""
    calls: list[tuple] = []
    app.exit = lambda *args, **kwargs: calls.append((args, kwargs))  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del app.exit  # the class's method again


def app_exception(app: App) -> BaseException | None:
    """What crashed the app (Textual keeps it to re-raise when `run_test` ends)."""
    return getattr(app, "_exception", None)


async def assert_alive(app: App, what: str) -> None:
    """The app runs, has not crashed, and answers: a callback posted to its message queue runs within
    KEY_DEADLINE (a blocked or dead event loop never runs it) and the screen answers a query."""
    assert app.is_running and app.return_code is None and app_exception(app) is None, (
        f"{what}: the app stopped (return code {app.return_code}): {app_exception(app)!r}")
    answered = asyncio.get_running_loop().create_future()
    app.call_later(answered.set_result, True)
    try:
        await asyncio.wait_for(answered, KEY_DEADLINE)
    except TimeoutError:
        raise AssertionError(f"{what}: the app did not answer within {KEY_DEADLINE} s") from None
    assert app.is_running and app_exception(app) is None, f"{what}: the app stopped: {app_exception(app)!r}"
    assert app.screen.query("*"), f"{what}: the screen answers no query"


async def unwind(pilot: Pilot, app: App, home: Screen) -> None:
    """Undo what a key did to the screen stack and to `home`'s widgets: screens pushed above `home` are closed as
    a user would (`n` on a confirm dialog, escape on the others), an open select list is closed, the keys panel
    (palette: "Keys") hidden and a maximized widget restored. Costs nothing when there is nothing to undo."""
    for _ in range(10):
        if home not in app.screen_stack or app.screen is home:
            break
        top = app.screen
        await press(pilot, "n" if isinstance(top, ConfirmScreen) else "escape")
        if app.screen is top:  # the key did not close it: close it directly
            app.pop_screen()
            await pilot.pause()
    if app.screen is not home:
        return
    changed = False
    for select in home.query(Select):
        if select.expanded:
            select.expanded = False
            changed = True
    if home.query("HelpPanel"):
        app.action_hide_help_panel()
        changed = True
    if home.maximized is not None:
        home.minimize()
        changed = True
    if changed:
        await pilot.pause()


async def walk_keys(pilot: Pilot, app: App, restore: Callable[[], Awaitable[None]], state_name: str, *,
                    in_state: Callable[[], bool] | None = None, quit_expect: QuitExpect = "ask",
                    leave: Collection[str] = (), textual_keys: bool = True,
                    findings: list[str] | None = None) -> list[str]:
    """Press every key and run every palette command of the current state; after each, the app must run and
    answer, and is brought back to the state: the walk closes what the key pushed over the state's screen and
    focuses what was focused (`unwind`), then awaits `restore()` for the rest (resume a run a key paused, reopen a
    dialog a key answered). `in_state()` must hold again (default: the same kind of screen on top).

    A palette command that runs what a key of the state already ran (Pause / resume = p) is not run again.
    `leave`: keys or command titles not tried because they leave the state for good (the test takes them as its
    next step: ctrl+l on Launch starts a run). `textual_keys=False` skips what only Textual's own code answers
    (the focused widget's own cursor, scroll and editing keys; Textual's palette commands Theme, Keys, Maximize,
    Screenshot) for a state whose screen and focus an earlier walk tried them on; the generic keys (arrows,
    enter, space) still reach the widget, and Quit is always tried. Quitting keys and commands go last, checked
    against `quit_expect`.
    A crash or an app that stops answering fails at once; a quitting key that does not do what `quit_expect` says
    is appended to `findings` for the caller to assert at the end of its test (so one run lists them all), or
    with no list given fails at the end of this walk. Returns what was tried ("key p", "command 'Quit'")."""
    problems: list[str] = [] if findings is None else findings
    home, focus = app.screen, app.focused
    home_type = type(home)
    check = in_state or (lambda: type(app.screen) is home_type)
    bindings = state_bindings(app, home)
    if not textual_keys:
        bindings = {k: b for k, b in bindings.items() if any(node in (home, app) for node, _ in b)}
    keys = [k for k in dict.fromkeys([*bindings, *GENERIC_KEYS]) if k not in leave]
    quit_keys = [k for k in keys if any(action in QUIT_ACTIONS for _, action in bindings.get(k, ()))]
    pressed = [action_method(node, action) for k in keys for node, action in bindings.get(k, ())]
    commands = commands_of(app, home)
    if not textual_keys:
        textuals = {c.title for c in App.get_system_commands(app, home) if not is_quit_command(c)}
        commands = {t: c for t, c in commands.items() if t not in textuals}
    titles = [t for t in commands if t not in leave and commands[t].callback not in pressed]
    quit_titles = [t for t in titles if is_quit_command(commands[t])]
    tried: list[str] = []

    async def back(what: str) -> None:
        nonlocal home, focus
        await unwind(pilot, app, home)
        if app.screen is home and app.focused is not focus and (focus is None or focus.is_attached):
            app.set_focus(focus)
        await restore()
        if not check():
            await wait_until(pilot, check, 30, f"{state_name}: back in the state after {what}")
        await assert_alive(app, f"{state_name}: back after {what}")
        if app.screen is not home:  # the state's screen was made anew (a dialog reopened, the viewer reopened)
            home, focus = app.screen, app.focused

    async def attempt(what: str, act: Callable[[], Awaitable[None]], quitting: bool) -> None:
        tried.append(what)
        before = app.screen
        start = time.monotonic()
        with exits_recorded(app) if quitting else contextlib.nullcontext([]) as exits:
            await act()
            took = time.monotonic() - start
            await assert_alive(app, f"{state_name}: {what}")
        assert took < KEY_DEADLINE, f"{state_name}: {what} took {took:.1f} s (the event loop was blocked)"
        if quitting:
            asked = isinstance(app.screen, ConfirmScreen) and app.screen is not before
            if quit_expect == "exit" and not exits:
                problems.append(f"{state_name}: {what} did not quit (no run is live)")
            elif quit_expect == "ask" and (exits or not asked):
                problems.append(f"{state_name}: {what} " + ("quit at once, without asking, while a run is live"
                                                           if exits else "did not ask before quitting a live run"))
        await back(what)

    def key(name: str) -> Callable[[], Awaitable[None]]:
        async def act() -> None:
            await press(pilot, name)
        return act

    def command(title: str) -> Callable[[], Awaitable[None]]:
        async def act() -> None:
            found = commands_of(app, app.screen).get(title)
            assert found is not None, f"{state_name}: the palette lost its command {title!r}"
            app.call_later(found.callback)  # what the palette does with a chosen command once it has closed
            await pilot.pause()
        return act

    for name in keys:
        if name not in quit_keys:
            await attempt(f"key {name}", key(name), quitting=False)
    for title in titles:
        if title not in quit_titles:
            await attempt(f"command {title!r}", command(title), quitting=False)
    for name in quit_keys:
        await attempt(f"key {name}", key(name), quitting=True)
    for title in quit_titles:
        await attempt(f"command {title!r}", command(title), quitting=True)
    if findings is None:
        assert not problems, "\n".join(problems)
    return tried


def assert_no_findings(findings: list[str]) -> None:
    assert not findings, "keys that did not do what they must:\n" + "\n".join(findings)


# --- states ----------------------------------------------------------------------------------------------------
QUITTING = ("q", "ctrl+c", "ctrl+q", "Quit")
"""The quitting keys and command, for a state where quitting cannot be undone (tested on its own instead)."""


@pytest.fixture(scope="module", autouse=True)
def process_helpers() -> None:
    """The forkserver imports torch while the first walks run, as `run_app` has it do while the user fills the
    form (else the first run's workers wait ~4 s for it)."""
    start_process_helpers(process_context())


@pytest.fixture(autouse=True)
def screenshots_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The palette's "Screenshot" saves into the user's downloads folder: keep it in the test's folder."""
    monkeypatch.setattr("textual.app.user_downloads_path", lambda: tmp_path)


class Gate:
    """Holds a call (an engine method) until opened, so a moment such as "a run is starting" lasts while the walk
    runs. `entered` is set once a call waits at the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, waiting at the gate before it runs."""
        def gated(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            if not self._open.wait(120):
                raise TimeoutError("the test never opened the gate")
            return function(*args, **kwargs)
        return gated

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def started_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Run]]:
    """Every Run started in the test, stopped at the end whatever happened (the `apps` fixture knows only each
    app's current run: a second run started by a second launch would be left running)."""
    runs: list[Run] = []
    start = Run.start

    def recorded_start(self: Run) -> None:
        runs.append(self)
        start(self)

    monkeypatch.setattr(Run, "start", recorded_start)
    yield runs
    for run in runs:
        run.stop(timeout=10, checkpoint=False)


async def open_screen(pilot: Pilot, key: str, kind: type[Screen]) -> None:
    """Press `key` and wait until the `kind` of screen it opens is mounted (its widgets there to query)."""
    await press(pilot, key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind) and pilot.app.screen.is_mounted, 10,
                     f"{kind.__name__} open after {key}")


def dashboard(app: MarioApp) -> DashboardScreen | None:
    screen = app.screen
    return screen if isinstance(screen, DashboardScreen) else None


def select_worker_0(app: MarioApp) -> None:
    """Arrow keys move the worker table's cursor (the selected worker): each key starts from worker 0."""
    screen = dashboard(app)
    if screen is not None:
        table = screen.query_one("#workers", DataTable)
        if table.cursor_row != 0:
            table.move_cursor(row=0)


async def test_keys_with_no_runs_launch_empty_viewer_and_palette(tmp_path: Path, apps: list[MarioApp]) -> None:
    """An empty run folder: the Launch screen, the viewer with nothing to watch, the palette; then `q` quits (no
    run is live: at once, for real this time)."""
    app = MarioApp(tiny(tmp_path))
    apps.append(app)
    findings: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        launch = app.screen
        assert isinstance(launch, LaunchScreen)

        async def on_launch() -> None:
            """A key that leaves Launch (none should: ctrl+l is not tried) finds a fresh one."""
            if not isinstance(app.screen, LaunchScreen):
                app.switch_screen(LaunchScreen(app.initial_config))
                await pilot.pause()
        await walk_keys(pilot, app, on_launch, "Launch, no runs", quit_expect="exit", leave={"ctrl+l"},
                        findings=findings)
        launch = app.screen

        async def viewer() -> None:
            if not isinstance(app.screen, ReplayScreen):
                await unwind(pilot, app, launch)
                await open_screen(pilot, "ctrl+o", ReplayScreen)
        await viewer()
        assert isinstance(app.screen, ReplayScreen)
        assert "No checkpoints" in str(app.screen.query_one("#replay-progress").render())
        await walk_keys(pilot, app, viewer, "viewer, no runs", quit_expect="exit", findings=findings)
        await unwind(pilot, app, launch)

        async def palette() -> None:
            """The palette as it opened: a fresh one when a key typed into it or closed it. (Its input's editing
            keys, and Textual's commands over it, are Textual's code over Textual's screen: textual_keys=False.)"""
            top = app.screen
            if isinstance(top, CommandPalette) and not top.query_one(Input).value:
                top.query_one(CommandList).highlighted = 0
                return
            await unwind(pilot, app, launch)
            await open_screen(pilot, "ctrl+p", CommandPalette)
        await palette()
        await walk_keys(pilot, app, palette, "palette over Launch", quit_expect="exit", textual_keys=False,
                        findings=findings)
        await unwind(pilot, app, launch)

        assert app.screen is launch and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, 10, "the app quitting on q")
    assert app.return_code == 0 and app_exception(app) is None
    assert_no_findings(findings)


async def test_keys_in_the_runs_list_and_the_run_comparison(tmp_path: Path, apps: list[MarioApp]) -> None:
    """Previous runs (fixed CSVs, a checkpoint that does not load): the runs list focused, marks and all; then the
    comparison of two of them."""
    root = tmp_path / "runs"
    three_runs(root)
    app = MarioApp(tiny(tmp_path, run_dir=str(root)))
    apps.append(app)
    findings: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        async def runs_list() -> None:
            if not isinstance(app.screen, LaunchScreen):
                app.switch_screen(LaunchScreen(app.initial_config))
                await pilot.pause()
            app.screen.query_one("#runs-table", DataTable).focus()
            await pilot.pause()
        await runs_list()
        await walk_keys(pilot, app, runs_list, "Launch, runs list", quit_expect="exit", leave={"ctrl+l"},
                        findings=findings)
        launch = app.screen
        assert isinstance(launch, LaunchScreen)

        async def comparison() -> None:
            if not isinstance(app.screen, ComparisonScreen):
                await unwind(pilot, app, launch)
                launch.marked = [str(run) for run in sorted(root.iterdir())[:2]]
                launch.action_compare()
                await wait_until(pilot, lambda: isinstance(app.screen, ComparisonScreen) and app.screen.is_mounted,
                                 10, "the comparison open")
        await comparison()
        await walk_keys(pilot, app, comparison, "run comparison", quit_expect="exit", findings=findings)
    assert_no_findings(findings)


async def test_keys_while_a_run_starts_trains_pauses_fails_and_stops(tmp_path: Path, apps: list[MarioApp],
                                                                      started_runs: list[Run],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One live run (2 workers) through its states: starting (Run.start held), training, paused, the confirm
    dialog and help over the dashboard, a worker failed, stopping for a new run (held in the stop); then, back on
    Launch, q while a second run starts: the app waits for it, stops it and quits."""
    starting = Gate()
    monkeypatch.setattr(Run, "start", starting.wrap(Run.start))
    # a gradient every 64 steps, not 8: the coordinator thread, in this process, applies a few a second instead of
    # dozens, and the dashboard's keys are not slowed by it (the training walk took 8.5 s instead of 12)
    app = MarioApp(tiny(tmp_path, name="walk", collect_steps=64))
    apps.append(app)
    findings: list[str] = []
    gates = [starting]
    async with app.run_test(size=(160, 50)) as pilot:
        try:
            # --- starting: Launch still up, the start held at Run.start -----------------------------------
            await pilot.press("ctrl+l")
            await wait_until(pilot, starting.entered.is_set, 30, "the run starting")
            launch = app.screen

            async def starting_launch() -> None:
                await unwind(pilot, app, launch)
            # quitting while a run starts cannot be undone: q is tried at the end, with a second run
            await walk_keys(pilot, app, starting_launch, "run starting", leave=QUITTING, textual_keys=False,
                            findings=findings,
                            in_state=lambda: app.screen is launch and app.current_run is None)
            starting.open()
            await wait_until(pilot, lambda: dashboard(app) is not None and dashboard(app).is_mounted
                             and dashboard(app).query_one("#workers", DataTable).row_count == 2, 60, "the dashboard")
            run, dash = app.current_run, dashboard(app)

            async def on_dashboard(paused: bool = False) -> None:
                await unwind(pilot, app, dash)
                if run.paused != paused:
                    run.toggle_pause()
                select_worker_0(app)

            # --- the confirm dialog and help over the dashboard (while the workers come up) --------------
            def modal(kind: type[Screen], key: str) -> Callable[[], Awaitable[None]]:
                async def reopen() -> None:
                    if not isinstance(app.screen, kind):
                        await on_dashboard()
                        await open_screen(pilot, key, kind)
                return reopen

            await modal(ConfirmScreen, "q")()
            # y, and enter on its focused "Quit (y)" button, confirm: the stop comes last, for a new run
            await walk_keys(pilot, app, modal(ConfirmScreen, "q"), "confirm dialog", leave={"y", "enter"},
                            findings=findings)
            await modal(HelpScreen, "question_mark")()
            await walk_keys(pilot, app, modal(HelpScreen, "question_mark"), "help over the dashboard",
                            findings=findings)
            await on_dashboard()
            await wait_until(pilot, lambda: all(r.state == "running" for r in run.worker_rows()), 60,
                             "both workers running")

            async def training() -> None:
                await on_dashboard(paused=False)
            await walk_keys(pilot, app, training, "training", findings=findings,
                            in_state=lambda: app.screen is dash and not run.paused)
            await wait_until(pilot, lambda: run.coordinator.counters.updates > 0, 60, "an update: it trained")

            await pilot.press("p")
            assert run.paused

            async def paused() -> None:
                await on_dashboard(paused=True)
            await walk_keys(pilot, app, paused, "paused", textual_keys=False, findings=findings,
                            in_state=lambda: app.screen is dash and run.paused)
            await pilot.press("p")
            assert not run.paused

            # --- a worker failed (one crash with max_crashes 1); the other goes on ------------------------
            run.runtime.supervisor.policy.max_crashes = 1
            worker = run.runtime.supervisor.workers[0]

            async def worker_failed() -> None:
                await on_dashboard()
                # r, R and their commands restart it; a restart they queued may still replace the process we
                # see alive, so kill that very process and try again if a new one took its place
                deadline = time.monotonic() + 60
                while run.worker_rows()[0].state != "failed":
                    assert time.monotonic() < deadline, "worker 0 never failed"
                    await wait_until(pilot, lambda: worker.process is not None and worker.process.is_alive(), 30,
                                     "worker 0 started again")
                    process = worker.process
                    if process is not None and process.pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(process.pid, signal.SIGKILL)
                    await wait_until(pilot, lambda killed=process: run.worker_rows()[0].state == "failed"
                                     or worker.process not in (None, killed), 30, "worker 0 failed or restarted")
            await worker_failed()
            assert run.worker_rows()[1].state != "failed"
            await walk_keys(pilot, app, worker_failed, "worker failed", textual_keys=False, findings=findings,
                            in_state=lambda: app.screen is dash and run.worker_rows()[0].state == "failed")

            # --- stopping for a new run: held in Run.stop (at Supervisor.stop_all), the workers still up ----
            stop_held = Gate()
            gates.append(stop_held)
            run.runtime.supervisor.stop_all = stop_held.wrap(run.runtime.supervisor.stop_all)
            await on_dashboard()
            await pilot.press("n")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_until(pilot, stop_held.entered.is_set, 30, "the stop under way")

            async def stopping() -> None:
                await unwind(pilot, app, dash)
                select_worker_0(app)
            await walk_keys(pilot, app, stopping, "stopping for a new run", textual_keys=False, findings=findings,
                            in_state=lambda: app.screen is dash and not run.stopped.is_set())
            stop_held.open()
            await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.is_mounted
                             and app.screen.query("#opt-name"), 60, "Launch after the stop")
            assert run.stopped.is_set() and app.current_run is None

            # --- q while a second run starts: the app quits once it has started, and stops it first -------
            second = Gate()
            gates.append(second)
            monkeypatch.setattr(Run, "start", second.wrap(Run.start))
            app.screen.query_one("#opt-name", Input).value = "walk2"  # "walk" exists now
            await pilot.press("ctrl+l")
            await wait_until(pilot, second.entered.is_set, 30, "the second run starting")
            await pilot.press("q")
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, LaunchScreen)  # not before the run exists
            second.open()
            await wait_until(pilot, lambda: not app.is_running, 60, "the app quitting once the run started")
        finally:
            for gate in gates:
                gate.open()
    assert app.return_code == 0 and app_exception(app) is None
    # the ctrl+l pressed while the first run was starting started none; the quit stopped the second
    assert len(started_runs) == 2 and all(r.stopped.is_set() for r in started_runs)
    assert_no_findings(findings)


async def test_keys_in_the_viewer_with_a_finished_run(tmp_path: Path, apps: list[MarioApp]) -> None:
    """The viewer over a run that reached its steps (train_tiny_run): idle, then with an episode being played
    (Enter or the Play button starts one in a background process); escape while it plays leaves nothing behind."""
    from tests.app.test_app import train_tiny_run

    trained = train_tiny_run(tmp_path, "finished", steps=3)
    app = MarioApp(tiny(tmp_path))
    apps.append(app)
    findings: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        launch = app.screen

        def idle_viewer() -> bool:
            viewer = app.screen
            return (isinstance(viewer, ReplayScreen) and viewer.is_mounted and viewer.recording is None
                    and not viewer.query_one("#replay-play", Button).disabled)

        async def viewer() -> None:
            """The speed back at 1x; a fresh viewer when a key started an episode or closed this one."""
            if idle_viewer():
                current = app.screen
                while current.speed_index != SPEEDS.index(1.0):
                    current.action_speed(1 if current.speed_index < SPEEDS.index(1.0) else -1)
                return
            await unwind(pilot, app, launch)
            await open_screen(pilot, "ctrl+o", ReplayScreen)
        await viewer()
        assert idle_viewer() and str(trained.paths.root) == str(app.screen.query_one("#replay-run", Select).value)
        await walk_keys(pilot, app, viewer, "viewer, a finished run", in_state=idle_viewer, quit_expect="exit",
                        findings=findings)

        # --- an episode being played: its process held (SIGSTOP) mid-episode, so it lasts the walk ----------
        held: list[int] = []

        def playing() -> bool:
            viewer = app.screen
            job = getattr(viewer, "_job", None)
            return (isinstance(viewer, ReplayScreen) and viewer.recording is None and job is not None
                    and job.pid in held and not job.done())

        async def episode_playing() -> None:
            """A fresh viewer playing an episode when a key stopped this one (escape cancels it)."""
            if playing():
                return
            await unwind(pilot, app, launch)
            await open_screen(pilot, "ctrl+o", ReplayScreen)
            await pilot.click("#replay-play")
            viewer = app.screen
            await wait_until(pilot, lambda: getattr(viewer._job, "pid", None) is not None, 30, "the episode's process")
            os.kill(viewer._job.pid, signal.SIGSTOP)
            held.append(viewer._job.pid)
            app.set_focus(None)  # so Enter reaches the viewer's own binding (Play episode), as once an episode is in
        try:
            await episode_playing()
            await walk_keys(pilot, app, episode_playing, "viewer, an episode playing", in_state=playing,
                            quit_expect="exit", textual_keys=False, findings=findings)
        finally:
            for pid in held:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        await unwind(pilot, app, launch)  # the viewer closes: its episode is cancelled, its process killed
        left = [p.pid for p in multiprocessing.active_children() if p.name == "mario-tui-playback"]
        assert not left, f"playback processes left running after the viewer closed: {left}"  # Enter played twice
        assert app.screen is launch
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, 10, "the app quitting on q")
    assert app.return_code == 0 and app_exception(app) is None
    assert_no_findings(findings)


async def test_keys_on_the_dashboard_of_a_run_that_ended(tmp_path: Path, apps: list[MarioApp]) -> None:
    """A run that reached its --steps: the app stopped it and the dashboard stays on it. Every key there (the
    training keys answer with a hint) leaves it running; n goes to Launch, and q quits at once (nothing is live)."""
    app = MarioApp(tiny(tmp_path, name="ended", steps=5, workers=1, eval_every=0), autostart=True)
    apps.append(app)
    findings: list[str] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: dashboard(app) is not None and app.current_run is not None
                         and app.current_run.stopped.is_set(), 120, "the finished run stopped, on its dashboard")
        run, dash = app.current_run, dashboard(app)

        async def ended() -> None:
            await unwind(pilot, app, dash)
            select_worker_0(app)
        await walk_keys(pilot, app, ended, "run ended", quit_expect="exit", leave={"n", "New run"},
                        textual_keys=False, findings=findings,
                        in_state=lambda: app.screen is dash and run.stopped.is_set())
        await press(pilot, "n")
        await press(pilot, "q")  # at once, while Launch is still being mounted
        await wait_until(pilot, lambda: not app.is_running, 10, "the app quitting on q")
    assert app_exception(app) is None and app.return_code == 0
    assert_no_findings(findings)
