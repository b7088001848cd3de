"""Super Mario Bros environment factory: level choice, action set and the observation pipeline.

`make_env(config)` builds, from the inside out:

    gym.make("SuperMarioBros-W-S-v0")  one emulator, single-stage rules (death / flag / time-up ends the episode)
    StageSampler                       only for `random` or a list: loads a freshly drawn stage at every reset
    ReachedStarts                      only for training workers with `reached_starts` > 0: a share of resets
                                       load a state an earlier episode reached (`reached_starts.py`)
    RepressJump                        only with `repress_jump`: a held A button is released for one frame when
                                       Mario has stood on the ground with it held, so holding jump jumps again
    JoypadSpace                        Discrete(n) over a button-combination list from gym_super_mario_bros.actions
    SkipMaxGrayResize                  repeat the action frame_skip frames, sum rewards, max of the last two
                                       frames in grayscale, box-resize to frame_size x frame_size
    FrameStackObservation              gymnasium's; at reset the stack holds copies of the reset frame

The emulator (~1 ms per NES frame) dominates; the pipeline adds ~0.2 ms per agent step of frame_skip frames
(`benchmarks/bench_env.py` measures both).
"""

from __future__ import annotations

import copy
from typing import Any, SupportsFloat

import gym_super_mario_bros  # noqa: F401  (registers the SuperMarioBros-* ids with gymnasium)
import gymnasium as gym
import numpy as np
from gym_super_mario_bros._roms import decode_target
from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
from gymnasium.spaces import Box
from gymnasium.wrappers import FrameStackObservation
from nes_py.wrappers import JoypadSpace
from PIL import Image

from mario_tui.engine.config import ACTION_SETS, ConfigError, RunConfig, all_stages, parse_level_spec
from mario_tui.engine.reached_starts import ReachedStarts

BUTTON_COMBOS: dict[str, list[list[str]]] = {
    "right_only": RIGHT_ONLY,
    "simple": SIMPLE_MOVEMENT,
    "complex": COMPLEX_MOVEMENT,
}
assert tuple(BUTTON_COMBOS) == ACTION_SETS

# the options make_env reads; validated with RunConfig's own rules so the messages match the CLI's
_ENV_OPTIONS = ("level", "actions", "frame_skip", "frame_size", "frame_stack", "repress_jump")


def _combos(actions: str) -> list[list[str]]:
    try:
        return BUTTON_COMBOS[actions]
    except (KeyError, TypeError):
        raise ConfigError(f"--actions: {actions!r} is not one of {', '.join(ACTION_SETS)}") from None


def num_actions(actions: str) -> int:
    """Size of the discrete action space of an action set (`right_only` 5, `simple` 7, `complex` 12)."""
    return len(_combos(actions))


def action_meanings(actions: str) -> list[str]:
    """Button names per action index, e.g. `right + A` (for the UI's action display)."""
    return [" + ".join(buttons) for buttons in _combos(actions)]


HELD_BUTTONS = ("right", "left", "down", "up", "A", "B")
"""The buttons the action sets press (never start or select), in the order `action_buttons` lists them."""


def action_buttons(actions: str) -> list[list[float]]:
    """For each action of a set, 1.0 for each of `HELD_BUTTONS` it holds: what a model that sees the previous
    action is shown (whether A is still held decides whether the next A press jumps)."""
    return [[float(button in combo) for button in HELD_BUTTONS] for combo in _combos(actions)]


def current_rgb_frame(env: gym.Env) -> np.ndarray:
    """A copy of the emulator's screen now (240x256x3 uint8): the last frame of the last step or reset.

    Reads the native screen buffer on demand, so it costs nothing while nobody calls it. Not thread-safe
    against a concurrent `step` (the frame could be half drawn).
    """
    return env.unwrapped.observation("rgb_array_contiguous")


def _stage_tuple(stage: str) -> tuple[int, int]:
    world, number = stage.split("-")
    return int(world), int(number)


def _env_id(stage: str) -> str:
    return "SuperMarioBros-{}-{}-v0".format(*_stage_tuple(stage))


class StageSampler(gym.Wrapper):
    """Draws a stage from `stages` at every reset and loads it into the one emulator.

    gym-super-mario-bros 9.x has no random-stages env, and one env per stage would cost an emulator and
    ~0.3 s of start-screen skipping each. Instead this retargets the single-stage env: the first time a stage
    is drawn it plays the start screen to it (~0.3 s), later it loads a cached snapshot (~0.1 ms).
    Draws use `rng` until `reset(seed=...)` replaces it with a Generator of that seed, so the sequence of
    stages is reproducible.
    """

    def __init__(self, env: gym.Env, stages: list[str], rng: np.random.Generator) -> None:
        super().__init__(env)
        self.stages = list(stages)
        self._rng = rng
        nes = env.unwrapped
        # the inner env was built for some stage and stands at its start state: keep that snapshot
        self._loaded = f"{nes._target_world}-{nes._target_stage}"
        self._snapshots: dict[str, Any] = {self._loaded: nes.dump_state()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._load(self.stages[self._rng.integers(len(self.stages))])
        return self.env.reset(seed=seed, options=options)

    def _load(self, stage: str) -> None:
        """Make `stage` the env's target and its start state the one `reset` restores."""
        if stage == self._loaded:
            return
        nes = self.env.unwrapped
        # these private attributes and methods are what SuperMarioBrosEnv.__init__ uses for its target stage
        nes._target_world, nes._target_stage, nes._target_area = decode_target(_stage_tuple(stage), False)
        snapshot = self._snapshots.get(stage)
        if snapshot is None:
            nes._env.reset()
            nes.ram[:] = 0  # a cold boot: on a warm reset the game keeps its clock and skips the stage write
            nes._skip_start_screen()
            snapshot = self._snapshots[stage] = nes.dump_state()
        else:
            nes.load_state(snapshot)
        nes._backup()
        self._loaded = stage


class RepressJump(gym.Wrapper):
    """Release a held A button for one NES frame once Mario has stood on the ground with it held for two frames.

    The game starts a jump only on a *fresh* press of A. An agent that holds a jump action (`right + A`) while it
    lands, or walks up to a pipe with A still held from an earlier jump, presses against the pipe without
    jumping, and its frames cannot show that A is held: the same picture means "jumps" after a released A and
    "stands still" after a held one. A greedy DQN then stands at the pipe for good (`benchmarks/README.md`: most
    stalled evaluation episodes held `right + A` or `right + A + B` on the ground). With this wrapper a jump
    action on the ground always jumps, so the observation says what an action will do.

    Works per NES frame, below `JoypadSpace` (it sees button bytes). The game reads the pad a frame late, so the
    first frame after a fresh press still reads "on the ground": waiting for two frames keeps a starting jump's
    held A (which makes it higher) untouched; a jump then restarts ~3 frames after landing.
    """

    A_BUTTON = 0b00000001  # nes_py's JoypadSpace button map
    FLOAT_STATE = 0x001D  # SMB's RAM byte for Mario's float state: 0 = standing on something solid

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._ram = env.unwrapped.ram
        self._held_on_ground = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._held_on_ground = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: int) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        if action & self.A_BUTTON and self._held_on_ground >= 2:
            action &= ~self.A_BUTTON
        result = self.env.step(action)
        on_ground = self._ram[self.FLOAT_STATE] == 0
        self._held_on_ground = self._held_on_ground + 1 if action & self.A_BUTTON and on_ground else 0
        return result


class SkipMaxGrayResize(gym.Wrapper):
    """Repeat an action `skip` frames; observe the pixel max of the last two frames, grayscale, resized.

    Hand-written rather than gymnasium's MaxAndSkipObservation + GrayscaleObservation + ResizeObservation:
    those need skip >= 2, keep a stale frame when an episode ends inside the skip, convert every frame with
    numpy (~270 us/frame, i.e. ~25% of the emulator at skip 4) and need OpenCV. Here only the last two frames
    are converted, by nes-py's native grayscale copy (~30 us), and resized once per step with Pillow's BOX
    filter (area averaging, ~100 us; nearest sampling would be ~6 us but makes thin sprites shimmer as the
    screen scrolls).
    """

    def __init__(self, env: gym.Env, skip: int, size: int) -> None:
        super().__init__(env)
        self._skip = skip
        self._size = (size, size)
        self._nes = env.unwrapped
        self._raw = np.zeros((2, *self._nes.observation_space.shape[:2]), dtype=np.uint8)
        self.observation_space = Box(0, 255, (size, size), dtype=np.uint8)

    def _observe(self, frames: int) -> np.ndarray:
        gray = self._raw[0] if frames == 1 else np.maximum(self._raw[0], self._raw[1], out=self._raw[0])
        return np.asarray(Image.fromarray(gray).resize(self._size, Image.Resampling.BOX))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        _, info = self.env.reset(seed=seed, options=options)
        self._nes.observation("grayscale", self._raw[0])
        return self._observe(1), info

    def step(self, action: int) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        total = 0.0
        grabbed = 0
        first_grab = self._skip - 2
        for i in range(self._skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            done = terminated or truncated
            if i >= first_grab or done:
                self._nes.observation("grayscale", self._raw[grabbed])
                grabbed += 1
            if done:
                break
        return self._observe(grabbed), total, terminated, truncated, info


def check_env_options(config: Any) -> None:
    """Raise ConfigError (listing what is valid) for the first bad env option of `config`."""
    probe = RunConfig(**{name: getattr(config, name) for name in _ENV_OPTIONS})
    problems = probe.problems()
    for name in _ENV_OPTIONS:
        if name in problems:
            raise ConfigError(problems[name])


def make_env(config: Any, seed: int | None = None, render_rgb: bool = False, training: bool = False) -> gym.Env:
    """Build the preprocessed Super Mario Bros env described by `config` (see the module docstring).

    `seed` seeds the stage draws of `random` / list levels and the action space's `sample()`; a later
    `reset(seed=s)` reseeds as in gymnasium. `render_rgb` gives the emulator `render_mode="rgb_array"`
    (so `env.render()` returns the screen); `current_rgb_frame` works either way. `training` adds what only
    training episodes do (`reached_starts`); evaluation and replay play the level from its start.
    """
    check_env_options(config)
    spec = parse_level_spec(config.level)
    stages = all_stages() if spec == "random" else spec
    rng = np.random.default_rng(seed)
    # build the emulator on the stage the first reset will draw, so that reset needs no start-screen skip
    first = stages[copy.deepcopy(rng).integers(len(stages))]
    env: gym.Env = gym.make(_env_id(first), render_mode="rgb_array" if render_rgb else None)
    if len(stages) > 1:
        env = StageSampler(env, stages, rng)
    if training and getattr(config, "reached_starts", 0) > 0:
        env = ReachedStarts(env, config.reached_starts, seed)
    if config.repress_jump:
        env = RepressJump(env)
    env = JoypadSpace(env, _combos(config.actions))
    env = SkipMaxGrayResize(env, config.frame_skip, config.frame_size)
    env = FrameStackObservation(env, config.frame_stack, padding_type="reset")
    if seed is not None:
        env.action_space.seed(seed)
    return env
