"""A run that ends on its own (steps reached, every worker failed) or cannot write its files, seen in the app: the
dashboard stays on the stopped run and says why; failed writes are toasts; nothing raises."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import AsyncIterator

from textual.pilot import Pilot
from textual.widgets import DataTable

from mario_tui.app import MarioApp
from mario_tui.engine import session as session_module
from mario_tui.engine.session import Run
from mario_tui.screens.dashboard import DashboardScreen
from mario_tui.screens.launch import LaunchScreen
from mario_tui.screens.modals import ConfirmScreen
from mario_tui.widgets.coordinator_panel import CoordinatorPanel
from mario_tui.widgets.status_header import StatusHeader
from tests.app.test_app import tiny
from tests.polling import wait_until


def panel_text(app: MarioApp) -> str:
    return str(app.screen.query_one(CoordinatorPanel).render())


def toasts(app: MarioApp) -> list[str]:
    """Every toast the app showed so far (expired ones too: a loaded machine may poll after one went away)."""
    seen = app.__dict__.setdefault("_seen_toasts", [])
    if "notify" not in app.__dict__:
        real_notify = app.notify

        def notify(message, *args, **kwargs):
            seen.append(str(message))
            return real_notify(message, *args, **kwargs)

        app.notify = notify
    return seen + [str(n.message) for n in app._notifications]


@contextlib.asynccontextmanager
async def live_dashboard(apps: list[MarioApp], config) -> AsyncIterator[tuple[MarioApp, Pilot, Run]]:
    """An app started on `config` (its toasts recorded), once its dashboard shows the run."""
    app = MarioApp(config, autostart=True)
    apps.append(app)
    toasts(app)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.current_run is not None, 90,
                         "the dashboard")
        yield app, pilot, app.current_run


async def test_a_run_that_reaches_its_steps_stops_and_stays_on_the_dashboard(tmp_path, apps):
    async with live_dashboard(apps, tiny(tmp_path, name="end", steps=5, workers=1)) as (app, pilot, run):
        await wait_until(pilot, run.stopped.is_set, 120, "the app stopping the finished run")
        await wait_until(pilot, lambda: "stopped" in str(app.screen.query_one(StatusHeader).format_title()), 10,
                         "the title saying stopped")
        await wait_until(pilot, lambda: "reached --steps 5" in panel_text(app) and "stopping" not in panel_text(app),
                         10, "the panel saying why")
        assert "STOPPED" in panel_text(app) and run.paths.checkpoint.exists()  # the final checkpoint
        table = app.screen.query_one("#workers", DataTable)
        await wait_until(pilot, lambda: table.get_cell("0", "state").plain == "stopped", 10, "the worker stopped")
        assert int(table.get_cell("0", "steps").replace(",", "")) > 0  # its last figures stay
        for key in ("p", "r", "R", "s"):  # training keys on a stopped run: a hint, not a crash
            await pilot.press(key)
            await pilot.pause()
        assert isinstance(app.screen, DashboardScreen) and not run.paused
        assert any("The run has stopped" in t for t in toasts(app))
        await pilot.press("q")  # nothing live: quits at once
        await wait_until(pilot, lambda: not app.is_running, 30, "the app exiting")
    assert app.return_code == 0 and app.final_error is None


async def test_when_every_worker_fails_the_app_says_why_and_n_starts_over(tmp_path, apps):
    async with live_dashboard(apps, tiny(tmp_path, name="dead", workers=1, steps=0, eval_every=0)) as (app, pilot, run):
        await wait_until(pilot, lambda: run.runtime.supervisor.workers[0].pid is not None, 60, "a worker process")
        run.runtime.supervisor.policy.max_crashes = 1  # the next crash is the last
        os.kill(run.runtime.supervisor.workers[0].pid, signal.SIGKILL)
        await wait_until(pilot, run.stopped.is_set, 60, "the run stopping with no worker left")
        await wait_until(pilot, lambda: "every worker failed" in panel_text(app), 10, "the reason on the panel")
        assert "killed by signal 9 (SIGKILL)" in panel_text(app)
        table = app.screen.query_one("#workers", DataTable)
        await wait_until(pilot, lambda: table.get_cell("0", "state").plain == "failed", 10, "the worker failed")
        assert any("run ended: every worker failed" in t for t in toasts(app))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the Launch screen")


async def test_failed_checkpoint_writes_are_toasts_and_the_final_one_is_reported(tmp_path, apps, monkeypatch):
    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(session_module, "save_checkpoint", disk_full)
    config = tiny(tmp_path, name="full", workers=1, checkpoint_every=3, eval_every=0)
    async with live_dashboard(apps, config) as (app, pilot, run):
        await wait_until(pilot, lambda: any("could not write checkpoint.pt" in t for t in toasts(app)), 120,
                         "a toast for the failed checkpoint")
        assert run.error is None and not run.done.is_set()  # training goes on
        await pilot.press("s")  # checkpoint now: refused with the reason
        await wait_until(pilot, lambda: any(t.startswith("No checkpoint: could not write") for t in toasts(app)),
                         30, "the checkpoint key's answer")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the quit dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, 60, "the app exiting")
    assert run.stopped.is_set() and run.runtime.segments.closed
    assert app.final_error is not None and app.final_error.startswith("could not write the final checkpoint")
    assert "no earlier checkpoint of this run exists" in app.final_error


async def test_quitting_while_the_run_starts_stops_it_once_it_exists(tmp_path, apps, monkeypatch):
    """q (and a second ctrl+l) during "Starting run…": one run is made, then stopped cleanly, then the app exits;
    before, the app exited at once and left the starting run's workers and shared memory behind."""
    gate = threading.Event()  # holds the (real) start until the keys are in: a warm machine starts in ~0.1 s
    real_start = session_module.Run.start

    def gated_start(run):
        gate.wait(60)
        real_start(run)

    monkeypatch.setattr(session_module.Run, "start", gated_start)
    app = MarioApp(tiny(tmp_path, workers=1))
    apps.append(app)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("ctrl+l")
        await wait_until(pilot, app.starting.is_set, 10, "the run starting")
        await pilot.press("ctrl+l", "q")
        assert app.is_running
        gate.set()
        await wait_until(pilot, lambda: not app.is_running, 120, "the app exiting once the run has stopped")
    folders = list((tmp_path / "checkpoints").iterdir())
    assert len(folders) == 1
    assert "stopped; shared memory released" in (folders[0] / "training.log").read_text()
