"""The Super Mario Bros env factory, on the real emulator (a few hundred NES frames per test)."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from nes_py.wrappers import JoypadSpace
from PIL import Image

from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.env import HELD_BUTTONS, action_buttons, action_meanings, current_rgb_frame, make_env, num_actions

INFO_KEYS = ("x_pos", "flag_get", "world", "stage", "score", "time", "life", "coins", "status")
FRAME_COUNTER = 0x09  # SMB's RAM byte that counts NES frames
FLOAT_STATE, PLAYER_Y = 0x1D, 0xCE  # SMB's RAM: 0 = Mario stands on something; Mario's height (smaller = higher)


def cfg(**changes: object) -> SimpleNamespace:
    base = dict(level="1-1", actions="simple", frame_skip=4, frame_size=84, frame_stack=4, repress_jump=True)
    return SimpleNamespace(**{**base, **changes})


@pytest.fixture(scope="module")
def env_1_1() -> gym.Env:
    env = make_env(cfg())
    yield env
    env.close()


def stage_of(info: dict) -> str:
    return f"{info['world']}-{info['stage']}"


def test_reset_and_step_shapes_types_and_info(env_1_1: gym.Env) -> None:
    obs, info = env_1_1.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env_1_1.observation_space.shape == (4, 84, 84) and obs in env_1_1.observation_space
    assert env_1_1.action_space.n == 7
    obs, reward, terminated, truncated, info = env_1_1.step(1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert isinstance(reward, float)
    assert terminated is False and truncated is False
    for key in INFO_KEYS:
        assert key in info, key
    for key in ("x_pos", "world", "stage", "score", "time", "life", "coins"):
        assert type(info[key]) is int, key
    assert type(info["flag_get"]) is bool
    assert stage_of(info) == "1-1" and info["time"] > 0


def test_reset_stack_holds_copies_of_the_reset_frame(env_1_1: gym.Env) -> None:
    obs, _ = env_1_1.reset()
    assert all(np.array_equal(obs[i], obs[0]) for i in range(4))
    assert obs[0].std() > 0  # a real picture, not a blank padding frame


def test_step_is_frame_skip_frames_with_max_of_last_two(env_1_1: gym.Env) -> None:
    """Replays the same actions on a plain env: the newest stacked frame is the resized max of frames 3 and 4."""
    raw = JoypadSpace(gym.make("SuperMarioBros-1-1-v0"), SIMPLE_MOVEMENT)
    raw.reset()
    env_1_1.reset()
    nes = env_1_1.unwrapped
    for action in (3, 4, 1):
        before = int(nes.ram[FRAME_COUNTER])
        obs, *_ = env_1_1.step(action)
        assert (int(nes.ram[FRAME_COUNTER]) - before) % 256 == 4
        grays = []
        for _ in range(4):
            raw.step(action)
            grays.append(raw.unwrapped.observation("grayscale"))
        expected = np.asarray(Image.fromarray(np.maximum(grays[2], grays[3])).resize((84, 84), Image.Resampling.BOX))
        assert np.array_equal(obs[-1], expected)
    raw.close()


def test_death_terminates_without_truncation(env_1_1: gym.Env) -> None:
    """Walking right runs Mario into 1-1's first Goomba (~40 steps): a death ends the episode as terminated."""
    env_1_1.reset()
    for _ in range(200):
        _, reward, terminated, truncated, info = env_1_1.step(1)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert reward < 0 and not info["flag_get"]


def test_frame_skip_one_and_other_sizes() -> None:
    env = make_env(cfg(level="1-2", actions="right_only", frame_skip=1, frame_size=48, frame_stack=2))
    obs, info = env.reset()
    assert obs.shape == (2, 48, 48) and stage_of(info) == "1-2"
    before = int(env.unwrapped.ram[FRAME_COUNTER])
    obs, *_ = env.step(1)
    assert obs.shape == (2, 48, 48)
    assert (int(env.unwrapped.ram[FRAME_COUNTER]) - before) % 256 == 1
    env.close()


def test_single_stage_spec_reaches_that_stage() -> None:
    env = make_env(cfg(level="4-2"))
    _, info = env.reset()
    assert stage_of(info) == "4-2"
    _, _, _, _, info = env.step(0)
    assert stage_of(info) == "4-2"
    env.close()


def test_random_varies_and_is_reproducible_by_seed() -> None:
    env = make_env(cfg(level="random"), seed=7)
    first = [stage_of(env.reset()[1]) for _ in range(4)]
    assert len(set(first)) > 1
    # reset(seed=7) restarts the same draws as make_env(seed=7) (stages now load from cached snapshots)
    again = [stage_of(env.reset(seed=7)[1])] + [stage_of(env.reset()[1]) for _ in range(3)]
    assert again == first
    obs, _, _, _, info = env.step(1)
    assert obs.shape == (4, 84, 84) and stage_of(info) == first[-1]
    env.close()


def test_list_spec_only_yields_listed_stages() -> None:
    env = make_env(cfg(level="1-1, 4-1"), seed=1)
    seen = {stage_of(env.reset()[1]) for _ in range(6)}
    assert seen <= {"1-1", "4-1"}
    assert len(seen) == 2  # with this seed both come up in 6 draws
    # a retargeted stage starts exactly where a fresh single-stage env does
    while stage_of(env.reset()[1]) != "4-1":
        pass
    fresh = make_env(cfg(level="4-1"))
    fresh.reset()
    assert np.array_equal(current_rgb_frame(env), current_rgb_frame(fresh))
    for env_ in (env, fresh):
        env_.close()


def hold_jump(repress_jump: bool, frames: int = 120) -> tuple[int, int]:
    """Hold `right + A` frame by frame from the start of 1-1: (jumps started, height of the first jump's peak)."""
    env = make_env(cfg(frame_skip=1, repress_jump=repress_jump))
    env.reset()
    ram = env.unwrapped.ram
    jumps, peak, was_on_ground = 0, 255, True
    for _ in range(frames):
        env.step(2)  # right + A
        on_ground = ram[FLOAT_STATE] == 0
        jumps += was_on_ground and not on_ground
        if jumps == 1:
            peak = min(peak, int(ram[PLAYER_Y]))
        was_on_ground = on_ground
    env.close()
    return jumps, peak


def test_holding_jump_jumps_again_after_landing_only_with_repress_jump() -> None:
    """NES Mario jumps only on a fresh press of A: held, he jumps once and then walks (or pushes against a pipe).
    With repress_jump the held A is released for a frame after landing, and the first jump is just as high."""
    plain_jumps, plain_peak = hold_jump(False)
    repress_jumps, repress_peak = hold_jump(True)
    assert plain_jumps == 1
    assert repress_jumps >= 2
    assert repress_peak == plain_peak < 120  # a full jump: held A was never cut short


@pytest.mark.parametrize(("changes", "message_part"), [
    ({"level": "9-1"}, "1-1"),
    ({"level": "castle"}, "random"),
    ({"actions": "turbo"}, "right_only, simple, complex"),
    ({"frame_skip": 0}, "between 1 and 16"),
    ({"frame_size": 8}, "between 36 and 240"),
    ({"frame_stack": 0}, "between 1 and 16"),
])
def test_bad_options_raise_config_error_listing_valid_values(changes: dict, message_part: str) -> None:
    with pytest.raises(ConfigError, match=message_part):
        make_env(cfg(**changes))


def test_accepts_a_run_config() -> None:
    env = make_env(RunConfig(level="1-1", actions="right_only", frame_size=36, frame_stack=1))
    obs, _ = env.reset()
    assert obs.shape == (1, 36, 36) and env.action_space.n == 5
    env.close()


def test_action_sets() -> None:
    assert [num_actions(a) for a in ("right_only", "simple", "complex")] == [5, 7, 12]
    names = action_meanings("simple")
    assert len(names) == 7 and names[0] == "NOOP" and names[2] == "right + A"
    with pytest.raises(ConfigError, match="right_only"):
        num_actions("all")
    with pytest.raises(ConfigError, match="right_only"):
        action_meanings("all")


def test_action_buttons_show_which_actions_hold_a() -> None:
    """What a model that sees the previous action is shown: the buttons it held, A among them."""
    buttons = action_buttons("simple")
    a_held = [row[HELD_BUTTONS.index("A")] for row in buttons]
    assert a_held == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # NOOP, right, right+A, right+B, right+A+B, A, left
    assert buttons[0] == [0.0] * len(HELD_BUTTONS)
    for actions in ("right_only", "simple", "complex"):
        rows = action_buttons(actions)
        assert len(rows) == num_actions(actions) and len({tuple(r) for r in rows}) == len(rows)  # nothing lost


def test_rgb_frame(env_1_1: gym.Env) -> None:
    env_1_1.reset()
    frame = current_rgb_frame(env_1_1)
    assert frame.shape == (240, 256, 3) and frame.dtype == np.uint8 and frame.std() > 0
    frame[:] = 0  # a copy: the emulator's screen is untouched
    assert current_rgb_frame(env_1_1).std() > 0
    env = make_env(cfg(), render_rgb=True)
    env.reset()
    env.step(1)
    assert np.array_equal(env.render(), current_rgb_frame(env))
    env.close()
