"""What the periodic greedy evaluation costs the training: frames/s with it playing against without, same run.

One real run (`--workers` workers, default DDQN) evaluates back to back (`--eval-every 1`: the evaluation process is
always busy, the worst case of the default every-500-updates schedule). Windows of `--window` seconds alternate
between the evaluation process running and stopped (SIGSTOP, as a paused run does), so drift of the host hits both
alike; each pair of windows gives one ratio of frames/s (on / off). Also prints the CPU the evaluation process used
while running, as a share of the machine.

    uv run python benchmarks/bench_eval_overhead.py [--workers 2] [--pairs 6] [--window 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mario_tui.engine.config import RunConfig
from mario_tui.engine.session import Run

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | None) -> float:
    """utime + stime of `pid` in seconds (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def steps(run: Run) -> int:
    return sum(r.steps for r in run.worker_rows())


def measure(run: Run, seconds: float, evaluating: bool) -> tuple[float, float]:
    """(frames/s, evaluation CPU seconds per second) over one window."""
    assert run.evaluator is not None
    (run.evaluator.resume if evaluating else run.evaluator.pause)()
    time.sleep(1.0)  # let the switch settle
    pid = run.evaluator.pid
    s0, c0, t0 = steps(run), process_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu = process_cpu_s(run.evaluator.pid) - c0 if run.evaluator.pid == pid else float("nan")
    return (steps(run) - s0) * run.config.frame_skip / elapsed, cpu / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(workers=args.workers, run_dir=tmp, name="bench", learning_starts=500, steps=0,
                           checkpoint_every=10**9, eval_every=1)
        run = Run(config)
        run.start()
        try:
            deadline = time.monotonic() + 300
            while (run.evaluator is None or run.evaluator.pid is None) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(10)  # the evaluation process has built its env and plays
            ratios, shares, on_fps, off_fps = [], [], [], []
            for i in range(args.pairs):
                order = (True, False) if i % 2 == 0 else (False, True)
                window = {evaluating: measure(run, args.window, evaluating) for evaluating in order}
                on_fps.append(window[True][0])
                off_fps.append(window[False][0])
                shares.append(window[True][1] / (os.cpu_count() or 1))
                ratios.append(window[True][0] / window[False][0])
                print(f"pair {i + 1}: evaluating {window[True][0]:.0f} frames/s, stopped {window[False][0]:.0f} "
                      f"frames/s, ratio {ratios[-1]:.3f}, evaluation CPU {shares[-1]:.1%} of the machine", flush=True)
            evals = len(run.eval_history)
        finally:
            run.stop(checkpoint=False)
    print(f"{args.workers} workers on {os.cpu_count()} cores, {args.pairs} pairs of {args.window:g} s windows, "
          f"{evals} evaluations finished")
    print(f"frames/s while evaluating / while not: median {statistics.median(ratios):.3f}, "
          f"mean {statistics.mean(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"evaluation process CPU: median {statistics.median(shares):.1%} of the machine "
          f"(cap {0.05:.0%}: periodic_eval.MACHINE_CPU_SHARE)")


if __name__ == "__main__":
    main()
