"""Training episodes that start where earlier ones got to (`ReachedStarts`), on the real emulator."""

from __future__ import annotations

import numpy as np
import pytest

from mario_tui.engine.config import RunConfig
from mario_tui.engine.env import make_env
from mario_tui.engine.reached_starts import FLOAT_STATE, ReachedStarts

RUN_RIGHT = (1, 2, 3, 4)  # SIMPLE_MOVEMENT's right, right + A, right + B, right + A + B
LEVEL_START_X = 40


def reached_starts_of(env) -> ReachedStarts | None:
    while env is not None and not isinstance(env, ReachedStarts):
        env = getattr(env, "env", None)
    return env


def play(env, rng: np.random.Generator, steps: int) -> tuple[int, list[float], dict]:
    """Run right with random jumps until the episode ends or `steps`; the max x, the rewards, the last info."""
    rewards, info, x_max = [], {}, 0
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(int(rng.choice(RUN_RIGHT)))
        rewards.append(float(reward))
        x_max = max(x_max, int(info["x_pos"]))
        if terminated or truncated:
            break
    return x_max, rewards, info


@pytest.fixture
def env():
    env = make_env(RunConfig(reached_starts=1.0), seed=0, training=True)
    yield env
    env.close()


def test_after_a_first_episode_every_reset_starts_at_a_reached_x_on_the_ground(env) -> None:
    wrapper = reached_starts_of(env)
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    assert info["x_pos"] == LEVEL_START_X and wrapper.started_at == 0  # nothing reached yet: the level's start
    first_max, _, _ = play(env, rng, 300)
    assert first_max > 300 and wrapper.cells >= 4
    starts = []
    for _ in range(8):
        obs, info = env.reset()
        starts.append(info["x_pos"])
        assert wrapper.started_at == info["x_pos"] and LEVEL_START_X <= info["x_pos"] <= first_max + 64
        assert env.unwrapped.ram[FLOAT_STATE] == 0  # a snapshot is only taken with Mario on the ground
        # the observation is the loaded state's screen, not the level start's: all four stacked frames equal it
        assert all(np.array_equal(obs[0], frame) for frame in obs[1:])
        _, rewards, _ = play(env, rng, 5)
        # the reward tracks x from the loaded state: no jump of hundreds of pixels in the first step
        assert all(abs(r) <= 25 for r in rewards)
    assert len(set(starts)) >= 3 and max(starts) > 200  # cells all along the way are drawn, the first one too


def test_the_archive_grows_with_the_frontier_and_keeps_few_snapshots_per_cell(env) -> None:
    wrapper = reached_starts_of(env)
    rng = np.random.default_rng(1)
    env.reset(seed=1)
    best = 0
    for _ in range(12):
        x_max, _, _ = play(env, rng, 200)
        best = max(best, x_max)
        env.reset()
    assert wrapper.cells >= best // wrapper.stretch - 2
    assert all(1 <= len(kept) <= wrapper.per_cell for kept in wrapper._cells.values())
    assert max(wrapper._offers.values()) > wrapper.per_cell  # reservoir sampling replaced some


def test_probability_zero_evaluation_and_replay_start_at_the_level_start() -> None:
    for env in (make_env(RunConfig(reached_starts=0.0), seed=0, training=True),
                make_env(RunConfig(reached_starts=1.0), seed=0)):  # not training: what --eval and replay build
        try:
            rng = np.random.default_rng(2)
            env.reset(seed=0)
            play(env, rng, 200)
            for _ in range(3):
                _, info = env.reset()
                assert info["x_pos"] == LEVEL_START_X
        finally:
            env.close()


def test_the_same_seed_draws_the_same_starts() -> None:
    def starts(seed: int) -> list[int]:
        env = make_env(RunConfig(reached_starts=0.5), seed=seed, training=True)
        try:
            rng = np.random.default_rng(seed)
            env.reset(seed=seed)
            xs = []
            for _ in range(8):
                play(env, rng, 150)
                xs.append(env.reset()[1]["x_pos"])
            return xs
        finally:
            env.close()

    first = starts(3)
    assert first == starts(3)
    assert len(set(first)) >= 3
