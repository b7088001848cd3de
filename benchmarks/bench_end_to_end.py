"""End to end: the distributed runtime (as `--batch` runs it) against the emulator ceiling, same run.

1. Ceiling: `--workers` processes that only step the raw emulator (random actions), frames/s in total.
2. Runtime: a real run with `--workers` workers and the default model (`--model`) for `--seconds` after learning starts:
   env frames/s, updates/s, and where worker time goes (env / learner / waiting).

    uv run python benchmarks/bench_end_to_end.py [--workers 2] [--seconds 60]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time

from mario_tui.engine.config import RunConfig
from mario_tui.engine.session import Run


def raw_emulator(seconds: float, out: mp.Queue) -> None:
    import gym_super_mario_bros
    from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
    from nes_py.wrappers import JoypadSpace

    env = JoypadSpace(gym_super_mario_bros.make("SuperMarioBros-1-1-v0"), SIMPLE_MOVEMENT)
    env.reset(seed=0)
    frames, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames += 1
        if terminated or truncated:
            env.reset()
    out.put(frames / (time.perf_counter() - t0))


def ceiling(workers: int, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=raw_emulator, args=(seconds, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def runtime(workers: int, seconds: float, run_dir: str, model: str = "ddqn") -> dict[str, float]:
    config = RunConfig(model=model, workers=workers, run_dir=run_dir, name="bench", learning_starts=500, steps=0,
                       checkpoint_every=10**9, csv_every=100)
    run = Run(config)
    run.start()
    try:
        deadline = time.monotonic() + 300
        while run.coordinator.counters.updates < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        s0 = run.coordinator.counters.updates
        steps0 = sum(r.steps for r in run.worker_rows())
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        stats = run.coordinator_stats()
        steps1 = sum(r.steps for r in run.worker_rows())
        fractions = run.worker_time_fractions()
        return {"frames_per_s": (steps1 - steps0) * config.frame_skip / elapsed,
                "updates_per_s": (stats["updates"] - s0) / elapsed,
                "lag": stats["policy_lag_mean"], **{f"{k}_frac": v for k, v in fractions.items()}}
    finally:
        run.stop(checkpoint=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", choices=("ddqn", "dreamer"), default="ddqn")
    args = parser.parse_args()
    limit = ceiling(args.workers, min(args.seconds, 20.0))
    with tempfile.TemporaryDirectory() as tmp:
        figures = runtime(args.workers, args.seconds, tmp, args.model)
    after = ceiling(args.workers, min(args.seconds, 20.0))
    limit = (limit + after) / 2
    print(f"emulator ceiling, {args.workers} processes (mean of before/after): {limit:.0f} NES frames/s")
    print(f"runtime, {args.workers} workers, default {args.model}: {figures['frames_per_s']:.0f} NES frames/s "
          f"= {figures['frames_per_s'] / limit:.2f} of the ceiling")
    print(f"updates/s: {figures['updates_per_s']:.2f}, policy lag mean {figures['lag']:.2f} versions")
    print(f"worker time: env {figures['env_frac']:.0%}, acting {figures['act_frac']:.0%}, "
          f"learner {figures['learn_frac']:.0%}, waiting for a slot {figures['wait_frac']:.0%}")


if __name__ == "__main__":
    main()
