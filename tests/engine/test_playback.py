"""Replay viewer engine: a saved agent plays one episode (in-process and in a spawned process), GIF export."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from mario_tui.engine.checkpoint import CheckpointError, save_checkpoint, save_weights
from mario_tui.engine.config import ConfigError, RunConfig, all_stages
from mario_tui.engine.env import action_meanings, num_actions
from mario_tui.engine.playback import (
    EpisodeRecording,
    PlaybackError,
    PlaybackJob,
    default_gif_path,
    export_gif,
    load_policy,
    play_episode,
    resolve_level,
)
from mario_tui.engine.registry import build_model

CONFIG = RunConfig(frame_size=42, conv_width=4, hidden_size=16, actions="right_only", level="1-1")
N_ACTIONS = num_actions(CONFIG.actions)


def save_tiny(path: Path, config: RunConfig = CONFIG, checkpoint: bool = False) -> Path:
    model, _ = build_model(config, num_actions(config.actions))
    if checkpoint:
        save_checkpoint(path, {"config": config.to_dict(), "model": model.state_dict(), "optimizer": {},
                               "counters": {"updates": 0}})
    else:
        save_weights(path, model.state_dict(), config.to_dict(), {"updates": 0})
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("checkpoints") / "tiny-run" / "weights.pt")


@pytest.fixture(scope="module")
def recording(weights) -> EpisodeRecording:
    return play_episode(weights, max_steps=60, seed=0)


def same_recordings(a: EpisodeRecording, b: EpisodeRecording) -> None:
    assert (a.steps, a.level, a.max_x_pos, a.flag, a.total_return) == (b.steps, b.level, b.max_x_pos, b.flag,
                                                                        b.total_return)
    assert [f.action for f in a.frames] == [f.action for f in b.frames]
    assert [f.x_pos for f in a.frames] == [f.x_pos for f in b.frames]
    assert all(fa.packed_rgb == fb.packed_rgb for fa, fb in zip(a.frames, b.frames, strict=True))
    np.testing.assert_allclose(np.stack([f.q_values for f in a.frames[1:]]),
                               np.stack([f.q_values for f in b.frames[1:]]), rtol=1e-5, atol=1e-6)


def test_play_episode_records_every_step(recording):
    rec = recording
    names = action_meanings("right_only")
    assert rec.action_names == names and rec.level == "1-1" and rec.run_name == "tiny-run"
    assert 1 <= rec.steps <= 60 and len(rec.frames) == rec.steps + 1
    start = rec.frames[0]
    assert start.action == -1 and start.reward == 0.0 and np.isnan(start.q_values).all()
    assert start.q_values.shape == (N_ACTIONS,) and (start.world, start.stage) == (1, 1)
    for frame in rec.frames[1:]:
        rgb = frame.rgb
        assert rgb.shape == (240, 256, 3) and rgb.dtype == np.uint8
        assert frame.q_values.shape == (N_ACTIONS,) and frame.q_values.dtype == np.float32
        assert frame.action == int(np.argmax(frame.q_values))  # greedy: the recorded values explain the action
        assert frame.action_name == names[frame.action]
        assert isinstance(frame.x_pos, int) and frame.x_pos >= 40 and (frame.world, frame.stage) == (1, 1)
    assert rec.total_return == pytest.approx(sum(f.reward for f in rec.frames))
    assert rec.max_x_pos == max(f.x_pos for f in rec.frames)
    assert len({f.packed_rgb for f in rec.frames}) > 1  # the screen changes
    summary = rec.summary()
    assert "tiny-run" in summary and "1-1" in summary and f"{rec.steps} steps" in summary and "\n" not in summary


def test_epsilon_explores_and_reports_progress(weights):
    seen: list[int] = []
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    rec = play_episode(weights, level="1-2", epsilon=1.0, max_steps=25, seed=1, on_progress=seen.append)
    assert torch.equal(torch.rand(3), expected)  # the caller's torch RNG is left alone
    assert rec.level == "1-2" and (rec.frames[-1].world, rec.frames[-1].stage) == (1, 2)
    assert seen == list(range(1, rec.steps + 1))
    assert len({f.action for f in rec.frames[1:]}) > 1  # random actions, not the greedy one
    assert all(np.isfinite(f.q_values).all() for f in rec.frames[1:])  # values shown even for random steps


@pytest.fixture(scope="module")
def walker(tmp_path_factory) -> Path:
    """Weights whose greedy policy always presses `right`, whatever it sees."""
    model, _ = build_model(CONFIG, N_ACTIONS)
    with torch.no_grad():
        for p in model.online.parameters():
            p.zero_()
        model.online.advantage[-1].bias[1] = 1.0  # right_only: 1 = right
    path = tmp_path_factory.mktemp("checkpoints") / "walker" / "weights.pt"
    save_weights(path, model.state_dict(), CONFIG.to_dict(), {"updates": 0})
    return path


def test_a_stuck_agent_is_cut_after_stall_steps_without_a_new_max_x(walker):
    # on 4-1, walking right runs into the first pipe and stays there
    weights = walker
    cut = play_episode(weights, level="4-1", max_steps=300, stall_steps=30, seed=0)
    whole = play_episode(weights, level="4-1", max_steps=300, seed=0)
    assert cut.stalled == 30 and "30 steps without progress" in cut.summary()
    assert whole.stalled == 0 and "without progress" not in whole.summary() and cut.steps < whole.steps
    assert max(f.x_pos for f in cut.frames[:-30]) == cut.max_x_pos  # the last 30 steps found no new max x
    assert max(f.x_pos for f in whole.frames[cut.steps + 1:]) <= cut.max_x_pos  # nor would the steps cut off
    assert [f.packed_rgb for f in cut.frames] == [f.packed_rgb for f in whole.frames[:cut.steps + 1]]
    with pytest.raises(ValueError, match="stall_steps"):
        play_episode(weights, stall_steps=-1)


def test_level_resolution():
    assert resolve_level("4-2") == "4-2"
    assert resolve_level("3-1,1-2") == "3-1"
    assert resolve_level("random", seed=5) == resolve_level("random", seed=5)
    assert resolve_level("random", seed=5) in all_stages()
    assert len({resolve_level("random", seed=s) for s in range(10)}) > 1
    with pytest.raises(ConfigError):
        resolve_level("9-9")


def test_background_job_matches_in_process_play_and_cleans_up(weights):
    run_folder = sorted(os.listdir(weights.parent))
    job = PlaybackJob(weights, epsilon=0.2, max_steps=40, seed=3)
    assert job.progress() == 0 and not job.done()
    job.start()
    seen = [job.progress()]
    deadline = time.monotonic() + 60
    while not job.done() and time.monotonic() < deadline:
        seen.append(job.progress())
        time.sleep(0.005)
    background = job.result(timeout=30)
    assert seen == sorted(seen) and job.progress() == background.steps
    assert job.done() and job.pid is None  # the process was reaped
    same_recordings(background, play_episode(weights, epsilon=0.2, max_steps=40, seed=3))
    assert job.result() is background  # cached
    assert sorted(os.listdir(weights.parent)) == run_folder


def test_cancel_kills_the_child(weights):
    run_folder = sorted(os.listdir(weights.parent))
    job = PlaybackJob(weights, max_steps=2000, seed=0)
    job.start()
    pid = job.pid
    deadline = time.monotonic() + 60
    while job.progress() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    first = job.progress()
    while job.progress() <= first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.progress() > first > 0
    job.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert job.done()
    with pytest.raises(PlaybackError, match="cancelled"):
        job.result()
    job.cancel()  # idempotent
    assert sorted(os.listdir(weights.parent)) == run_folder


def test_timeout_and_a_dying_child_are_reported(weights):
    with pytest.raises(PlaybackError, match="not started"):
        PlaybackJob(weights).result()
    job = PlaybackJob(weights, max_steps=2000)
    job.start()
    try:
        with pytest.raises(TimeoutError):
            job.result(timeout=0.05)
        os.kill(job.pid, signal.SIGKILL)  # e.g. the emulator crashed, or the OOM killer
        with pytest.raises(PlaybackError, match=r"died \(exit code -9\)"):
            job.result(timeout=30)
        assert job.done() and job.pid is None
    finally:
        job.cancel()


def test_export_gif(recording, tmp_path):
    run_dir = tmp_path / "checkpoints" / "tiny-run"
    path = default_gif_path(run_dir, recording)
    assert path.parent == run_dir and path.name.startswith("replay-1-1-") and path.suffix == ".gif"
    assert export_gif(recording, path, fps=20) == path
    assert os.listdir(run_dir) == [path.name]  # written atomically: no temp file left
    # Pillow merges identical consecutive frames into one longer frame
    runs = 1 + sum(a.packed_rgb != b.packed_rgb for a, b in itertools.pairwise(recording.frames))
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (256, 240) and gif.n_frames == runs > 1
        assert gif.info.get("loop") == 0
        first = np.asarray(gif.convert("RGB"))
        assert np.array_equal(first, recording.frames[0].rgb)  # exact colours, no dithering
        assert sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif)) == 50 * len(recording.frames)

    small = export_gif(recording, tmp_path / "small.gif", scale=0.5, every=4)
    with Image.open(small) as gif:
        assert gif.size == (128, 120) and 1 < gif.n_frames <= len(range(0, len(recording.frames), 4)) + 1


def test_damaged_checkpoint_is_named(weights, tmp_path):
    bad = tmp_path / "broken-run" / "weights.pt"
    bad.parent.mkdir()
    bad.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="broken-run/weights.pt"):
        load_policy(bad)
    with pytest.raises(CheckpointError, match="weights.pt"):
        play_episode(bad, max_steps=5)
    job = PlaybackJob(bad)
    with pytest.raises(CheckpointError, match="weights.pt"):
        job.start()  # before any process is spawned
    assert job.pid is None
    with pytest.raises(CheckpointError, match="no such file"):
        load_policy(tmp_path / "missing.pt")


def test_unknown_or_unfitting_model_is_a_checkpoint_error(weights, tmp_path):
    model, _ = build_model(CONFIG, N_ACTIONS)
    foreign = tmp_path / "weights.pt"
    save_weights(foreign, model.state_dict(), {**CONFIG.to_dict(), "model": "ppo"}, {"updates": 0})
    with pytest.raises(CheckpointError, match=r"weights.pt.*cannot build.*ppo"):
        load_policy(foreign)
    save_weights(foreign, model.state_dict(), CONFIG.replace(hidden_size=32).to_dict(), {"updates": 0})
    with pytest.raises(CheckpointError, match=r"weights.pt.*do not fit"):
        load_policy(foreign)


def test_a_recurrent_sampling_model_replays_deterministically(tmp_path):
    config = RunConfig(model="dreamer", frame_size=64, conv_width=4, hidden_size=16, deter_size=16, stoch_size=4,
                       stoch_classes=4, actions="simple", level="random")
    path = save_tiny(tmp_path / "dreamer-run" / "weights.pt", config)
    first, again = (play_episode(path, max_steps=20, seed=4) for _ in range(2))
    same_recordings(first, again)
    assert first.level == resolve_level("random", 4)
    assert all(f.q_values.shape == (7,) and np.isfinite(f.q_values).all() for f in first.frames[1:])


def test_loads_checkpoint_files_and_run_folders(tmp_path):
    ckpt = save_tiny(tmp_path / "run" / "checkpoint.pt", checkpoint=True)
    config, model = load_policy(ckpt)
    assert config.hidden_size == 16 and model.num_actions == N_ACTIONS
    config, model = load_policy(tmp_path / "run")  # a run folder: its weights.pt, else its checkpoint.pt
    assert config.frame_size == 42
    renamed = ckpt.rename(tmp_path / "run" / "best.pt")  # the kind comes from the contents, not the name
    assert load_policy(renamed)[0].conv_width == 4


def test_weights_saved_before_the_previous_action_input_still_load_and_play(tmp_path):
    """A weights.pt from before `prev_action` existed: its config has no such key and its network no such input."""
    old_config = CONFIG.replace(prev_action=False)
    model, _ = build_model(old_config, N_ACTIONS)
    saved = old_config.to_dict()
    del saved["prev_action"]
    path = tmp_path / "old-run" / "weights.pt"
    save_weights(path, model.state_dict(), saved, {"updates": 0})
    config, loaded = load_policy(path)
    assert config.prev_action is False and loaded.online.prev_action is False
    assert play_episode(path, max_steps=5, seed=0).steps == 5
    new = save_tiny(tmp_path / "new-run" / "weights.pt", CONFIG.replace(prev_action=True))  # a run that has it
    assert load_policy(new)[1].online.prev_action is True


def test_a_weights_file_holds_the_learned_tensors_only(tmp_path):
    """The previous action's button codes follow from the action set: a weights.pt written before that input
    existed has no such tensor and loads strictly into today's network, with or without the input."""
    for config in (CONFIG, CONFIG.replace(prev_action=True)):
        model, _ = build_model(config, N_ACTIONS)
        assert not [key for key in model.state_dict() if "prev_action_codes" in key]
        path = save_tiny(tmp_path / f"run-{config.prev_action}" / "weights.pt", config)
        assert load_policy(path)[1].online.prev_action is config.prev_action
