"""First paint: seconds from typing `mario-tui` to the Launch screen being on a real terminal (tmux), against
`python -c "import textual"` in the same run; and `mario-tui --help`. Targets: Launch <= 2 s, --help <= 1.5 s.

Each round starts the command in a fresh tmux window of 160x48 and polls the screen (`tmux capture-pane`, every
10 ms) until it shows the Launch screen's buttons (the baseline: until Python has imported Textual and printed a
marker). Rounds alternate the commands, so the box's drift hits all alike, and each waits until every process of
the previous one (the app's forkserver and its engine import included) has ended. Medians are printed.

The commands run with Python's bytecode cache on, as a user's do (these build machines set
PYTHONDONTWRITEBYTECODE=1, which makes every start compile Textual's and our sources again: ~1 s here); a first,
uncounted round writes the cache, and its times are printed as the first start after an install.

    uv run python benchmarks/bench_first_paint.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCH_MARKER = "Resume selected"
BASELINE_MARKER = "textual imported"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def session_processes(sid: int) -> list[int]:
    """Processes of the terminal session `sid` (a pane's shell and everything it started, forkservers too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def time_to_screen(command: str, marker: str, timeout: float = 60.0) -> float:
    """Seconds from starting `command` in a new tmux session until `marker` is on its screen."""
    name = f"paint-{os.getpid()}-{time.monotonic_ns()}"
    start = time.perf_counter()
    tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "48",
         f"unset PYTHONDONTWRITEBYTECODE; {command}; sleep 600")
    try:
        while marker not in tmux("capture-pane", "-p", "-t", name):
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"{command!r} showed no {marker!r} within {timeout:.0f} s:\n"
                                 + tmux("capture-pane", "-p", "-t", name))
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        sid = int(tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip() or 0)
    finally:
        tmux("kill-session", "-t", name)  # SIGHUP: the app quits as on a closed terminal
    deadline = time.monotonic() + 60
    while sid and session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the app's background import and forkserver end before the next round
    return elapsed


def time_command(argv: list[str]) -> float:
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, capture_output=True, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed (apt-get install -y tmux): this benchmark needs a real terminal")
    script = Path(sys.executable).with_name("mario-tui")
    with tempfile.TemporaryDirectory() as empty:
        run_dir = shlex.quote(str(Path(empty) / "checkpoints"))
        commands = {
            "python -c 'import textual'": (
                f"{shlex.quote(sys.executable)} -c \"import textual; print('{BASELINE_MARKER}')\"", BASELINE_MARKER),
            "mario-tui (Launch screen)": (f"{shlex.quote(str(script))} --run-dir {run_dir}", LAUNCH_MARKER),
        }
        uv = shutil.which("uv")
        if uv:
            root = shlex.quote(str(Path(__file__).resolve().parents[1]))
            commands["uv run mario-tui (Launch screen)"] = (
                f"cd {root} && {shlex.quote(uv)} run mario-tui --run-dir {run_dir}", LAUNCH_MARKER)
        keeper = f"paint-keeper-{os.getpid()}"
        tmux("new-session", "-d", "-s", keeper, "sleep 3600")  # the tmux server's own start is not measured
        times: dict[str, list[float]] = {label: [] for label in commands}
        times["mario-tui --help"] = []
        try:
            first = {label: time_to_screen(command, marker) for label, (command, marker) in commands.items()}
            for _ in range(args.rounds):
                for label, (command, marker) in commands.items():
                    times[label].append(time_to_screen(command, marker))
                times["mario-tui --help"].append(time_command([str(script), "--help"]))
        finally:
            tmux("kill-session", "-t", keeper)
    baseline = statistics.median(times["python -c 'import textual'"])
    targets = {"mario-tui (Launch screen)": 2.0, "uv run mario-tui (Launch screen)": 2.0, "mario-tui --help": 1.5}
    print(f"{args.rounds} rounds, medians (min-max); 160x48 tmux; {os.cpu_count()} CPUs")
    print(f"{'command':36} {'seconds':>18} {'x import textual':>17} {'target':>8}")
    for label, values in times.items():
        target = targets.get(label)
        verdict = "" if target is None else f"<= {target:.1f} " + ("ok" if statistics.median(values) <= target
                                                                     else "MISSED")
        print(f"{label:36} {statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"
              f" {statistics.median(values) / baseline:16.2f}x {verdict:>8}")
    print("first start after an install (bytecode compiled, then cached): "
          + ", ".join(f"{label} {seconds:.2f} s" for label, seconds in first.items()))


if __name__ == "__main__":
    main()
