"""End to end: the distributed runtime (as `--batch` runs it) against the emulator ceiling, same run.

1. Ceiling: `--workers` processes that only step the raw emulator (random actions), frames/s in total.
2. Runtime: a real run with `--workers` workers and the default model (`--model`) for `--seconds` after learning starts,
   once per backend (`--backends local,ray`) and worker device (`--worker-devices cpu,cuda`): env frames/s, updates/s,
   policy lag, and where worker time goes (env / acting / learner / waiting for the transport / the rest of the loop:
   pulling weights, figures, episodes: the transport's share of a cycle is waiting + rest), and the CPU cores each kind
   of process used meanwhile (this process = the coordinator; the workers; Ray's own processes), read from /proc.

    uv run python benchmarks/bench_end_to_end.py [--workers 2] [--seconds 60] [--backends local,ray]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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


def process_kind(pid: int, cmdline: str) -> str | None:
    """Which part of a run a process is, for the CPU table: None for anything else on the box."""
    if pid == os.getpid():
        return "coordinator"
    if "ray::WorkerActor" in cmdline or "multiprocessing" in cmdline:  # forkserver children: the forkserver's line
        return "workers"  # (with the forkserver and the periodic evaluator: idle or paced to a few percent)
    if "ray" in cmdline:
        return "ray"
    return None


def cpu_ticks() -> dict[int, tuple[str, int]]:
    """Each run process's CPU time so far (user + system clock ticks), by pid, with its kind."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        kind = process_kind(int(entry.name), cmdline)
        if kind is not None:
            ticks[int(entry.name)] = (kind, int(fields[11]) + int(fields[12]))
    return ticks


def cores_used(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], elapsed: float
               ) -> dict[str, float]:
    """CPU cores each kind of process used between two `cpu_ticks` readings (a process that started between them
    counts from zero)."""
    used = {"coordinator": 0.0, "workers": 0.0, "ray": 0.0}
    for pid, (kind, ticks) in after.items():
        used[kind] += (ticks - before.get(pid, (kind, 0))[1]) / os.sysconf("SC_CLK_TCK") / elapsed
    return used


def runtime(workers: int, seconds: float, run_dir: str, model: str = "ddqn", backend: str = "local",
            worker_device: str = "auto") -> dict[str, float]:
    config = RunConfig(model=model, workers=workers, run_dir=run_dir, name=f"bench-{backend}-{worker_device}",
                       learning_starts=500, steps=0, checkpoint_every=10**9, csv_every=100, backend=backend,
                       worker_device=worker_device)
    run = Run(config)
    run.start()
    try:
        deadline = time.monotonic() + 300
        while run.coordinator.counters.updates < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        s0 = run.coordinator.counters.updates
        steps0 = sum(r.steps for r in run.worker_rows())
        t0, ticks0 = time.monotonic(), cpu_ticks()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        cores = cores_used(ticks0, cpu_ticks(), elapsed)
        stats = run.coordinator_stats()
        steps1 = sum(r.steps for r in run.worker_rows())
        fractions = run.worker_time_fractions()
        rest = 1.0 - sum(fractions.get(k, 0.0) for k in ("env", "act", "learn", "wait"))
        return {"frames_per_s": (steps1 - steps0) * config.frame_skip / elapsed,
                "updates_per_s": (stats["updates"] - s0) / elapsed,
                "lag": stats["policy_lag_mean"], **{f"{k}_frac": v for k, v in fractions.items()}, "rest_frac": rest,
                **{f"{k}_cores": v for k, v in cores.items()}}
    finally:
        run.stop(checkpoint=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", choices=("ddqn", "dreamer"), default="ddqn")
    parser.add_argument("--backends", default="local", help="comma-separated, of local, ray")
    parser.add_argument("--worker-devices", default="auto", help="comma-separated, of auto, cpu, cuda")
    args = parser.parse_args()
    combos = [(b, d) for b in args.backends.split(",") for d in args.worker_devices.split(",")]
    limit = ceiling(args.workers, min(args.seconds, 20.0))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend, device in combos:
            results[backend, device] = runtime(args.workers, args.seconds, tmp, args.model, backend, device)
    after = ceiling(args.workers, min(args.seconds, 20.0))
    limit = (limit + after) / 2
    print(f"emulator ceiling, {args.workers} processes (mean of before/after): {limit:.0f} NES frames/s")
    base = results[combos[0]]
    print(f"{'backend':8} {'grads on':8} {'frames/s':>9} {'of ceiling':>10} {'updates/s':>9} {'x first':>7} "
          f"{'lag':>5} {'env':>5} {'act':>5} {'learn':>5} {'wait':>5} {'rest':>5}   cores: {'coord':>5} {'workers':>7} "
          f"{'ray':>5}")
    for (backend, device), f in results.items():
        ratio = f["updates_per_s"] / base["updates_per_s"] if base["updates_per_s"] else float("nan")
        print(f"{backend:8} {device:8} {f['frames_per_s']:9.0f} {f['frames_per_s'] / limit:10.2f} "
              f"{f['updates_per_s']:9.2f} {ratio:7.2f} {f['lag']:5.2f} {f['env_frac']:5.0%} {f['act_frac']:5.0%} "
              f"{f['learn_frac']:5.0%} {f['wait_frac']:5.0%} {f['rest_frac']:5.0%}          "
              f"{f['coordinator_cores']:5.2f} {f['workers_cores']:7.2f} {f['ray_cores']:5.2f}")


if __name__ == "__main__":
    main()
