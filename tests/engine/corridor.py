"""A tiny deterministic task with image observations, for learning smoke tests.

Mario itself needs hours to show learning; this corridor needs seconds. The agent starts at the left
end of a corridor and must walk right to the goal within a time limit; the observation is a stack of
frames with a bright column at the agent's position, shaped like the real env's (uint8 stack × H × W).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    LEFT, STAY, RIGHT = 0, 1, 2

    def __init__(self, length: int = 8, max_steps: int = 20, frame_size: int = 36, stack: int = 4) -> None:
        self.length, self.max_steps, self.size, self.stack = length, max_steps, frame_size, stack
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(0, 255, (stack, frame_size, frame_size), np.uint8)
        self._frames = np.zeros((stack, frame_size, frame_size), np.uint8)

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size), np.uint8)
        width = self.size // self.length
        frame[:, self.pos * width:(self.pos + 1) * width] = 255
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        self._frames[:] = self._frame()
        return self._frames.copy(), {"x_pos": 0}

    def step(self, action):
        self.t += 1
        self.pos = int(np.clip(self.pos + int(action) - 1, 0, self.length - 1))
        self._frames = np.roll(self._frames, -1, axis=0)
        self._frames[-1] = self._frame()
        at_goal = self.pos == self.length - 1
        reward = 1.0 if at_goal else -0.01
        truncated = not at_goal and self.t >= self.max_steps
        return self._frames.copy(), reward, at_goal, truncated, {"x_pos": self.pos, "flag_get": at_goal}


def episode_return(env: Corridor, policy, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward
        done = terminated or truncated
    return total


class SimpleCorridor(gym.Env):
    """The corridor with Mario's interface, for tests through the real runtime and the real evaluation.

    Seven actions like the `simple` action set (only `right` walks right, `left` walks left, the rest stand
    still, so a random policy barely moves), reward +1 per cell of progress like Mario's x reward, `x_pos`,
    `flag_get`, `world` and `stage` in the info, and observations shaped like the real env's.
    """

    RIGHT, LEFT = 1, 6

    def __init__(self, length: int = 12, max_steps: int = 20, frame_size: int = 36, stack: int = 4) -> None:
        self.length, self.max_steps, self.size, self.stack = length, max_steps, frame_size, stack
        self.action_space = gym.spaces.Discrete(7)
        self.observation_space = gym.spaces.Box(0, 255, (stack, frame_size, frame_size), np.uint8)
        self._frames = np.zeros((stack, frame_size, frame_size), np.uint8)
        self.pos = self.t = 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size), np.uint8)
        width = self.size // self.length
        frame[:, self.pos * width:(self.pos + 1) * width] = 255
        return frame

    def _info(self, flag: bool = False) -> dict:
        return {"x_pos": self.pos, "flag_get": flag, "world": 1, "stage": 1, "time": self.max_steps - self.t}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        self._frames[:] = self._frame()
        return self._frames.copy(), self._info()

    def step(self, action):
        self.t += 1
        move = 1 if int(action) == self.RIGHT else -1 if int(action) == self.LEFT else 0
        before = self.pos
        self.pos = int(np.clip(self.pos + move, 0, self.length - 1))
        self._frames = np.roll(self._frames, -1, axis=0)
        self._frames[-1] = self._frame()
        at_goal = self.pos == self.length - 1
        truncated = not at_goal and self.t >= self.max_steps
        return self._frames.copy(), float(self.pos - before), at_goal, truncated, self._info(at_goal)


def make_simple_corridor(config, seed: int) -> SimpleCorridor:
    """`env_factory` for `Run` and `evaluate` (importable by name in their child processes)."""
    env = SimpleCorridor(frame_size=config.frame_size, stack=config.frame_stack)
    env.action_space.seed(seed)
    return env


def make_broken_env(config, seed: int) -> SimpleCorridor:
    """`env_factory` whose env never starts: every worker crashes at once (the crash-cap tests)."""
    raise RuntimeError("the emulator exploded")
