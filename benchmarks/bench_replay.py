"""Replay buffer sampling speed and memory, against a naive stacked-observation array measured in the same run.

    uv run python benchmarks/bench_replay.py [--capacity 100000] [--reps 1000]

The naive layout keeps every transition's (stack, H, W) observation in one big array, so a batch is a single
np.take; our buffer stores each frame once and rebuilds obs and next_obs (plus n-step returns) per sample, so
it does more work per batch in exchange for ~4-8x less memory.  The ratios below say what that costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from mario_tui.engine.replay import ReplayBuffer

FRAME = (84, 84)
STACK = 4
BATCH = 32


def fill(buffer: ReplayBuffer, steps: int, rng: np.random.Generator) -> float:
    """Play synthetic episodes (frames cycled from a small random pool) into the buffer; returns µs per add."""
    pool = rng.integers(0, 256, (512 + STACK, *FRAME), dtype=np.uint8)
    lengths = rng.integers(50, 1000, steps // 50 + 1)
    start = time.perf_counter()
    episode, left = 0, int(lengths[0])
    buffer.start_episode(pool[:STACK])
    for i in range(steps):
        j = i % 512
        left -= 1
        ended = left == 0
        buffer.add(i % 7, float(i % 3), pool[j : j + STACK], terminated=ended and episode % 2 == 0,
                   truncated=ended and episode % 2 == 1)
        if ended:
            episode += 1
            left = int(lengths[episode])
            buffer.start_episode(pool[j : j + STACK])
    return (time.perf_counter() - start) / steps * 1e6


def median_us(fn: Callable[[], object], reps: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = np.empty(reps)
    for r in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        times[r] = time.perf_counter_ns() - t0
    return float(np.median(times)) / 1e3


def naive_layout(capacity: int, rng: np.random.Generator) -> np.ndarray:
    """(N, stack, H, W) array with every page really written (untouched zero pages would read unrealistically fast)."""
    naive = np.empty((capacity, STACK, *FRAME), dtype=np.uint8)
    tile = rng.integers(0, 256, (1024, STACK, *FRAME), dtype=np.uint8)
    for lo in range(0, capacity, len(tile)):
        hi = min(capacity, lo + len(tile))
        naive[lo:hi] = tile[: hi - lo]
    return naive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=1000)
    args = parser.parse_args()
    capacity, reps = args.capacity, args.reps
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
          f"capacity {capacity:,}, frames {FRAME}, stack {STACK}, batch {BATCH}, median of {reps} reps")

    per = ReplayBuffer(capacity, FRAME, STACK, prioritized=True, seed=1)
    print(f"fill PER buffer:      {fill(per, capacity + capacity // 5, rng):7.1f} µs/add  ({len(per):,} sampleable)")
    uniform = ReplayBuffer(capacity, FRAME, STACK, prioritized=False, seed=1)
    print(f"fill uniform buffer:  {fill(uniform, capacity + capacity // 5, rng):7.1f} µs/add")

    def per_step() -> None:
        batch = per.sample(BATCH)
        per.update_priorities(batch.indices, np.abs(batch.returns) + 0.01)

    t_per = median_us(per_step, reps)
    t_per_sample = median_us(lambda: per.sample(BATCH), reps)
    t_uniform = median_us(lambda: uniform.sample(BATCH), reps)

    naive = naive_layout(capacity, rng)
    t_take = median_us(lambda: np.take(naive, rng.integers(0, capacity, BATCH), axis=0), reps)

    def take_obs_and_next() -> None:
        idx = rng.integers(0, capacity, BATCH)
        np.take(naive, idx, axis=0)
        np.take(naive, (idx + 1) % capacity, axis=0)

    t_take2 = median_us(take_obs_and_next, reps)
    print(f"baseline np.take obs:            {t_take:7.1f} µs   (naive (N,{STACK},84,84) layout)")
    print(f"baseline np.take obs + next_obs: {t_take2:7.1f} µs")
    for label, t in (("PER sample + update_priorities", t_per), ("PER sample", t_per_sample),
                     ("uniform sample", t_uniform)):
        print(f"{label + ':':32s} {t:7.1f} µs   {t / t_take:5.2f}x take(obs)   {t / t_take2:5.2f}x take(obs+next)")

    frame_bytes = FRAME[0] * FRAME[1]
    for label, buffer in (("PER", per), ("uniform", uniform)):
        bpt = buffer.bytes_per_transition()
        print(f"bytes per transition ({label}): {bpt:8.1f}  = {bpt / frame_bytes:.3f} x 84*84")
    print(f"naive layout bytes per transition: {STACK * frame_bytes:,} (obs only), "
          f"{2 * STACK * frame_bytes:,} (obs + next_obs)")


if __name__ == "__main__":
    main()
