"""Plays the environment with the current policy and fills a replay buffer.

Each worker collects through one (`worker.WorkerLoop`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mario_tui.engine.models.base import Model
from mario_tui.engine.optim import epsilon_at


@dataclass
class EpisodeResult:
    """One finished episode, as the UI and the CSV report it."""

    reward: float
    length: int
    x_pos: int
    flag: bool
    world: int
    stage: int


@dataclass
class CollectorStats:
    steps: int = 0
    episodes: int = 0
    last_reward: float = 0.0
    best_reward: float = float("-inf")
    best_x_pos: int = 0
    x_pos: int = 0
    world: int = 0
    stage: int = 0
    env_seconds: float = 0.0
    act_seconds: float = 0.0
    finished: deque[EpisodeResult] = field(default_factory=lambda: deque(maxlen=1000))


class Collector:
    """Epsilon-greedy experience collection from one env into one buffer."""

    def __init__(self, env: Any, buffer: Any, model: Model, eps_start: float, eps_end: float,
                 eps_decay_steps: int, seed: int | None = None) -> None:
        self.env = env
        self.buffer = buffer
        self.model = model
        self.eps_start, self.eps_end, self.eps_decay_steps = eps_start, eps_end, eps_decay_steps
        self.stats = CollectorStats()
        self._episode_reward = 0.0
        self._episode_length = 0
        self._episode_x = 0
        self._seed = seed
        self._obs: np.ndarray | None = None

    @property
    def epsilon(self) -> float:
        return epsilon_at(self.stats.steps, self.eps_start, self.eps_end, self.eps_decay_steps)

    def _reset(self) -> None:
        obs, info = self.env.reset(seed=self._seed)
        self._seed = None  # seed only the first reset; later resets continue the env's own RNG
        self._obs = obs
        self.buffer.start_episode(obs)
        self.model.reset_state(1)
        self._episode_reward, self._episode_length, self._episode_x = 0.0, 0, int(info.get("x_pos", 0))

    def collect(self, steps: int, on_step: Callable[[], None] | None = None) -> list[EpisodeResult]:
        """Play `steps` agent steps (calling `on_step` after each); returns the episodes that finished."""
        if self._obs is None:
            self._reset()
        finished: list[EpisodeResult] = []
        stats = self.stats
        for _ in range(steps):
            t0 = time.perf_counter()
            action = int(self.model.select_action(torch.from_numpy(self._obs).unsqueeze(0), self.epsilon)[0])
            t1 = time.perf_counter()
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            t2 = time.perf_counter()
            stats.act_seconds += t1 - t0
            stats.env_seconds += t2 - t1
            self.buffer.add(action, float(reward), next_obs, bool(terminated), bool(truncated))
            self._obs = next_obs
            stats.steps += 1
            self._episode_reward += float(reward)
            self._episode_length += 1
            x_pos = int(info.get("x_pos", 0))
            self._episode_x = max(self._episode_x, x_pos)
            stats.x_pos, stats.world, stats.stage = x_pos, int(info.get("world", 0)), int(info.get("stage", 0))
            if on_step is not None:
                on_step()
            if terminated or truncated:
                result = EpisodeResult(self._episode_reward, self._episode_length, self._episode_x,
                                       bool(info.get("flag_get", False)), stats.world, stats.stage)
                finished.append(result)
                stats.finished.append(result)
                stats.episodes += 1
                stats.last_reward = result.reward
                stats.best_reward = max(stats.best_reward, result.reward)
                stats.best_x_pos = max(stats.best_x_pos, result.x_pos)
                self._reset()
        return finished
