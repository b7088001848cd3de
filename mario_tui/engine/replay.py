"""Per-worker replay buffer: every frame stored once, n-step returns and frame stacks rebuilt at sample time.

Layout.  A ring of `capacity` slots, one per stored frame (uint8 H x W).  An episode of T steps uses T+1 slots:
its reset frame, then the newest frame of each step's observation.  Slot s also records the step taken *from*
the observation whose newest frame is s: action, reward and a terminated/truncated bit.  Transition t lives in
the slot of its observation's newest frame; its stacked observation is frames t-stack+1 .. t, where frames from
before the episode's first frame are replaced by that first frame (gymnasium `FrameStackObservation` with
padding "reset"); its bootstrap observation is the same rebuild at t+m.  Nothing is duplicated, so a transition
costs one frame plus a few dozen bytes of bookkeeping, instead of 2 x stack frames in the naive layout.

Addressing.  Slots are named by their *global* index g (frames written before them); slot = g % capacity.
`Batch.indices` are globals, so `update_priorities` can skip transitions overwritten since they were sampled.

Lower bounds.  When an episode terminates, every step of it still stored gets its discounted Monte-Carlo return
G_t = r_t + gamma * G_{t+1} (0 after the terminal step).  The emulator is deterministic, so the taken action can
earn at least G_t from the same emulator state again, and a learner may use G_t as a lower bound on Q(s_t, a_t)
(an optimistic one where one observation stands for several emulator states).  Truncated and abandoned episodes
have no known tail, so their steps get no bound (-inf in `Batch.lower_bounds`).

Sampleability.  A transition becomes sampleable once its n-step lookahead is complete (n later steps exist) or
its episode has ended; it stops being sampleable when its own frame or one of its history frames is about to be
overwritten.  Its lookahead frames are newer than it, so they outlive it.  With PER, "sampleable" means a
positive leaf in the sum tree; without PER a flag bit, and sampling uniformly by rejection.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mario_tui.engine.fileio import atomic_writer
from mario_tui.engine.sumtree import SumTree

# Bits of the per-slot flag byte.
FIRST = np.uint8(1)  # the slot's frame is its episode's reset frame
TERMINATED = np.uint8(2)  # the step from this slot ended the episode by termination
TRUNCATED = np.uint8(4)  # the step from this slot ended the episode by truncation (or the episode was abandoned)
SAMPLEABLE = np.uint8(8)  # the transition at this slot may be sampled
BOUNDED = np.uint8(16)  # the slot's step has a Monte-Carlo return (its episode terminated)
_ENDED = TERMINATED | TRUNCATED
_NOT_SAMPLEABLE = np.uint8(0xFF ^ int(SAMPLEABLE))

_STATE_VERSION = 1
_MAX_ACTION = int(np.iinfo(np.int16).max)
_REJECTION_ROUNDS = 64


@dataclass
class Batch:
    """A batch of n-step transitions, ready for a DQN-style loss."""

    obs: np.ndarray  # uint8 (B, stack, H, W)
    actions: np.ndarray  # int64 (B,)
    returns: np.ndarray  # float32 (B,): sum_{k<m} gamma^k r_{t+k}, m = min(n, steps until the episode ends)
    next_obs: np.ndarray  # uint8 (B, stack, H, W): observation at t+m, the bootstrap state
    discounts: np.ndarray  # float32 (B,): gamma^m, or 0.0 if the episode terminated within those m steps
    weights: np.ndarray  # float32 (B,): importance-sampling weights, max-normalised over the batch (1 without PER)
    indices: np.ndarray  # int64 (B,): global transition indices, for update_priorities
    prev_actions: np.ndarray  # int64 (B,): the action taken into obs (0, the no-op, at an episode's reset frame)
    next_prev_actions: np.ndarray  # int64 (B,): the action taken into next_obs
    lower_bounds: np.ndarray | None = None  # float32 (B,): discounted return G_t of a terminated episode, else -inf


@dataclass
class SequenceBatch:
    """Contiguous stretches of experience for a world model, in observation-major (DreamerV3) order.

    Row i holds observation i together with what *led to it*: the action taken and reward received on the step
    into it, and whether that step terminated the episode.  A reset observation has is_first = 1 and action,
    reward and terminal all 0.  So an episode of T steps fills T+1 rows and its terminal observation is a row of
    its own; a truncated episode's last row has terminal 0 and the next row is_first 1.
    """

    obs: np.ndarray  # uint8 (B, L, H, W) newest frames, or (B, L, stack, H, W) with stacked=True
    actions: np.ndarray  # int64 (B, L): action that led to obs[i] (0 at is_first)
    rewards: np.ndarray  # float32 (B, L): reward of the step into obs[i] (0 at is_first)
    terminals: np.ndarray  # float32 (B, L): 1 where obs[i] is terminal (the step into it terminated the episode)
    is_first: np.ndarray  # float32 (B, L): 1 where obs[i] is an episode's reset observation
    starts: np.ndarray  # int64 (B,): global index of each sequence's first row


class ReplayBuffer:
    """Ring-buffer replay with n-step returns and optional proportional prioritized replay.

    Importance weights are w_i = (N * P(i)) ** -beta divided by the largest w in the *batch* (not by the weight of
    the least likely transition in the whole buffer), so every batch's largest weight is exactly 1 and no min-tree
    is needed.  New transitions enter the tree at the largest priority ever stored (the running max, as in the
    PER paper and Dopamine), so each one is likely to be sampled at least once before its TD error is known.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int] = (84, 84), stack: int = 4,
                 n_step: int = 3, gamma: float = 0.99, prioritized: bool = True, alpha: float = 0.6,
                 beta_start: float = 0.4, beta_steps: int = 100_000, priority_eps: float = 1e-6,
                 seed: int | None = None) -> None:
        self._configure(capacity, frame_shape, stack, n_step, gamma, prioritized, alpha, beta_start, beta_steps,
                        priority_eps)
        self._rng = np.random.default_rng(seed)

    def _configure(self, capacity: int, frame_shape: tuple[int, int], stack: int, n_step: int, gamma: float,
                   prioritized: bool, alpha: float, beta_start: float, beta_steps: int, priority_eps: float) -> None:
        """Validate settings and allocate empty storage (shared by __init__ and load_state_dict)."""
        if stack < 1 or n_step < 1:
            raise ValueError(f"stack and n_step must be at least 1, got {stack} and {n_step}")
        if capacity <= n_step + stack:
            raise ValueError(f"capacity must exceed n_step + stack ({n_step + stack}), got {capacity}")
        if not 0.0 <= gamma <= 1.0 or alpha < 0.0 or priority_eps <= 0.0:
            raise ValueError("need 0 <= gamma <= 1, alpha >= 0 and priority_eps > 0")
        self.capacity = int(capacity)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.stack, self.n_step, self.gamma = int(stack), int(n_step), float(gamma)
        self.prioritized, self.alpha, self.priority_eps = bool(prioritized), float(alpha), float(priority_eps)
        self.beta_start, self.beta_steps = float(beta_start), int(beta_steps)
        self._frames = np.zeros((self.capacity, *self.frame_shape), dtype=np.uint8)
        self._actions = np.zeros(self.capacity, dtype=np.int16)
        self._rewards = np.zeros(self.capacity, dtype=np.float32)
        self._flags = np.zeros(self.capacity, dtype=np.uint8)
        self._mc_returns = np.zeros(self.capacity, dtype=np.float32)
        self._tree = SumTree(self.capacity) if self.prioritized else None
        self._gamma_powers = self.gamma ** np.arange(self.n_step + 1, dtype=np.float64)
        self._written = 0  # frames written so far = global index of the next frame
        self._episode_start = -1  # global index of the open episode's reset frame; -1 when none is open
        self._num_sampleable = 0
        self._max_priority = 1.0
        self._sample_calls = 0

    # --- writing -------------------------------------------------------------------------------------------
    def start_episode(self, obs: np.ndarray) -> None:
        """Store the reset frame.  An episode still open (no terminated/truncated step) is closed as truncated."""
        frame = self._newest_frame(obs)
        if self._episode_start >= 0:
            self._abandon_episode()
        self._write_frame(frame, FIRST)
        self._episode_start = self._written - 1

    def add(self, action: int, reward: float, next_obs: np.ndarray, terminated: bool, truncated: bool) -> None:
        """Record one env step from the current observation; only next_obs's newest frame is stored."""
        if self._episode_start < 0:
            raise RuntimeError("start_episode() must be called before add(), and again after an episode ends")
        if not 0 <= action <= _MAX_ACTION:
            raise ValueError(f"action must be in [0, {_MAX_ACTION}], got {action}")
        frame = self._newest_frame(next_obs)
        step = self._written - 1
        slot = step % self.capacity
        self._actions[slot] = action
        self._rewards[slot] = reward
        if terminated:
            self._flags[slot] |= TERMINATED
        elif truncated:
            self._flags[slot] |= TRUNCATED
        self._write_frame(frame, np.uint8(0))
        if terminated:
            self._store_episode_returns(step)
        if terminated or truncated:
            self._activate_range(step - self.n_step + 1, step)  # this step completes every pending lookahead
            self._episode_start = -1
        elif step - self.n_step + 1 >= self._episode_start:
            self._activate(step - self.n_step + 1)

    def _store_episode_returns(self, last_step: int) -> None:
        """The open episode terminated at `last_step`: give each of its live steps its discounted return."""
        first = max(self._episode_start, self._written - self.capacity)
        g = 0.0
        for t in range(last_step, first - 1, -1):  # episodes are at most a few thousand steps: a loop is cheap
            slot = t % self.capacity
            g = float(self._rewards[slot]) + self.gamma * g
            self._mc_returns[slot] = g
            self._flags[slot] |= BOUNDED

    def _newest_frame(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.shape != (self.stack, *self.frame_shape) or obs.dtype != np.uint8:
            raise ValueError(f"observation must be uint8 {(self.stack, *self.frame_shape)}, "
                             f"got {obs.dtype} {obs.shape}")
        return obs[-1]

    def _write_frame(self, frame: np.ndarray, flags: np.uint8) -> None:
        """Write the next slot, first retiring the transitions that need the frame it overwrites."""
        g = self._written
        slot = g % self.capacity
        if g >= self.capacity:
            self._retire(g - self.capacity)
        self._frames[slot] = frame
        self._flags[slot] = flags
        self._actions[slot] = 0
        self._rewards[slot] = 0.0
        self._written = g + 1

    def _retire(self, old: int) -> None:
        """Frame `old` is about to go: unsample its transition and the later ones whose stack reaches back to it
        (and the next one, whose previous action is stored in `old`'s slot)."""
        for k in range(max(self.stack, 2)):
            slot = (old + k) % self.capacity
            if k and self._flags[slot] & FIRST:
                break  # an episode starts here, so this and later stacks never look back to `old`
            if self._flags[slot] & SAMPLEABLE:
                self._deactivate(slot)

    def _abandon_episode(self) -> None:
        """Close an episode that never ended, treating its last step as a truncation (bootstrap from there)."""
        last_step = self._written - 2
        if last_step >= self._episode_start:
            self._flags[last_step % self.capacity] |= TRUNCATED
            self._activate_range(last_step - self.n_step + 2, last_step)  # add() already did the ones before
        self._episode_start = -1

    def _activate_range(self, first: int, last: int) -> None:
        """The open episode ended: transitions first..last (clipped to the episode) no longer need lookahead."""
        for t in range(max(self._episode_start, first), last + 1):
            self._activate(t)

    def _activate(self, t: int) -> None:
        """Make transition t sampleable at max priority, unless part of its frame stack is already overwritten.

        (That cannot happen while capacity > n_step + stack, which __init__ enforces; the check is a cheap guard.)
        """
        oldest_needed = max(self._episode_start, t - self.stack + 1)
        if oldest_needed < self._written - self.capacity:
            return
        slot = t % self.capacity
        if self._flags[slot] & SAMPLEABLE:
            return
        self._flags[slot] |= SAMPLEABLE
        self._num_sampleable += 1
        if self._tree is not None:
            self._tree.set_one(slot, self._max_priority)

    def _deactivate(self, slot: int) -> None:
        self._flags[slot] &= _NOT_SAMPLEABLE
        self._num_sampleable -= 1
        if self._tree is not None:
            self._tree.set_one(slot, 0.0)

    # --- sampling ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self._num_sampleable

    @property
    def beta(self) -> float:
        """Importance-sampling exponent for the next sample() call: linear from beta_start to 1 over beta_steps."""
        if self.beta_steps <= 0:
            return 1.0
        return min(1.0, self.beta_start + (1.0 - self.beta_start) * self._sample_calls / self.beta_steps)

    def sample(self, batch_size: int) -> Batch:
        """Sample transitions (stratified by priority with PER, uniformly otherwise), fully vectorised."""
        self._check_can_sample(batch_size)
        if self._tree is not None:
            slots, weights = self._sample_prioritized(batch_size, self.beta)
        else:
            slots, weights = self._sample_uniform(batch_size), np.ones(batch_size, dtype=np.float32)
        self._sample_calls += 1
        t = self._slot_to_global(slots)
        returns, discounts, m = self._n_step_targets(t)
        first = (self._flags[slots] & FIRST) != 0
        prev_actions = np.where(first, 0, self._actions[(t - 1) % self.capacity]).astype(np.int64)
        return Batch(obs=self._stacked_obs(t), actions=self._actions[slots].astype(np.int64), returns=returns,
                     next_obs=self._stacked_obs(t + m), discounts=discounts, weights=weights, indices=t,
                     prev_actions=prev_actions,
                     next_prev_actions=self._actions[(t + m - 1) % self.capacity].astype(np.int64),
                     lower_bounds=np.where((self._flags[slots] & BOUNDED) != 0, self._mc_returns[slots],
                                           -np.inf).astype(np.float32))

    def _check_can_sample(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self._num_sampleable == 0:
            raise ValueError("the replay buffer has no sampleable transitions yet")

    def _sample_prioritized(self, batch_size: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """One draw from each of batch_size equal slices of the total priority; weights max-normalised."""
        assert self._tree is not None
        total = self._tree.total
        targets = (np.arange(batch_size) + self._rng.random(batch_size)) * (total / batch_size)
        targets = np.minimum(targets, np.nextafter(total, 0.0))
        slots = self._tree.find(targets)
        probs = self._tree.get(slots) / total
        weights = (self._num_sampleable * probs) ** -beta
        return slots, (weights / weights.max()).astype(np.float32)

    def _sample_uniform(self, batch_size: int) -> np.ndarray:
        """Uniform over sampleable slots by rejection: nearly every live slot is sampleable, so this is quick."""
        live = min(self._written, self.capacity)
        slots = self._rng.integers(0, live, batch_size)
        for _ in range(_REJECTION_ROUNDS):
            bad = (self._flags[slots] & SAMPLEABLE) == 0
            if not bad.any():
                return slots
            slots[bad] = self._rng.integers(0, live, int(bad.sum()))
        bad = (self._flags[slots] & SAMPLEABLE) == 0
        valid = np.flatnonzero(self._flags[:live] & SAMPLEABLE)
        slots[bad] = self._rng.choice(valid, int(bad.sum()))
        return slots

    def _slot_to_global(self, slots: np.ndarray) -> np.ndarray:
        newest = self._written - 1
        return newest - (newest - slots.astype(np.int64)) % self.capacity

    def _n_step_targets(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns, discounts and lookahead lengths m for transitions t, all at once over a (B, n) window."""
        n = self.n_step
        window = (t[:, None] + np.arange(n)) % self.capacity
        flags = self._flags[window]
        ended = (flags & _ENDED) != 0
        m = np.where(ended.any(axis=1), ended.argmax(axis=1) + 1, n)
        inside = np.arange(n) < m[:, None]
        rewards = np.where(inside, self._rewards[window].astype(np.float64), 0.0)
        returns = rewards @ self._gamma_powers[:n]
        terminated = (flags[np.arange(len(t)), m - 1] & TERMINATED) != 0
        discounts = np.where(terminated, 0.0, self._gamma_powers[m])
        return returns.astype(np.float32), discounts.astype(np.float32), m

    def _stacked_obs(self, g: np.ndarray) -> np.ndarray:
        """Stacked observations ending at globals g (any shape): frames g-stack+1..g, clamped at episode starts."""
        if self.stack == 1:
            return self._frames.take(g % self.capacity, axis=0)[..., None, :, :]
        back = np.arange(self.stack - 1)
        firsts = (self._flags[(g[..., None] - back) % self.capacity] & FIRST) != 0
        to_start = np.where(firsts.any(axis=-1), firsts.argmax(axis=-1), self.stack - 1)
        offsets = np.minimum(np.arange(self.stack - 1, -1, -1), to_start[..., None])
        return self._frames.take((g[..., None] - offsets) % self.capacity, axis=0)  # take: a little faster here

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set priorities from |TD errors| as (|p| + eps) ** alpha; indices overwritten since sampling are skipped."""
        if self._tree is None:
            return
        indices = np.asarray(indices, dtype=np.int64).ravel()
        priorities = np.abs(np.asarray(priorities, dtype=np.float64).ravel())
        if indices.shape != priorities.shape:
            raise ValueError(f"got {len(indices)} indices but {len(priorities)} priorities")
        if not np.isfinite(priorities).all():
            raise ValueError("priorities must be finite")
        slots = indices % self.capacity
        live = (indices >= self._written - self.capacity) & (indices < self._written)
        live &= (self._flags[slots] & SAMPLEABLE) != 0
        if not live.any():
            return
        values = (priorities[live] + self.priority_eps) ** self.alpha
        self._max_priority = max(self._max_priority, float(values.max()))
        self._tree.set(slots[live], values)

    # --- sequences (world models) --------------------------------------------------------------------------
    def sample_sequences(self, batch_size: int, length: int, stacked: bool = False) -> SequenceBatch:
        """Uniformly drawn runs of `length` consecutive stored observations (see SequenceBatch for the layout).

        A run may cross episode boundaries (is_first marks them) but never the write head: every row is newer
        than the oldest live frame and no newer than the newest, so no run mixes fresh and overwritten data.
        `stacked=True` returns full frame stacks per row instead of just the newest frame.
        """
        if batch_size < 1 or length < 1:
            raise ValueError("batch_size and length must be at least 1")
        lo, hi = self._sequence_start_range(length, stacked)
        if hi < lo:
            raise ValueError(f"not enough stored frames for sequences of length {length}")
        starts = self._rng.integers(lo, hi + 1, batch_size)
        g = starts[:, None] + np.arange(length)
        slots = g % self.capacity
        prev = (g - 1) % self.capacity
        first = (self._flags[slots] & FIRST) != 0
        obs = self._stacked_obs(g) if stacked else self._frames[slots]
        return SequenceBatch(
            obs=obs,
            actions=np.where(first, 0, self._actions[prev]).astype(np.int64),
            rewards=np.where(first, 0.0, self._rewards[prev]).astype(np.float32),
            terminals=(~first & ((self._flags[prev] & TERMINATED) != 0)).astype(np.float32),
            is_first=first.astype(np.float32),
            starts=starts,
        )

    def _sequence_start_range(self, length: int, stacked: bool) -> tuple[int, int]:
        """Inclusive range of start globals whose whole run, previous step and (if stacked) history are live."""
        if self._written <= self.capacity:
            lo = 0  # global 0 is a reset frame, so nothing before it is ever needed
        else:
            lo = self._written - self.capacity + max(1, self.stack - 1 if stacked else 1)
        return lo, self._written - length

    # --- size, state and files -----------------------------------------------------------------------------
    def _storage(self) -> list[np.ndarray]:
        arrays = [self._frames, self._actions, self._rewards, self._flags, self._mc_returns]
        return arrays + ([self._tree.nodes] if self._tree is not None else [])

    def bytes_per_transition(self) -> float:
        """Bytes of all storage arrays (frames, actions, rewards, flags, sum tree) per unit of capacity."""
        return sum(a.nbytes for a in self._storage()) / self.capacity

    def state_dict(self) -> dict[str, np.ndarray | int | float]:
        """Copies of all storage plus scalars; numpy values only, so np.savez can store it without pickling."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._state().items()}

    def _state(self) -> dict[str, Any]:
        """Like state_dict but sharing the live arrays (for save, which only reads them)."""
        priorities = self._tree.leaves if self._tree is not None else np.zeros(0, dtype=np.float64)
        return {
            "version": _STATE_VERSION,
            "capacity": self.capacity,
            "frame_shape": np.array(self.frame_shape, dtype=np.int64),
            "stack": self.stack,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "prioritized": int(self.prioritized),
            "alpha": self.alpha,
            "beta_start": self.beta_start,
            "beta_steps": self.beta_steps,
            "priority_eps": self.priority_eps,
            "frames": self._frames,
            "actions": self._actions,
            "rewards": self._rewards,
            "flags": self._flags,
            "mc_returns": self._mc_returns,
            "priorities": priorities,
            "written": self._written,
            "episode_start": self._episode_start,
            "max_priority": self._max_priority,
            "sample_calls": self._sample_calls,
            "rng_state": np.array(json.dumps(self._rng.bit_generator.state)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore everything, settings included (the n-step window decides what is sampleable); ValueError if bad."""
        try:
            self._load_state(state)
        except KeyError as exc:
            raise ValueError(f"replay state is missing {exc}") from exc
        except (TypeError, json.JSONDecodeError, AttributeError) as exc:
            raise ValueError(f"replay state is malformed: {exc}") from exc

    def _load_state(self, state: Mapping[str, Any]) -> None:
        if int(state["version"]) != _STATE_VERSION:
            raise ValueError(f"unsupported replay state version {int(state['version'])}")
        frame_shape = tuple(int(x) for x in np.asarray(state["frame_shape"]).ravel())
        if len(frame_shape) != 2:
            raise ValueError(f"frame_shape must have 2 entries, got {frame_shape}")
        self._configure(int(state["capacity"]), (frame_shape[0], frame_shape[1]), int(state["stack"]),
                        int(state["n_step"]), float(state["gamma"]), bool(int(state["prioritized"])),
                        float(state["alpha"]), float(state["beta_start"]), int(state["beta_steps"]),
                        float(state["priority_eps"]))
        for name, target in (("frames", self._frames), ("actions", self._actions), ("rewards", self._rewards),
                             ("flags", self._flags)):
            target[...] = _checked_array(state, name, target)
        if "mc_returns" in state:
            self._mc_returns[...] = _checked_array(state, "mc_returns", self._mc_returns)
        else:  # saved before lower bounds existed: no step has one
            self._flags &= np.uint8(0xFF ^ int(BOUNDED))
        self._written = int(state["written"])
        self._episode_start = int(state["episode_start"])
        self._max_priority = float(state["max_priority"])
        self._sample_calls = int(state["sample_calls"])
        if self._written < 0 or not -1 <= self._episode_start < max(self._written, 1):
            raise ValueError("replay state has inconsistent write counters")
        sampleable = (self._flags & SAMPLEABLE) != 0
        self._num_sampleable = int(sampleable.sum())
        if self._tree is not None:
            self._tree.load_leaves(self._checked_priorities(state, sampleable))
        self._rng = _rng_from_state(str(np.asarray(state["rng_state"])))

    def _checked_priorities(self, state: Mapping[str, Any], sampleable: np.ndarray) -> np.ndarray:
        priorities = _checked_array(state, "priorities", np.zeros(self.capacity, dtype=np.float64))
        if not np.isfinite(priorities).all() or (priorities < 0).any() or (priorities[sampleable] <= 0).any():
            raise ValueError("replay state has invalid priorities")
        return np.where(sampleable, priorities, 0.0)

    def save(self, path: Path | str) -> None:
        """Write a compressed .npz atomically: a crash leaves the previous file or the new one, never half."""
        with atomic_writer(path) as handle:
            np.savez_compressed(handle, **self._state())

    @classmethod
    def load(cls, path: Path | str) -> ReplayBuffer:
        """Read a file written by save(); a damaged or foreign file raises ValueError naming it."""
        path = Path(path)
        buffer = cls.__new__(cls)
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {key: data[key] for key in data.files}
            buffer.load_state_dict(state)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"damaged replay buffer file {path}: {exc}") from exc
        return buffer


def _checked_array(state: Mapping[str, Any], name: str, like: np.ndarray) -> np.ndarray:
    array = np.asarray(state[name])
    if array.shape != like.shape or array.dtype != like.dtype:
        raise ValueError(f"replay state '{name}' should be {like.dtype} {like.shape}, got {array.dtype} {array.shape}")
    return array


def _rng_from_state(text: str) -> np.random.Generator:
    state = json.loads(text)
    bit_generator = getattr(np.random, str(state["bit_generator"]), None)
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
    generator = bit_generator()
    generator.state = state
    return np.random.Generator(generator)
