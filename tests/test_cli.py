"""The command line as a user meets it: help, bad flags, and the app without a terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mario_tui.cli import build_parser, config_from_args

ROOT = Path(__file__).resolve().parents[1]


def mario(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mario_tui.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_help_lists_every_run_option_with_its_docstring():
    proc = mario("--help")
    assert proc.returncode == 0
    assert "--batch" in proc.stdout and "--per, --no-per" in proc.stdout
    assert "Adam learning rate at the start of the cosine" in " ".join(proc.stdout.split())


def test_model_defaults_apply_under_explicit_flags():
    parser = build_parser()
    dreamer, _ = config_from_args(parser.parse_args(["--model", "dreamer"]), parser)
    assert (dreamer.eps_start, dreamer.eps_end) == (0.0, 0.0)  # its actor samples: no epsilon on top by default
    chosen, _ = config_from_args(parser.parse_args(["--model", "dreamer", "--eps-start", "0.3"]), parser)
    assert (chosen.eps_start, chosen.eps_end) == (0.3, 0.0)
    ddqn, _ = config_from_args(parser.parse_args([]), parser)
    assert (ddqn.eps_start, ddqn.eps_end) == (1.0, 0.05)
    assert "(default: 1.0; dreamer: 0.0)" in " ".join(parser.format_help().split())


def test_the_app_without_a_terminal_points_to_batch(tmp_path):
    proc = mario("--run-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "needs an interactive terminal" in proc.stderr and "mario-tui --batch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_refuses_to_change_the_network_shape(tmp_path):
    run = tmp_path / "checkpoints" / "old"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "config.json").write_text('{"model": "ddqn", "frame_size": 84}')
    proc = mario("--batch", "--run-dir", str(tmp_path / "checkpoints"), "--resume", "old", "--frame-size", "42")
    assert proc.returncode == 2
    assert "--frame-size: cannot change when resuming" in proc.stderr


def test_preview_fps_is_checked_before_anything_starts(tmp_path):
    for bad, message in (("0", "must be between 1 and 30"), ("fast", "not a number: 'fast'")):
        proc = mario("--run-dir", str(tmp_path), "--preview-fps", bad)
        assert proc.returncode == 2
        assert f"--preview-fps: {message}" in proc.stderr and "Traceback" not in proc.stderr


def test_batch_progress_line_names_the_greedy_evaluation():
    from mario_tui.batch import eval_text

    nan = float("nan")
    assert eval_text({}) == "greedy x -"
    assert eval_text({"eval_x_mean": nan, "eval_best_x": 455.4}) == "greedy x - (best 455)"
    assert eval_text({"eval_x_mean": 412.0, "eval_best_x": 455.4}) == "greedy x 412 (best 455)"
    assert (eval_text({"eval_x_mean": 2680.0, "eval_best_x": 2301.2, "eval_best_flag_rate": 0.2})
            == "greedy x 2680 (best 2301, flags 20%)")


def test_help_lists_the_evaluation_options():
    proc = mario("--help")
    assert proc.returncode == 0
    for flag in ("--eval RUN_OR_CHECKPOINT", "--episodes N", "--epsilon E", "--gif", "--eval-every",
                 "--eval-stall-steps"):
        assert flag in proc.stdout, flag
