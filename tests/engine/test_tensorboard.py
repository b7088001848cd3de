"""--tensorboard: a real run's event files, read back with TensorBoard's own reader, hold training.csv's scalars
(the eval_* ones once per evaluation); without the package the option is refused with one line."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mario_tui.engine.config import RunConfig
from mario_tui.engine.metrics import read_csv
from mario_tui.engine.tensorboard import INSTALL_HINT, scalar_tag
from tests.engine.test_runtime import ROOT, start, tiny_config, wait_for


def scalars(folder) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_a_run_with_tensorboard_writes_the_csv_scalars_as_events(tmp_path, runs):
    run = start(runs, tiny_config(tmp_path, steps=0, workers=1, tensorboard=True, csv_every=5, eval_every=10,
                                  eval_episodes=1, eval_max_steps=40, eval_noops=2))

    def evaluation_in_csv() -> bool:  # the eval_* columns reach training.csv with the next row after the result
        try:
            return any(row.get("eval_updates") for row in read_csv(run.csv_path))
        except (OSError, ValueError):
            return False

    wait_for(lambda: run.coordinator.counters.updates >= 25 and evaluation_in_csv(), 150,
             "an evaluation in training.csv and 25 updates")
    run.stop()
    assert run.error is None
    folder = run.paths.root
    assert list(folder.glob("events.out.tfevents.*")), sorted(p.name for p in folder.iterdir())
    logged = scalars(folder)
    rows = read_csv(run.csv_path)
    assert len(rows) >= 5
    learner = run.metric_names
    for column in ("reward_mean", "frames_per_s", "lr", "grad_norm", "workers_alive", "q_loss", "q_mean"):
        tag = scalar_tag(column, learner)
        for row in rows:
            if row[column] == "":
                continue  # NaN in the CSV (no episode finished yet): no scalar either
            assert math.isclose(logged[tag][int(row["updates"])], float(row[column]), rel_tol=1e-4), (tag, row)
    assert scalar_tag("q_loss", learner) == "learner/q_loss" and scalar_tag("lr", learner) == "run/lr"
    evaluated = {int(row["eval_updates"]): float(row["eval_x_mean"]) for row in rows if row["eval_updates"]}
    assert evaluated and logged["eval/x_mean"] == pytest.approx(evaluated, rel=1e-4)
    assert "run/wall_time" not in logged and "run/updates" not in logged


def test_tensorboard_missing_is_one_line_for_the_cli_and_the_form(tmp_path):
    probe = (
        "import sys; sys.modules['tensorboard'] = None\n"  # as if the package were not installed
        "from mario_tui.engine.config import RunConfig\n"
        "print(RunConfig(tensorboard=True).problems().get('tensorboard'))\n"
        "from mario_tui.cli import main\n"
        f"main(['--batch', '--tensorboard', '--run-dir', {str(tmp_path)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == f"--tensorboard: {INSTALL_HINT}"
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"mario-tui: error: --tensorboard: {INSTALL_HINT}"
    assert not list(tmp_path.iterdir())  # nothing was started
    assert RunConfig(tensorboard=True).problems() == {}  # installed here (the dev group has it)
