"""Replay buffer: n-step targets, frame stacking, ring wrap, PER statistics, memory, files and sequences.

Frames carry their own identity: pixel (0,0)+256*(0,1) is the global frame number and (0,2) the episode number,
so every sampled observation can be checked against an independent record of what was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest

from mario_tui.engine.replay import ReplayBuffer
from mario_tui.engine.sumtree import SumTree

SHAPE = (4, 4)
STACK = 4


def frame_stack(value: int, stack: int = STACK) -> np.ndarray:
    return np.full((stack, *SHAPE), value, dtype=np.uint8)


def encoded_obs(g: int, episode: int) -> np.ndarray:
    frame = np.zeros(SHAPE, dtype=np.uint8)
    frame[0, 0], frame[0, 1], frame[0, 2] = g % 256, g // 256, episode % 256
    return np.repeat(frame[None], STACK, axis=0)  # only the newest frame is stored, so the rest may be anything


def decode(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(global frame number, episode number) of each frame in a (..., H, W) array."""
    g = frames[..., 0, 0].astype(np.int64) + 256 * frames[..., 0, 1].astype(np.int64)
    return g, frames[..., 0, 2].astype(np.int64)


@dataclass
class Recorder:
    """Drives a buffer with random episodes and keeps the ground truth, indexed by global frame number."""

    buffer: ReplayBuffer
    rng: np.random.Generator
    episode_start: list[int] = field(default_factory=list)
    episode: list[int] = field(default_factory=list)
    steps: dict[int, tuple[int, float, bool, bool]] = field(default_factory=dict)  # g -> action, reward, term, trunc
    episodes: int = 0

    @property
    def written(self) -> int:
        return len(self.episode_start)

    def start(self) -> None:
        last = self.written - 2
        if last in self.steps and not any(self.steps[last][2:]):  # the buffer closes an open episode as truncated
            self.steps[last] = (*self.steps[last][:2], False, True)
        self.episodes += 1
        self.buffer.start_episode(encoded_obs(self.written, self.episodes))
        self._record(self.written)

    def step(self, terminated: bool = False, truncated: bool = False) -> None:
        g = self.written - 1
        action, reward = int(self.rng.integers(0, 7)), float(self.rng.normal())
        self.steps[g] = (action, reward, terminated, truncated)
        self.buffer.add(action, reward, encoded_obs(self.written, self.episodes), terminated, truncated)
        self._record(self.episode_start[-1])

    def _record(self, start: int) -> None:
        self.episode_start.append(start)
        self.episode.append(self.episodes)

    def run_episodes(self, total_steps: int, max_len: int = 25) -> None:
        while total_steps > 0:
            length = int(self.rng.integers(1, max_len))
            end = self.rng.choice(["terminated", "truncated", "open"])
            self.start()
            for i in range(min(length, total_steps)):
                last = i == length - 1
                self.step(terminated=last and end == "terminated", truncated=last and end == "truncated")
            total_steps -= length

    def expected(self, t: int, n: int, gamma: float) -> tuple[float, float, int]:
        """Reference n-step return, discount and lookahead m, by a plain loop; fails if the lookahead is missing."""
        ret, m = 0.0, 0
        while m < n:
            assert t + m in self.steps, f"transition {t} sampled before its lookahead was complete"
            _, reward, term, trunc = self.steps[t + m]
            ret += gamma**m * reward
            m += 1
            if term:
                return ret, 0.0, m
            if trunc:
                break
        return ret, gamma**m, m

    def stack_globals(self, g: int) -> list[int]:
        return [max(self.episode_start[g], g - k) for k in range(STACK - 1, -1, -1)]


def check_batch(rec: Recorder, batch, n: int, gamma: float) -> None:
    """Every sampled transition matches the ground truth and uses only live (not overwritten) frames."""
    oldest_live = rec.written - rec.buffer.capacity
    obs_g, obs_ep = decode(batch.obs)
    next_g, next_ep = decode(batch.next_obs)
    for i, t in enumerate(batch.indices.tolist()):
        ret, discount, m = rec.expected(t, n, gamma)
        assert obs_g[i].tolist() == rec.stack_globals(t)
        assert next_g[i].tolist() == rec.stack_globals(t + m)
        assert set(obs_ep[i].tolist()) == set(next_ep[i].tolist()) == {rec.episode[t]}
        assert min(rec.stack_globals(t)) >= oldest_live
        assert batch.actions[i] == rec.steps[t][0]
        assert batch.prev_actions[i] == (0 if rec.episode_start[t] == t else rec.steps[t - 1][0])
        assert batch.next_prev_actions[i] == rec.steps[t + m - 1][0]
        assert batch.returns[i] == pytest.approx(ret, rel=1e-5, abs=1e-5)
        assert batch.discounts[i] == pytest.approx(discount, rel=1e-6)


# --- n-step targets and stacking ------------------------------------------------------------------------------
def test_n_step_targets_by_hand() -> None:
    """Episode A: 5 steps, terminated; episode B: 4 steps, truncated.  n=3, gamma=0.9, frame value = 10 + global."""
    buffer = ReplayBuffer(64, SHAPE, STACK, n_step=3, gamma=0.9, prioritized=False, seed=0)
    buffer.start_episode(frame_stack(10))
    for i in range(5):
        buffer.add(i, float(i + 1), frame_stack(11 + i), terminated=i == 4, truncated=False)
    buffer.start_episode(frame_stack(16))
    for i in range(4):
        buffer.add(i, 10.0 * (i + 1), frame_stack(17 + i), terminated=False, truncated=i == 3)
    assert len(buffer) == 9
    # global t: (return, discount, obs frame globals, next_obs frame globals, action)
    expected = {
        0: (1 + 0.9 * 2 + 0.81 * 3, 0.729, [0, 0, 0, 0], [0, 1, 2, 3], 0),
        1: (2 + 0.9 * 3 + 0.81 * 4, 0.729, [0, 0, 0, 1], [1, 2, 3, 4], 1),
        2: (3 + 0.9 * 4 + 0.81 * 5, 0.0, [0, 0, 1, 2], [2, 3, 4, 5], 2),  # terminal inside the window
        3: (4 + 0.9 * 5, 0.0, [0, 1, 2, 3], [2, 3, 4, 5], 3),
        4: (5.0, 0.0, [1, 2, 3, 4], [2, 3, 4, 5], 4),
        6: (10 + 0.9 * 20 + 0.81 * 30, 0.729, [6, 6, 6, 6], [6, 7, 8, 9], 0),  # padded with the reset frame
        7: (20 + 0.9 * 30 + 0.81 * 40, 0.729, [6, 6, 6, 7], [7, 8, 9, 10], 1),  # truncation: still bootstraps
        8: (30 + 0.9 * 40, 0.81, [6, 6, 7, 8], [7, 8, 9, 10], 2),
        9: (40.0, 0.9, [6, 7, 8, 9], [7, 8, 9, 10], 3),
    }
    batch = buffer.sample(200)
    assert set(batch.indices.tolist()) == set(expected)
    assert batch.obs.shape == batch.next_obs.shape == (200, STACK, *SHAPE)
    assert batch.obs.dtype == batch.next_obs.dtype == np.uint8
    assert batch.actions.dtype == batch.indices.dtype == np.int64
    assert batch.returns.dtype == batch.discounts.dtype == batch.weights.dtype == np.float32
    np.testing.assert_array_equal(batch.weights, 1.0)
    for i, t in enumerate(batch.indices.tolist()):
        ret, discount, obs, next_obs, action = expected[t]
        assert batch.returns[i] == pytest.approx(ret, rel=1e-6)
        assert batch.discounts[i] == pytest.approx(discount, rel=1e-6)
        np.testing.assert_array_equal(batch.obs[i, :, 0, 0], np.array(obs) + 10)
        np.testing.assert_array_equal(batch.next_obs[i, :, 0, 0], np.array(next_obs) + 10)
        assert batch.actions[i] == action
        # the action into obs (the no-op 0 at a reset frame) and into next_obs; actions here equal t - episode start
        assert batch.prev_actions[i] == (0 if t in (0, 6) else action - 1)
        assert batch.next_prev_actions[i] == next_obs[-1] - (1 if t < 6 else 7)
    assert batch.prev_actions.dtype == batch.next_prev_actions.dtype == np.int64


def test_terminated_episodes_give_each_step_its_discounted_return_as_a_lower_bound() -> None:
    """Episode A (3 steps) terminates, episode B (2 steps) is truncated, episode C (2 steps) is still open."""
    buffer = ReplayBuffer(64, SHAPE, STACK, n_step=1, gamma=0.5, prioritized=False, seed=0)
    buffer.start_episode(frame_stack(0))
    for i, reward in enumerate((4.0, 2.0, 8.0)):
        buffer.add(0, reward, frame_stack(1 + i), terminated=i == 2, truncated=False)
    buffer.start_episode(frame_stack(10))
    for i in range(2):
        buffer.add(0, 1.0, frame_stack(11 + i), terminated=False, truncated=i == 1)
    buffer.start_episode(frame_stack(20))
    for i in range(2):
        buffer.add(0, 1.0, frame_stack(21 + i), terminated=False, truncated=False)
    expected = {0: 4 + 0.5 * 2 + 0.25 * 8, 1: 2 + 0.5 * 8, 2: 8.0}  # G_t = r_t + gamma * G_{t+1}, 0 after the end
    batch = buffer.sample(300)
    assert batch.lower_bounds is not None and batch.lower_bounds.dtype == np.float32
    assert set(batch.indices.tolist()) == {0, 1, 2, 4, 5, 7, 8}  # globals: A 0-3, B 4-6, C 7-9
    for t, bound in zip(batch.indices.tolist(), batch.lower_bounds.tolist(), strict=True):
        assert bound == (pytest.approx(expected[t]) if t in expected else -np.inf)


def test_lower_bounds_go_with_their_frames_and_survive_save_and_load(tmp_path) -> None:
    buffer = ReplayBuffer(16, SHAPE, STACK, n_step=1, gamma=1.0, prioritized=False, seed=0)
    buffer.start_episode(frame_stack(0))
    for i in range(5):
        buffer.add(0, 1.0, frame_stack(1 + i), terminated=i == 4, truncated=False)  # bounds 5, 4, 3, 2, 1
    buffer.start_episode(frame_stack(9))
    for i in range(12):  # an open episode overwrites the first one's slots
        buffer.add(0, 1.0, frame_stack(10 + i), terminated=False, truncated=False)
    batch = buffer.sample(200)
    assert np.isneginf(batch.lower_bounds).all()  # the bounded steps are gone, and their bounds with them
    buffer.add(0, 1.0, frame_stack(30), terminated=True, truncated=False)  # its 13 steps: bounds 13..1
    batch = buffer.sample(400)
    ends = batch.indices.max()
    np.testing.assert_allclose(batch.lower_bounds, ends + 1 - batch.indices)
    path = tmp_path / "replay.npz"
    buffer.save(path)
    loaded = ReplayBuffer.load(path)
    np.testing.assert_array_equal(loaded.sample(64).lower_bounds, buffer.sample(64).lower_bounds)
    old_state = {k: v for k, v in buffer.state_dict().items() if k != "mc_returns"}  # a file from before bounds
    loaded.load_state_dict(old_state)
    assert np.isneginf(loaded.sample(64).lower_bounds).all()


def test_transitions_wait_for_their_lookahead() -> None:
    for prioritized in (False, True):
        rec = Recorder(ReplayBuffer(64, SHAPE, STACK, n_step=3, prioritized=prioritized, seed=1),
                       np.random.default_rng(1))
        rec.start()
        for k in range(1, 8):
            rec.step()
            assert len(rec.buffer) == max(0, k - 2)
            if len(rec.buffer):
                assert rec.buffer.sample(64).indices.max() <= k - 3
        if prioritized:
            assert rec.buffer._tree.get(np.arange(5, 8)).tolist() == [0.0, 0.0, 0.0]
        rec.step(terminated=True)  # the episode end completes every pending lookahead at once
        assert len(rec.buffer) == 8
        assert set(rec.buffer.sample(256).indices.tolist()) == set(range(8))


def test_abandoned_episode_is_closed_as_truncated() -> None:
    buffer = ReplayBuffer(32, SHAPE, STACK, n_step=3, gamma=0.5, prioritized=False, seed=0)
    buffer.start_episode(frame_stack(1))
    buffer.add(0, 1.0, frame_stack(2), False, False)
    buffer.add(0, 1.0, frame_stack(3), False, False)
    assert len(buffer) == 0
    buffer.start_episode(frame_stack(4))
    batch = buffer.sample(64)
    assert len(buffer) == 2
    first = batch.indices == 0
    np.testing.assert_allclose(batch.discounts[first], 0.25)
    np.testing.assert_allclose(batch.returns[first], 1.5)
    np.testing.assert_array_equal(batch.next_obs[first, :, 0, 0], np.tile([1, 1, 2, 3], (first.sum(), 1)))


def test_add_checks_its_inputs() -> None:
    buffer = ReplayBuffer(32, SHAPE, STACK, seed=0)
    with pytest.raises(RuntimeError):
        buffer.add(0, 0.0, frame_stack(1), False, False)
    buffer.start_episode(frame_stack(1))
    with pytest.raises(ValueError):
        buffer.add(0, 0.0, frame_stack(1, stack=3), False, False)
    with pytest.raises(ValueError):
        buffer.sample(4)  # nothing sampleable yet
    with pytest.raises(ValueError):
        ReplayBuffer(7, SHAPE, stack=4, n_step=3)


# --- ring wrap ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prioritized", [False, True])
def test_ring_wrap_never_serves_overwritten_frames(prioritized: bool) -> None:
    n, gamma, capacity = 3, 0.9, 60
    rng = np.random.default_rng(7)
    rec = Recorder(ReplayBuffer(capacity, SHAPE, STACK, n_step=n, gamma=gamma, prioritized=prioritized, seed=3), rng)
    for _ in range(40):  # ~13 passes over the ring
        rec.run_episodes(20)
        batch = rec.buffer.sample(64)
        check_batch(rec, batch, n, gamma)
        rec.buffer.update_priorities(batch.indices, rng.exponential(size=64))
    assert capacity - 4 * (STACK + n) < len(rec.buffer) <= capacity


def test_long_episode_longer_than_the_ring() -> None:
    n, gamma = 3, 0.9
    rec = Recorder(ReplayBuffer(20, SHAPE, STACK, n_step=n, gamma=gamma, seed=4), np.random.default_rng(4))
    rec.start()
    for _ in range(95):
        rec.step()
        if len(rec.buffer):
            check_batch(rec, rec.buffer.sample(16), n, gamma)
    rec.step(truncated=True)
    check_batch(rec, rec.buffer.sample(64), n, gamma)


def test_previous_actions_survive_the_ring_wrap_with_one_frame_stacks() -> None:
    """With stack 1 no frame history protects slot t-1, which holds transition t's previous action: the buffer
    must still never serve a previous action from an overwritten slot."""
    buffer = ReplayBuffer(10, SHAPE, stack=1, n_step=1, prioritized=False, seed=5)
    actions: dict[int, int] = {}
    buffer.start_episode(np.zeros((1, *SHAPE), dtype=np.uint8))
    for g in range(60):
        actions[g] = g % 7
        buffer.add(actions[g], 0.0, np.full((1, *SHAPE), g + 1, dtype=np.uint8), False, False)
        if len(buffer):
            batch = buffer.sample(32)
            for t, prev in zip(batch.indices.tolist(), batch.prev_actions.tolist(), strict=True):
                assert prev == (0 if t == 0 else actions[t - 1])
                assert t == 0 or t - 1 >= g + 2 - buffer.capacity  # the slot before its own is still live


# --- prioritized replay -------------------------------------------------------------------------------------
def per_buffer(alpha: float = 0.6, beta_start: float = 0.4, beta_steps: int = 100_000) -> ReplayBuffer:
    """8 sampleable transitions (globals 0..7) from one terminated episode."""
    buffer = ReplayBuffer(32, SHAPE, STACK, n_step=3, alpha=alpha, beta_start=beta_start, beta_steps=beta_steps,
                          seed=11)
    buffer.start_episode(frame_stack(0))
    for i in range(8):
        buffer.add(i, 0.0, frame_stack(i + 1), terminated=i == 7, truncated=False)
    return buffer


def sample_counts(buffer: ReplayBuffer, draws: int, batch: int = 500) -> np.ndarray:
    indices = np.concatenate([buffer.sample(batch).indices for _ in range(draws // batch)])
    return np.bincount(indices, minlength=8)


def test_per_frequencies_follow_priority_to_the_alpha() -> None:
    buffer = per_buffer(alpha=0.6)
    priorities = np.array([0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    buffer.update_priorities(np.arange(8), priorities)
    draws = 50_000
    counts = sample_counts(buffer, draws)
    q = (priorities + 1e-6) ** 0.6
    expected = draws * q / q.sum()
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 24.32  # 99.9% quantile of chi-square with 7 degrees of freedom

    buffer.update_priorities(np.array([0]), np.array([1000.0]))  # now transition 0 dominates
    counts = sample_counts(buffer, 10_000)
    share = (1000.0**0.6) / ((1000.0**0.6) + q[1:].sum())
    assert counts[0] / 10_000 == pytest.approx(share, abs=0.02)


def test_importance_weights_by_hand() -> None:
    buffer = per_buffer(alpha=1.0, beta_start=0.5, beta_steps=10)
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    buffer.update_priorities(np.arange(8), priorities)
    assert buffer.beta == pytest.approx(0.5)
    batch = buffer.sample(16)
    p = priorities[batch.indices] + 1e-6
    w = (8 * p / (priorities + 1e-6).sum()) ** -0.5
    np.testing.assert_allclose(batch.weights, w / w.max(), rtol=1e-5)
    assert buffer.beta == pytest.approx(0.55)
    for _ in range(20):
        buffer.sample(4)
    assert buffer.beta == 1.0


def test_new_transitions_enter_at_max_priority_and_stale_updates_are_ignored() -> None:
    buffer = per_buffer(alpha=0.5)
    buffer.update_priorities(np.arange(8), np.full(8, 0.25))
    buffer.update_priorities(np.array([3]), np.array([9.0]))
    buffer.update_priorities(np.array([3]), np.array([0.25]))  # the running max stays at 3
    buffer.start_episode(frame_stack(50))
    for i in range(4):
        buffer.add(0, 0.0, frame_stack(51 + i), False, False)
    new = np.array([9, 10])  # lookahead complete; 11 and 12 are still pending
    np.testing.assert_allclose(buffer._tree.get(new % 32), (9.0 + 1e-6) ** 0.5)
    np.testing.assert_array_equal(buffer._tree.get(np.array([11, 12])), 0.0)
    total = buffer._tree.total
    buffer.update_priorities(np.array([11, 40, -5]), np.ones(3))  # pending, never written, never written: ignored
    assert buffer._tree.total == total


def test_sum_tree_search_matches_cumulative_sums() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(1000)
    weights = rng.exponential(size=1000) * (rng.random(1000) < 0.7)
    tree.set(np.arange(1000), weights)
    assert tree.total == pytest.approx(weights.sum())
    targets = rng.random(5000) * tree.total
    np.testing.assert_array_equal(tree.find(targets), np.searchsorted(np.cumsum(weights), targets, side="right"))
    edge = SumTree(3)
    edge.set_one(0, 0.1)
    edge.set_one(1, 0.2)
    # A target at (or by rounding past) the right edge must still land on a positive leaf, not the empty ones.
    assert edge.find(np.array([edge.total, np.nextafter(edge.total, 0.0), 0.0])).tolist() == [1, 1, 0]


# --- memory -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prioritized", [False, True])
def test_each_frame_is_stored_once(prioritized: bool) -> None:
    buffer = ReplayBuffer(10_000, (84, 84), 4, prioritized=prioritized)
    assert buffer.bytes_per_transition() <= 1.1 * 84 * 84


# --- files --------------------------------------------------------------------------------------------------
def filled_buffer(seed: int = 5) -> ReplayBuffer:
    rec = Recorder(ReplayBuffer(50, SHAPE, STACK, n_step=3, seed=seed), np.random.default_rng(seed))
    rec.run_episodes(130)
    batch = rec.buffer.sample(16)
    rec.buffer.update_priorities(batch.indices, np.linspace(0.0, 3.0, 16))
    return rec.buffer


def assert_same_samples(a: ReplayBuffer, b: ReplayBuffer) -> None:
    for _ in range(3):
        x, y = a.sample(32), b.sample(32)
        for name in ("obs", "actions", "returns", "next_obs", "discounts", "weights", "indices", "lower_bounds"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    np.testing.assert_array_equal(a.sample_sequences(4, 6).obs, b.sample_sequences(4, 6).obs)


def test_save_load_round_trip(tmp_path) -> None:
    buffer = filled_buffer()
    path = tmp_path / "replay.npz"
    buffer.save(path)
    assert os.listdir(tmp_path) == ["replay.npz"]  # the temporary file was renamed, not left behind
    loaded = ReplayBuffer.load(path)
    assert len(loaded) == len(buffer) and loaded.beta == buffer.beta
    assert_same_samples(buffer, loaded)

    state = filled_buffer().state_dict()
    other = ReplayBuffer(99, (2, 2), stack=2, prioritized=False)
    other.load_state_dict(state)
    assert_same_samples(filled_buffer(), other)


def test_damaged_files_raise_value_error_naming_the_file(tmp_path) -> None:
    good = tmp_path / "good.npz"
    filled_buffer().save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a replay buffer at all" * 10)
    for name in ("truncated.npz", "garbage.npz"):
        with pytest.raises(ValueError, match=name):
            ReplayBuffer.load(tmp_path / name)
    state = filled_buffer().state_dict()
    del state["flags"]
    np.savez(tmp_path / "incomplete.npz", **state)
    with pytest.raises(ValueError, match="incomplete.npz"):
        ReplayBuffer.load(tmp_path / "incomplete.npz")
    with pytest.raises(FileNotFoundError):
        ReplayBuffer.load(tmp_path / "missing.npz")


# --- sequences ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stacked", [False, True])
def test_sequences_are_contiguous_live_and_mark_episode_starts(stacked: bool) -> None:
    capacity, length = 60, 12
    rec = Recorder(ReplayBuffer(capacity, SHAPE, STACK, n_step=3, prioritized=False, seed=8),
                   np.random.default_rng(8))
    seen_first = 0
    for _ in range(30):
        rec.run_episodes(17, max_len=10)
        seq = rec.buffer.sample_sequences(16, length, stacked=stacked)
        shape = (16, length, STACK, *SHAPE) if stacked else (16, length, *SHAPE)
        assert seq.obs.shape == shape and seq.obs.dtype == np.uint8
        for array in (seq.rewards, seq.terminals, seq.is_first):
            assert array.shape == (16, length) and array.dtype == np.float32
        assert seq.actions.shape == (16, length) and seq.actions.dtype == np.int64
        g, episode = decode(seq.obs[:, :, -1] if stacked else seq.obs)
        np.testing.assert_array_equal(g, seq.starts[:, None] + np.arange(length))  # contiguous
        assert g.min() >= rec.written - capacity and g.max() <= rec.written - 1  # never across the write head
        for b, row in np.ndindex(g.shape):
            gi = int(g[b, row])
            assert episode[b, row] == rec.episode[gi] % 256
            first = gi == rec.episode_start[gi]
            assert seq.is_first[b, row] == first
            action, reward, term, _ = (0, 0.0, False, False) if first else rec.steps[gi - 1]
            assert (seq.actions[b, row], seq.terminals[b, row]) == (action, float(term))
            assert seq.rewards[b, row] == pytest.approx(reward, abs=1e-6)
            if stacked:
                assert decode(seq.obs[b, row])[0].tolist() == rec.stack_globals(gi)
        seen_first += int(seq.is_first.sum())
    assert seen_first > 0
    with pytest.raises(ValueError):
        rec.buffer.sample_sequences(4, capacity + 1)
