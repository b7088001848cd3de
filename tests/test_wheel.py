"""The wheel works where users install it: built from this checkout, installed into a fresh virtual environment
outside it, its `mario-tui` shows its help, trains a short `--batch` run, and opens the app's Launch screen with
its styles (which live in the top-level assets/ of the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PILOT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    import mario_tui
    from mario_tui.app import MarioApp
    from mario_tui.engine.config import RunConfig
    from mario_tui.screens.launch import LaunchScreen

    async def main():
        app = MarioApp(RunConfig(run_dir=sys.argv[1]))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, LaunchScreen), app.screen
            assert app.screen.query_one("#launch").display
        print("launch ok", mario_tui.__file__, MarioApp.CSS_PATH)

    asyncio.run(main())
""")


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV (a pyenv shim may not resolve)
    if uv is None:
        pytest.skip("uv is not on PATH (the README's commands install it)")
    run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist")], ROOT)
    wheel = next((tmp_path / "dist").glob("mario_tui-*.whl"))
    venv = tmp_path / "venv"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], ROOT)
    python = venv / "bin" / "python"
    # Symlinks into uv's cache: the dependencies (torch) are not copied, the install takes seconds.
    run([uv, "pip", "install", "--quiet", "--link-mode", "symlink", "--python", str(python), str(wheel)], ROOT)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    app = venv / "bin" / "mario-tui"

    assert "--batch" in run([str(app), "--help"], outside, 120).stdout
    batch = run([str(app), "--batch", "--steps", "20", "--workers", "1", "--frame-size", "36", "--conv-width", "4",
                 "--hidden-size", "16", "--batch-size", "8", "--learning-starts", "40", "--collect-steps", "8",
                 "--eval-every", "0", "--run-dir", str(outside / "runs"), "--name", "w"], outside, 300)
    assert "reached --steps 20" in batch.stdout and (outside / "runs" / "w" / "checkpoint.pt").is_file()

    launch = run([str(python), "-c", PILOT, str(outside / "runs")], outside, 180).stdout
    assert "launch ok" in launch
    installed, css = launch.split()[-2:]
    # The install's own styles, in its package (resolved through uv's symlinks), not the checkout's assets/.
    assert not installed.startswith(str(ROOT)) and not css.startswith(str(ROOT)), launch
    assert css.endswith("mario_tui/assets/app.tcss"), launch
    assert Path(css).read_text() == (ROOT / "assets" / "app.tcss").read_text()
