"""Greedy evaluation: the protocol, `mario-tui --eval`, periodic evaluation during training and best.pt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mario_tui.cli import main
from mario_tui.engine import fileio
from mario_tui.engine.checkpoint import load_weights, save_weights
from mario_tui.engine.config import RunConfig
from mario_tui.engine.evaluate import (
    EvalOptions,
    StallCutoff,
    episode_plan,
    evaluate,
    noop_count,
    play_evaluation_episode,
)
from mario_tui.engine.metrics import read_csv
from mario_tui.engine.periodic_eval import PeriodicEvaluator
from mario_tui.engine.registry import build_model
from mario_tui.engine.runs import RunPaths, list_runs
from mario_tui.engine.session import Run, process_context
from tests.engine.corridor import SimpleCorridor, make_simple_corridor
from tests.engine.test_runtime import ROOT, tiny_config, wait_for


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Run:
    """A tiny DDQN trained on the real 1-1 through the real runtime, with periodic evaluation every 10 updates (of a
    moving average of the weights: `eval_ema`) and 2 confirmation episodes."""
    tmp = tmp_path_factory.mktemp("eval")
    config = tiny_config(tmp, steps=0, eval_every=10, eval_episodes=2, eval_confirm_episodes=2, eval_max_steps=60,
                         eval_noops=5, actions="simple", eval_ema=0.05)
    run = Run(config)
    run.start()
    try:
        wait_for(lambda: run.paths.best.exists() and run.coordinator.counters.updates >= 15, 120,
                 "a periodic evaluation and its confirmation")
    finally:
        run.stop(timeout=10)
    return run


# --- the protocol ---------------------------------------------------------------------------------------------

def test_noop_starts_are_seeded_and_spread():
    counts = [noop_count(seed, 30) for seed in range(200)]
    assert counts == [noop_count(seed, 30) for seed in range(200)]
    assert min(counts) >= 0 and max(counts) <= 30 and len(set(counts)) > 20
    assert noop_count(5, 0) == 0


def test_stall_cutoff_counts_steps_without_a_new_max_x():
    stall = StallCutoff(3, x_pos=10)
    assert [stall.update(x) for x in (11, 11, 9, 11)] == [False, False, False, True]
    assert stall.max_x == 11
    assert not any(StallCutoff(0).update(0) for _ in range(100))


def test_a_stuck_agent_ends_at_the_stall_cutoff_and_a_walker_at_the_flag():
    env = SimpleCorridor(max_steps=100)
    options = EvalOptions(stall_steps=5, noop_max=4)
    stuck = play_evaluation_episode(env, lambda obs: 0, "1-1", seed=3, options=options)
    assert stuck.ended == "stalled" and stuck.steps == stuck.noops + 5 and stuck.max_x == 0
    walker = play_evaluation_episode(env, lambda obs: SimpleCorridor.RIGHT, "1-1", seed=3, options=options)
    assert walker.ended == "flag" and walker.flag and walker.max_x == 11
    assert walker.steps == walker.noops + 11 and walker.total_return == 11.0


def test_episode_plan_per_stage_round_robin_and_all():
    assert episode_plan("1-1,1-2", 2, seed=7) == [("1-1", 7), ("1-1", 8), ("1-2", 7), ("1-2", 8)]
    assert episode_plan("1-1,1-2", 3, seed=0, per_stage=False) == [("1-1", 0), ("1-2", 1), ("1-1", 2)]
    assert len(episode_plan("all", 1, seed=0)) == 32
    randoms = episode_plan("random", 5, seed=0)
    assert randoms == episode_plan("random", 5, seed=0) and len({stage for stage, _ in randoms}) > 1


# --- periodic evaluation and best.pt, through the real runtime --------------------------------------------------

def test_periodic_evaluation_writes_its_columns_log_and_best_checkpoint(trained_run):
    run = trained_run
    paths = run.paths
    rows = read_csv(run.csv_path)
    evaluated = [r for r in rows if r["eval_x_mean"]]
    assert evaluated, "no training.csv row carries an evaluation"
    first = run.eval_history[0]
    assert first.best and first.updates >= 10 and first.episodes == 2, "the first evaluation is confirmed"
    assert 0 <= float(evaluated[-1]["eval_flag_rate"]) <= 1 and evaluated[-1]["eval_return"]

    best = load_weights(paths.best)
    assert best["eval"]["episodes"] == 4, "best.pt is judged on its evaluation and confirmation episodes together"
    assert float(evaluated[-1]["eval_best_x"]) == pytest.approx(best["eval"]["x_mean"], abs=0.5)
    assert best["counters"]["updates"] in {p.updates for p in run.eval_history if p.best}
    status = json.loads(paths.status.read_text())
    assert status["best_eval_x"] == pytest.approx(best["eval"]["x_mean"], abs=0.1)
    summary = next(r for r in list_runs(paths.root.parent) if r.name == paths.root.name)
    assert summary.has_best and summary.best_eval_x == pytest.approx(best["eval"]["x_mean"], abs=0.1)
    log = paths.log.read_text()
    assert "eval at update" in log and "2 more episodes to confirm" in log
    assert "confirmation at update" in log and "flags 0/4" in log and "new best → best.pt" in log
    assert not (paths.eval_dir / ".candidate.pt").exists(), "the snapshot of the weights under evaluation is left"
    stats = run.coordinator_stats()
    assert stats["eval_best_x"] == pytest.approx(best["eval"]["x_mean"])


def test_an_averaged_run_writes_the_average_it_evaluates_beside_its_weights(trained_run):
    """weights-ema.pt comes with each checkpoint: the same model, other parameter values, the same target network;
    `--eval` plays it."""
    paths = trained_run.paths
    averaged, online = load_weights(paths.ema_weights), load_weights(paths.weights)
    assert averaged["counters"]["updates"] == online["counters"]["updates"]
    assert averaged["model"].keys() == online["model"].keys()
    differ = [k for k in online["model"] if not torch.equal(online["model"][k], averaged["model"][k])]
    assert differ and not any(k.startswith("target") for k in differ), differ
    report = evaluate(paths.ema_weights, EvalOptions(episodes=1, max_steps=30, noop_max=0))
    assert len(report.episodes) == 1 and report.episodes[0].steps > 0


def _corridor_weights(path: Path, favoured_action: int, confirm_episodes: int = 0) -> Path:
    """Weights of a tiny DDQN whose Q-values always favour one action (no training needed to know its score)."""
    config = RunConfig(frame_size=36, conv_width=4, hidden_size=8, level="1-1", eval_noops=2,
                       eval_confirm_episodes=confirm_episodes)
    model, _ = build_model(config, 7)
    with torch.no_grad():
        head = model.online.advantage[-1]
        head.weight.zero_()
        head.bias.zero_()
        head.bias[favoured_action] = 5.0
    save_weights(path, model.state_dict(), config.to_dict(), {"updates": favoured_action})
    return path


def _poll_result(evaluator: PeriodicEvaluator):
    return wait_for(evaluator.poll, 60, "an evaluation result")


def _settled(evaluator: PeriodicEvaluator):
    """(report, became best.pt) of an evaluation without confirmation episodes."""
    outcome = _poll_result(evaluator)
    assert not outcome.confirming and not outcome.confirmation
    return outcome.report, outcome.best


def test_best_checkpoint_is_replaced_only_by_a_better_score_and_survives_a_failed_write(tmp_path, monkeypatch):
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    options = EvalOptions(episodes=2, stall_steps=5, noop_max=2, per_stage=False)
    evaluator = PeriodicEvaluator(paths, process_context(), make_simple_corridor, cpu_share=2.0)
    try:
        def submit(action: int) -> None:
            data = load_weights(_corridor_weights(tmp_path / f"w{action}.pt", action))
            evaluator.submit(data["model"], RunConfig.from_dict(data["config"]), data["counters"], options)

        submit(SimpleCorridor.LEFT)  # stands at the wall: x 0, but the first evaluation is the best so far
        report, best = _settled(evaluator)
        assert best and report.x_mean == 0 and load_weights(paths.best)["counters"]["updates"] == SimpleCorridor.LEFT
        submit(SimpleCorridor.RIGHT)  # walks to the flag
        report, best = _settled(evaluator)
        assert best and report.x_mean == 11 and report.flag_rate == 1.0
        kept = paths.best.read_bytes()
        submit(0)  # stands still: worse, best.pt stays
        report, best = _settled(evaluator)
        assert not best and paths.best.read_bytes() == kept

        # flags first: a further-reaching agent that never finishes does not beat one that does, and vice versa
        evaluator.best_x, evaluator.best_flag_rate = 50.0, 1.0
        submit(SimpleCorridor.RIGHT)  # flags at every episode, but x 11 < 50 at the same flag rate: not better
        report, best = _settled(evaluator)
        assert not best and report.flag_rate == 1.0 and paths.best.read_bytes() == kept
        evaluator.best_x, evaluator.best_flag_rate = 3000.0, 0.0
        submit(SimpleCorridor.RIGHT)  # x 11 with flags beats x 3000 without
        report, best = _settled(evaluator)
        assert best and evaluator.best_x == 11 and evaluator.best_flag_rate == 1.0
        kept = paths.best.read_bytes()

        def crash(*args):
            raise OSError(28, "No space left on device")

        evaluator.best_x = -1.0
        submit(SimpleCorridor.LEFT)
        monkeypatch.setattr(fileio.os, "fsync", crash)  # the new best.pt dies after its bytes, before the rename
        report, best = _settled(evaluator)
        monkeypatch.undo()
        assert not best
        assert paths.best.read_bytes() == kept and load_weights(paths.best)["eval"]["x_mean"] == 11
        assert evaluator.best_x == -1.0, "a best.pt that was not written must not count as the best"
        assert [p.name for p in paths.root.iterdir() if p.name.startswith(".")] == []
    finally:
        evaluator.close()
    assert not (paths.eval_dir / ".candidate.pt").exists()


def test_a_better_evaluation_replaces_best_only_if_its_confirmation_episodes_hold_it_up(tmp_path):
    """The corridor's goal is 11 steps away and its time runs out at step 20: a walker reaches it after up to 9 no-ops
    and not after 10 or more. Seeds whose no-op starts are short for the periodic evaluation and long for the
    confirmation make weights that look perfect on the first games and fail on the next."""
    seed = next(s for s in range(10_000) if max(noop_count(s, 30), noop_count(s + 1, 30)) <= 9
                and min(noop_count(s + 2, 30), noop_count(s + 3, 30)) >= 10)
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    options = EvalOptions(episodes=2, stall_steps=5, noop_max=30, seed=seed, per_stage=False)
    evaluator = PeriodicEvaluator(paths, process_context(), make_simple_corridor, cpu_share=2.0)
    try:
        def submit(action: int) -> None:
            data = load_weights(_corridor_weights(tmp_path / f"w{action}.pt", action, confirm_episodes=2))
            evaluator.submit(data["model"], RunConfig.from_dict(data["config"]), data["counters"], options)

        submit(SimpleCorridor.LEFT)  # the first evaluation is confirmed too: best.pt holds a 4-game score
        screen = _poll_result(evaluator)
        assert screen.confirming and not screen.best and not paths.best.exists()
        confirmed = _poll_result(evaluator)
        assert confirmed.confirmation and confirmed.best and not evaluator.busy
        assert [e.seed for e in confirmed.report.episodes] == [seed, seed + 1, seed + 2, seed + 3]
        assert load_weights(paths.best)["eval"]["episodes"] == 4

        evaluator.best_x, evaluator.best_flag_rate = 5.0, 0.75  # as if best.pt had finished 3 of its 4 games
        submit(SimpleCorridor.RIGHT)  # 2/2 flags beat 3/4; the confirmation's long no-op starts end it 2/4
        screen = _poll_result(evaluator)
        assert screen.confirming and screen.report.flag_rate == 1.0
        kept = paths.best.read_bytes()
        confirmed = _poll_result(evaluator)
        assert confirmed.confirmation and not confirmed.best and confirmed.report.flag_rate == 0.5
        assert paths.best.read_bytes() == kept and evaluator.best_flag_rate == 0.75
    finally:
        evaluator.close()


def test_a_resumed_run_compares_against_its_best_checkpoint(trained_run):
    evaluator = PeriodicEvaluator(trained_run.paths, process_context())
    saved = load_weights(trained_run.paths.best)["eval"]
    assert evaluator.best_x == pytest.approx(saved["x_mean"]) and evaluator.best_flag_rate == saved["flag_rate"]
    evaluator.close()


# --- mario-tui --eval ----------------------------------------------------------------------------------------

def test_eval_prints_a_table_writes_json_csv_and_a_gif(trained_run, capsys):
    root = trained_run.paths.root
    code = main(["--eval", root.name, "--run-dir", str(root.parent), "--episodes", "2", "--eval-max-steps", "40",
                 "--gif"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "episode 2/2 on 1-1" in out
    assert "level  episodes     flags   mean x" in out and "2 greedy episodes" in out
    reports = sorted((root / "eval").glob("*.json"))
    data = json.loads(reports[-1].read_text())
    assert data["summary"]["episodes"] == 2 and len(data["episodes"]) == 2
    assert data["options"]["max_steps"] == 40 and data["updates"] == trained_run.coordinator.counters.updates
    assert all(e["steps"] <= 40 for e in data["episodes"])
    csv_rows = reports[-1].with_suffix(".csv").read_text().splitlines()
    assert csv_rows[0].startswith("level,seed,noops,max_x") and len(csv_rows) == 3
    with Image.open(reports[-1].with_suffix(".gif")) as gif:
        assert gif.n_frames > 2


def test_eval_in_parallel_processes_plays_the_same_episodes(trained_run):
    options = EvalOptions(episodes=3, max_steps=40, noop_max=8)
    alone = evaluate(trained_run.paths.best, options)
    together = evaluate(trained_run.paths.best, EvalOptions(episodes=3, max_steps=40, noop_max=8, workers=2))
    assert alone.episodes == together.episodes
    assert len({e.noops for e in alone.episodes}) > 1


@pytest.mark.parametrize("args, message", [
    (["--eval", "no-such-run"], "--eval: no run or checkpoint 'no-such-run'"),
    (["--eval", "{best}", "--level", "9-1"], "--level: unknown level '9-1'"),
    (["--eval", "{best}", "--lr", "0.1"], "--lr: not used by --eval"),
    (["--eval", "{damaged}"], "damaged, truncated or not a mario-tui file"),
    (["--eval", "{best}", "--eval-max-steps", "0"], "--eval-max-steps: must be between 1"),
])
def test_eval_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, capsys, args, message):
    damaged = tmp_path / "weights.pt"
    damaged.write_bytes(trained_run.paths.best.read_bytes()[:500])
    args = [a.format(best=trained_run.paths.best, damaged=damaged) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_eval_of_a_damaged_file_prints_no_traceback(tmp_path):
    damaged = tmp_path / "best.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "mario_tui.cli", "--eval", str(damaged)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


# --- learning, through the real runtime ----------------------------------------------------------------------

def test_the_real_runtime_learns_a_corridor_and_its_greedy_score_beats_random(tmp_path):
    """Workers + shared memory + coordinator + the evaluation process, on a task where learning is fast and sure."""
    config = RunConfig(workers=2, frame_size=36, conv_width=8, hidden_size=32, batch_size=32, buffer_size=5000,
                       learning_starts=200, collect_steps=4, n_step=3, gamma=0.9, lr=1e-3, lr_min=1e-4,
                       lr_decay_updates=600, target_update=50, eps_decay_steps=1500, reward_scale=1.0,
                       q_scale=10.0, seed=3, eval_every=100, eval_episodes=3, eval_noops=3, csv_every=50,
                       run_dir=str(tmp_path), name="corridor")
    run = Run(config, env_factory=make_simple_corridor)
    run.start()
    try:
        wait_for(lambda: len(run.eval_history) >= 2 and run.coordinator.counters.updates >= 300, 180,
                 "300 updates and two periodic evaluations")
    finally:
        run.stop(timeout=10)
    assert run.error is None
    options = EvalOptions(episodes=5, noop_max=3)
    trained = evaluate(run.paths.best, options, env_factory=make_simple_corridor)
    rng = np.random.default_rng(0)
    random_policy = [play_evaluation_episode(SimpleCorridor(), lambda obs: int(rng.integers(7)), "1-1", seed, options)
                     for seed in range(20)]
    random_x = float(np.mean([e.max_x for e in random_policy]))
    assert random_x < 4
    assert trained.x_mean >= 10 and trained.flag_rate >= 0.8, trained.table()
    assert max(p.x_mean for p in run.eval_history) >= 10
