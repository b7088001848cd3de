"""Emulator ceiling vs the full `make_env` pipeline, in NES frames per second (target ratio >= 0.85).

    uv run python benchmarks/bench_env.py [--seconds S] [--rounds R]

Both play random `simple` actions in 1-1 and reset when an episode ends. `raw` is gym_super_mario_bros with
JoypadSpace, one NES frame per step; the pipeline counts agent steps x frame_skip. The two alternate for R
rounds in one process (this machine is noisy: only same-run figures compare) and the medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from gymnasium.wrappers import FrameStackObservation
from nes_py.wrappers import JoypadSpace

from mario_tui.engine.env import SkipMaxGrayResize, make_env

CONFIG = SimpleNamespace(level="1-1", actions="simple", frame_skip=4, frame_size=84, frame_stack=4)


def frames_per_second(env: gym.Env, frames_per_step: int, seconds: float, rng: np.random.Generator) -> float:
    """Step `env` with random actions for about `seconds` (reset when an episode ends); NES frames per second."""
    n_actions = int(env.action_space.n)
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for action in rng.integers(n_actions, size=16).tolist():
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += 16
    return steps * frames_per_step / (time.perf_counter() - start)


class _ConstantFrames(gym.Env):
    """Returns one fixed frame: isolates the cost of the wrappers above it."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.observation_space = gym.spaces.Box(0, 255, frame.shape, dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        return self.frame, {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        return self.frame, 0.0, False, False, {}


def preprocessing_costs(pipeline: gym.Env) -> dict[str, float]:
    """Microseconds per agent step of each preprocessing part, on the live emulator screen."""
    prep = pipeline.env
    assert isinstance(prep, SkipMaxGrayResize)
    nes = pipeline.unwrapped

    def grab_two() -> None:
        nes.observation("grayscale", prep._raw[0])
        nes.observation("grayscale", prep._raw[1])

    stack = FrameStackObservation(_ConstantFrames(prep._observe(2).copy()), CONFIG.frame_stack)
    stack.reset()

    def best_us(fn: Any, number: int = 500) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    costs = {
        "2x native grayscale copy": best_us(grab_two),
        "max + BOX resize": best_us(lambda: prep._observe(2)),
        "frame stack (gymnasium)": best_us(lambda: stack.step(0)) - best_us(lambda: stack.env.step(0)),
    }
    costs["total"] = sum(costs.values())
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians are reported)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    raw = JoypadSpace(gym.make("SuperMarioBros-1-1-v0"), SIMPLE_MOVEMENT)
    raw.reset(seed=0)
    pipeline = make_env(CONFIG, seed=0)
    pipeline.reset(seed=0)

    raw_fps: list[float] = []
    pipe_fps: list[float] = []
    for round_ in range(args.rounds):
        raw_fps.append(frames_per_second(raw, 1, args.seconds, rng))
        pipe_fps.append(frames_per_second(pipeline, CONFIG.frame_skip, args.seconds, rng))
        print(f"round {round_ + 1}: raw {raw_fps[-1]:.0f}, pipeline {pipe_fps[-1]:.0f} frames/s "
              f"(ratio {pipe_fps[-1] / raw_fps[-1]:.2f})", flush=True)

    raw_median = statistics.median(raw_fps)
    pipe_median = statistics.median(pipe_fps)
    ratios = [p / r for p, r in zip(pipe_fps, raw_fps, strict=True)]
    print(f"config: level {CONFIG.level}, actions {CONFIG.actions}, frame_skip {CONFIG.frame_skip}, "
          f"frame_size {CONFIG.frame_size}, frame_stack {CONFIG.frame_stack}; "
          f"{args.rounds} rounds x {args.seconds:g} s each")
    print(f"raw emulator: {raw_median:.0f} frames/s (median)")
    print(f"pipeline: {pipe_median:.0f} frames/s (median) = {pipe_median / CONFIG.frame_skip:.0f} agent steps/s")
    print(f"ratio: {pipe_median / raw_median:.2f} (ratio of medians; median of per-round ratios "
          f"{statistics.median(ratios):.2f}; target >= 0.85)")
    overhead = (CONFIG.frame_skip / pipe_median - CONFIG.frame_skip / raw_median) * 1e6
    print(f"pipeline overhead implied by the medians: {overhead:.0f} us per agent step")
    print("preprocessing per agent step (best of 5, us):")
    for name, micros in preprocessing_costs(pipeline).items():
        print(f"  {name}: {micros:.1f}")


if __name__ == "__main__":
    main()
