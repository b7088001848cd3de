"""Moving one gradient packet between processes: GradientPool vs a plain memcpy vs multiprocessing.Queue.

    uv run python benchmarks/bench_transport.py [--numel 1690000] [--iters 100]

A spawned "worker" sends `iters` packets of `numel` float32 (default: the DDQN model, 6.76 MB) to this
process, one at a time (lockstep: the next is sent once the previous was consumed), so each figure is
latency, not queueing. Timestamps are `time.monotonic_ns()`, which is system-wide on Linux.

- memcpy: one `np.copyto` of the same bytes in this process, the limit. "hot" reuses one buffer pair (it
  stays in the last-level cache); "cold" rotates through pairs far bigger than the cache (DRAM-bound);
  "a->b->c" is the two copies the shm path makes (into the slot, out of it), in one process.
- shm: the worker copies its gradient into a GradientPool slot and publishes; the coordinator polls, copies
  it out, releases. `one-way` runs from the worker starting its copy to the coordinator holding its own copy
  (two copies + hand-off); `hand-off` from publish to the same point, i.e. the cost left when the worker
  computes its gradient straight into the slot (`grad_buffer()` views). Coordinator waiting: `polite`
  (`pool.wait`: sched_yield, then sleeps up to 1 ms) and `yield` (poll + sched_yield, no sleeps).
- queue: `mp.Queue.put((t0, array))` / `get()` (pickle through a pipe); its `hand-off` is the same span.
`cycle` is the worker's time between sends (packet + consumer + acknowledgement).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from typing import Any

import numpy as np

from mario_tui.engine.shm import GradientPool, GradientPoolSpec
from mario_tui.engine.shm.waiting import Backoff

DDQN_NUMEL = 1_690_000
CTX = mp.get_context("spawn")


# --------------------------------------------------------------------------- worker processes
def shm_worker(spec: GradientPoolSpec, count: int) -> None:
    writer = GradientPool.attach(spec, 0)
    src = np.random.default_rng(0).standard_normal(spec.numel, dtype=np.float32)
    for k in range(count):
        backoff = Backoff(30)
        while writer.free_slots() < spec.slots_per_worker:  # lockstep: the previous packet was consumed
            if not backoff.wait():
                raise TimeoutError("coordinator stopped consuming")
        t0 = time.monotonic_ns()
        buf = writer.grad_buffer(timeout=30)
        np.copyto(buf, src)
        writer.publish(k, {"t_start": float(t0)})
    writer.close()


def busy_loop() -> None:
    """A CPU hog, to measure with more runnable processes than cores (as during training)."""
    while True:
        pass


def queue_worker(queue: Any, acks: Any, numel: int, count: int) -> None:
    src = np.random.default_rng(0).standard_normal(numel, dtype=np.float32)
    for k in range(count):
        if k:
            acks.get(timeout=30)
        queue.put((time.monotonic_ns(), src))


# --------------------------------------------------------------------------- measurements
def bench_memcpy(numel: int, iters: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    pairs = max(2, int(np.ceil(256e6 / (2 * numel * 4))))  # > 256 MB in rotation: beyond any LLC here
    srcs = [rng.standard_normal(numel, dtype=np.float32) for _ in range(pairs)]
    dsts = [np.ones(numel, np.float32) for _ in range(pairs)]
    out: dict[str, np.ndarray] = {}
    chain = np.empty(numel, np.float32)
    times = np.empty(iters)
    for i in range(iters + 5):
        t0 = time.perf_counter_ns()
        np.copyto(chain, srcs[0])
        np.copyto(dsts[0], chain)
        if i >= 5:
            times[i - 5] = time.perf_counter_ns() - t0
    out["chain"] = times
    for name, rotate in (("hot", False), ("cold", True)):
        times = np.empty(iters)
        for i in range(iters + 5):
            j = i % pairs if rotate else 0
            t0 = time.perf_counter_ns()
            np.copyto(dsts[j], srcs[j])
            if i >= 5:
                times[i - 5] = time.perf_counter_ns() - t0
        out[name] = times
    return out


def bench_shm(numel: int, iters: int, warmup: int, polite: bool) -> dict[str, np.ndarray]:
    count = warmup + iters
    dst = np.empty(numel, np.float32)
    with GradientPool.create(1, numel, ("t_start",)) as pool:
        proc = CTX.Process(target=shm_worker, args=(pool.spec, count), daemon=True)
        proc.start()
        try:
            one_way, handoff, starts = [], [], []
            deadline = time.monotonic() + 120
            while len(starts) < count:
                if polite:
                    packets = pool.wait(timeout=1.0)
                else:
                    packets = pool.poll()
                    if not packets:
                        os.sched_yield()
                for p in packets:
                    np.copyto(dst, p.grad)
                    t_done = time.monotonic_ns()
                    p.release()
                    one_way.append(t_done - p.metrics["t_start"])
                    handoff.append(t_done - p.publish_time_ns)
                    starts.append(p.metrics["t_start"])
                if time.monotonic() > deadline or (not packets and proc.exitcode not in (None, 0)):
                    raise RuntimeError(f"shm worker failed (exit code {proc.exitcode})")
            proc.join(30)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join()
    return {
        "one-way": np.array(one_way[warmup:]),
        "hand-off": np.array(handoff[warmup:]),
        "cycle": np.diff(starts)[warmup - 1 :],
    }


def bench_queue(numel: int, iters: int, warmup: int) -> dict[str, np.ndarray]:
    count = warmup + iters
    queue, acks = CTX.Queue(), CTX.Queue()
    proc = CTX.Process(target=queue_worker, args=(queue, acks, numel, count), daemon=True)
    proc.start()
    try:
        one_way, starts = [], []
        for _ in range(count):
            t0, array = queue.get(timeout=60)
            t_done = time.monotonic_ns()
            acks.put(None)
            assert array.shape == (numel,)
            one_way.append(t_done - t0)
            starts.append(t0)
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    one = np.array(one_way[warmup:], dtype=np.float64)
    return {"one-way": one, "hand-off": one, "cycle": np.diff(starts)[warmup - 1 :].astype(np.float64)}


# --------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numel", type=int, default=DDQN_NUMEL, help="float32 elements per packet")
    parser.add_argument("--iters", type=int, default=100, help="packets measured per mechanism")
    parser.add_argument("--warmup", type=int, default=5, help="packets sent first and not measured")
    parser.add_argument("--busy", type=int, default=0, help="CPU-hog processes running during the measurements")
    args = parser.parse_args()
    nbytes = args.numel * 4
    print(
        f"packet: {args.numel:,} float32 = {nbytes / 1e6:.2f} MB; {args.iters} packets each after "
        f"{args.warmup} warm-up; {os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}; "
        f"{args.busy} CPU hogs; load average before: {os.getloadavg()[0]:.2f}"
    )

    hogs = [CTX.Process(target=busy_loop, daemon=True) for _ in range(args.busy)]
    for hog in hogs:
        hog.start()
    try:
        memcpy = bench_memcpy(args.numel, args.iters)
        polite = bench_shm(args.numel, args.iters, args.warmup, polite=True)
        spin = bench_shm(args.numel, args.iters, args.warmup, polite=False)
        queue = bench_queue(args.numel, args.iters, args.warmup)
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()

    def ms(a: np.ndarray, q: float = 50) -> float:
        return float(np.percentile(a, q)) / 1e6

    print(f"\n{'mechanism':<24}{'one-way ms':>11}{'p10':>8}{'p90':>8}{'GB/s':>7}{'hand-off ms':>13}{'cycle ms':>10}")
    rows: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]] = [
        ("memcpy hot (1 copy)", memcpy["hot"], None, None),
        ("memcpy cold (1 copy)", memcpy["cold"], None, None),
        ("memcpy a->b->c (2)", memcpy["chain"], None, None),
        ("shm, polite wait", polite["one-way"], polite["hand-off"], polite["cycle"]),
        ("shm, sched_yield poll", spin["one-way"], spin["hand-off"], spin["cycle"]),
        ("mp.Queue (pickle)", queue["one-way"], queue["hand-off"], queue["cycle"]),
    ]
    for name, one, hand, cycle in rows:
        gbps = nbytes / (ms(one) * 1e6)
        hand_s = f"{ms(hand):13.3f}" if hand is not None else f"{'':13}"
        cycle_s = f"{ms(cycle):10.3f}" if cycle is not None else ""
        print(f"{name:<24}{ms(one):11.3f}{ms(one, 10):8.3f}{ms(one, 90):8.3f}{gbps:7.1f}{hand_s}{cycle_s}")

    best_shm = min(ms(polite["one-way"]), ms(spin["one-way"]))
    best_handoff = min(ms(polite["hand-off"]), ms(spin["hand-off"]))
    print("\nratios (medians):")
    hot, cold, chain = ms(memcpy["hot"]), ms(memcpy["cold"]), ms(memcpy["chain"])
    print(f"  shm hand-off / memcpy hot      = {best_handoff / hot:5.2f}x   (target <= 2x; grad written into slot)")
    print(f"  shm one-way / memcpy hot       = {best_shm / hot:5.2f}x   (one-way makes 2 copies)")
    print(f"  shm one-way / memcpy a->b->c   = {best_shm / chain:5.2f}x   (same 2 copies, one process)")
    print(f"  shm one-way / memcpy cold      = {best_shm / cold:5.2f}x")
    print(f"  shm polite / sched_yield poll  = {ms(polite['one-way']) / ms(spin['one-way']):5.2f}x   (one-way)")
    print(f"  queue / shm one-way            = {ms(queue['one-way']) / best_shm:5.1f}x   (target >= 10x)")


if __name__ == "__main__":
    main()
