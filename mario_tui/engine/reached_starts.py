"""Training episodes that start where earlier episodes already got to (`--reached-starts P`).

A 1-1 agent learns the level front to back: every episode replays the first screens, and the obstacle where
the agent is stuck (a tall pipe, a pit) is met once per episode at best. With probability P a reset here loads
instead an emulator snapshot taken when this env's Mario stood on the ground at an x it had reached before (the
"return, then explore" of Go-Explore, with its cells as 64-pixel stretches of x): the replay buffer then holds
every stretch of the level the agent has seen, about equally often, and the frontier grows from its far end.

The snapshots are the agent's own states, no demonstration; evaluation (`--eval`, periodic evaluation, the
benchmark) always starts at the level's start. It needs an emulator that can save and load its state, which
nes-py does in ~0.1 ms (dump) and ~0.02 ms (load), screen included. The snapshots live in the worker's memory
only: a restarted or resumed worker starts with none and collects them again within an episode or two.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

FLOAT_STATE = 0x001D  # SMB RAM: Mario's float state, 0 = standing on something solid
NORMAL_PLAYER_STATE = 0x08  # SMB RAM 0x000E: normal play (not dying, not entering a pipe, not on the flagpole)


class ReachedStarts(gym.Wrapper):
    """With probability `probability`, reset to a snapshot of a state an earlier episode of this env reached.

    Sits directly on the NES env (it reads RAM and saves state per NES frame). A stretch of `stretch` pixels of x
    is a cell; in each episode the first frame in a cell with Mario on the ground in normal play offers a
    snapshot, and each cell keeps up to `per_cell` of them by reservoir sampling, so they mix early and late
    arrivals (other enemy positions, speeds, power-ups). A reached start draws a cell of the current stage
    uniformly, then one of its snapshots.
    """

    def __init__(self, env: gym.Env, probability: float, seed: int | None = None, stretch: int = 64,
                 per_cell: int = 4) -> None:
        super().__init__(env)
        self.probability = probability
        self.stretch = stretch
        self.per_cell = per_cell
        self._rng = self._rng_of(seed)
        self._nes = env.unwrapped
        self._cells: dict[tuple[int, int, int], list[Any]] = {}
        self._offers: dict[tuple[int, int, int], int] = {}
        self._visited: set[tuple[int, int, int]] = set()
        self._stage = (0, 0)  # the episode's (world, stage), read once per reset: an episode plays one stage
        self.started_at = 0
        """The x of the state the current episode started from; 0 after a plain reset at the level's start."""

    @staticmethod
    def _rng_of(seed: int | None) -> np.random.Generator:
        return np.random.default_rng(None if seed is None else [seed, 0x5EED])

    @property
    def cells(self) -> int:
        """How many stretches of x hold at least one snapshot."""
        return len(self._cells)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = self._rng_of(seed)
        observation, info = self.env.reset(seed=seed, options=options)
        self._visited = set()
        self.started_at = 0
        self._stage = stage = (self._nes._world, self._nes._stage)
        choices = [cell for cell in self._cells if cell[:2] == stage]
        if choices and self._rng.random() < self.probability:
            snapshots = self._cells[choices[self._rng.integers(len(choices))]]
            self._nes.load_state(snapshots[self._rng.integers(len(snapshots))])
            self._nes._did_reset()  # the reward's trackers (x, clock, score) start from the loaded state
            observation, info = self._nes.screen, self._nes._get_info()
            self.started_at = int(info["x_pos"])
        self._offer()
        return observation, info

    def step(self, action: int) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        result = self.env.step(action)
        if not (result[2] or result[3]):
            self._offer()
        return result

    def _offer(self) -> None:
        """Keep a snapshot of now if this is the episode's first grounded, normal frame in its cell."""
        nes = self._nes
        if nes.ram[FLOAT_STATE] != 0:  # one RAM byte, the cheapest test first: this runs every NES frame
            return
        cell = (*self._stage, nes._x_position // self.stretch)
        if cell in self._visited or nes._player_state != NORMAL_PLAYER_STATE:
            return
        self._visited.add(cell)
        offers = self._offers[cell] = self._offers.get(cell, 0) + 1
        kept = self._cells.setdefault(cell, [])
        if len(kept) < self.per_cell:
            kept.append(nes.dump_state())
        elif (slot := self._rng.integers(offers)) < self.per_cell:
            kept[slot] = nes.dump_state()
