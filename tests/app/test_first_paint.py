"""The Launch screen paints before the engine (torch) is imported, and before its ~60 advanced option rows exist;
a run launched at once still starts, and the form's config is whole at every moment."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from textual.widgets import Collapsible, Input, Select

from mario_tui.app import MarioApp
from mario_tui.engine.config import RunConfig, model_default
from mario_tui.screens.launch import LaunchScreen, OptionRow
from tests.app.test_app import tiny
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]

LAUNCH_AT_ONCE = textwrap.dedent("""
    import asyncio, json, sys, time
    from mario_tui.app import MarioApp
    from mario_tui.engine.config import RunConfig
    from mario_tui.screens.launch import LaunchScreen, OptionRow

    seen = {"ui_modules_load_torch": "torch" in sys.modules}
    mounted = LaunchScreen.on_mount

    def on_mount(self):
        seen["torch_at_launch_mount"] = "torch" in sys.modules
        mounted(self)

    LaunchScreen.on_mount = on_mount

    async def main():
        config = RunConfig(run_dir=sys.argv[1], name="early", workers=1, frame_size=36, conv_width=4,
                           hidden_size=16, batch_size=8, buffer_size=600, learning_starts=40, collect_steps=8,
                           actions="right_only", steps=3, eval_every=0)
        app = MarioApp(config)
        try:
            async with app.run_test(size=(160, 48)) as pilot:
                seen["engine_ready_at_launch"] = app.engine_ready.is_set()
                await pilot.press("ctrl+l")
                deadline = time.monotonic() + 180
                while not (app.current_run is not None and app.current_run.done.is_set()):
                    assert time.monotonic() < deadline, "the run did not finish"
                    await pilot.pause(0.1)
                seen["updates"] = app.current_run.coordinator.counters.updates
                seen["screen"] = type(app.screen).__name__
                seen["engine_ready"] = app.engine_ready.is_set()
        finally:
            if app.current_run is not None:
                app.current_run.stop(timeout=10, checkpoint=False)
        print(json.dumps(seen))

    asyncio.run(main())
""")


def test_launch_paints_without_torch_and_a_run_launched_at_once_starts(tmp_path):
    done = subprocess.run([sys.executable, "-c", LAUNCH_AT_ONCE, str(tmp_path / "checkpoints")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["ui_modules_load_torch"] is False
    assert seen["torch_at_launch_mount"] is False
    assert seen["updates"] >= 3 and seen["screen"] == "DashboardScreen" and seen["engine_ready"]


def test_help_and_app_modules_import_neither_torch_nor_the_engine():
    probe = textwrap.dedent("""
        import contextlib, io, sys
        import mario_tui.cli
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            mario_tui.cli.main(["--help"])
        help_loads = sorted(m for m in ("torch", "textual", "numpy") if m in sys.modules)
        import mario_tui.app, mario_tui.screens.launch, mario_tui.screens.replay, mario_tui.screens.modals
        app_loads = sorted(m for m in ("torch", "mario_tui.engine.session") if m in sys.modules)
        print(help_loads, app_loads)
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["[]", "[]"], done.stdout


async def test_form_is_whole_before_and_after_the_advanced_rows_mount(tmp_path, apps, monkeypatch):
    """Until an advanced row exists the form uses its value (following a model switch like a mounted row would);
    the rows, once mounted, show the same values."""
    mount_rows = LaunchScreen._mount_advanced_rows

    async def held(self) -> None:
        return None

    monkeypatch.setattr(LaunchScreen, "_mount_advanced_rows", held)
    app = MarioApp(tiny(tmp_path, eps_start=0.9))
    apps.append(app)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, LaunchScreen) and screen.unmounted_rows
        assert not screen.query("#opt-eps_end") and screen.config == app.initial_config
        screen.query_one("#opt-model", Select).value = "dreamer"
        await pilot.pause()
        assert screen.config is not None
        assert screen.config.eps_end == model_default("dreamer", "eps_end") != RunConfig.eps_end
        assert screen.config.eps_start == 0.9  # typed by the user (here: given on the command line): kept
        # A row in the DOM whose input is not composed yet (a batch being mounted, an Input.Changed arriving then):
        # the form still validates, with the row's value from unmounted_value (the CI's key walk found this crash).
        half = OptionRow("eval_every", screen.unmounted_value("eval_every"))
        screen.query_one("#advanced", Collapsible).query_one(Collapsible.Contents).mount(half)
        screen.validate_form()
        assert screen.config is not None and screen.config.eval_every == app.initial_config.eval_every
        await pilot.pause()
        await half.remove()
        while screen.unmounted_rows:
            await mount_rows(screen)
        await wait_until(pilot, lambda: bool(screen.query("#opt-eps_end")), 10, "the advanced rows")
        assert screen.query_one("#opt-eps_end", Input).value == str(model_default("dreamer", "eps_end"))
        assert screen.query_one("#opt-eps_start", Input).value == "0.9"
        await pilot.pause()
        assert screen.config is not None and screen.config.eps_end == model_default("dreamer", "eps_end")
        screen.query_one("#opt-model", Select).value = "ddqn"
        await pilot.pause()
        assert screen.query_one("#opt-eps_end", Input).value == str(RunConfig.eps_end)
