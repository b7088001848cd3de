"""`mario-tui --eval RUN_OR_CHECKPOINT`: how well a saved agent plays, as a table, a JSON and a CSV (and a GIF).

Prints one line per finished episode, then a table per level and a summary line, and writes
`<run folder>/eval/<timestamp>.json` + `.csv`. Exit 0 on success, 2 on bad input (one line, no traceback),
1 when the report cannot be written, 130 on Ctrl+C.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from mario_tui.engine.checkpoint import CheckpointError
from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.evaluate import EvalEpisode, EvalOptions, evaluate, record_episode
from mario_tui.engine.runs import EVAL_DIR

EVAL_FLAGS = ("level", "seed", "workers", "run_dir", "eval_max_steps", "eval_stall_steps", "eval_noops")
"""Run options `--eval` reads; any other run option given with it is an error (it would silently do nothing)."""


def resolve_target(spec: str, run_dir: str) -> Path:
    """A weights/best/checkpoint file or a run folder, given as a path or as a run name under `run_dir`."""
    for candidate in (Path(spec), Path(run_dir) / spec):
        if candidate.exists():
            return candidate
    raise ConfigError(f"--eval: no run or checkpoint {spec!r} (looked at that path and in {run_dir}/)")


def report_folder(checkpoint: Path) -> Path:
    """`eval/` of the run the file belongs to (its folder; for a file inside `eval/`, the run above it)."""
    folder = checkpoint.resolve().parent
    return folder if folder.name == EVAL_DIR else folder / EVAL_DIR


def episode_line(done: int, total: int, episode: EvalEpisode) -> str:
    return (f"episode {done}/{total} on {episode.level}: max x {episode.max_x}, {episode.ended}, "
            f"{episode.steps} steps, return {episode.total_return:.1f} ({episode.noops} no-op start)")


def run_eval(target: str, given: dict[str, Any], episodes: int, epsilon: float, gif: bool,
             out: TextIO | None = None) -> int:
    """The `--eval` front end; `given` holds the run options given on the command line."""
    out = out or sys.stdout
    err = sys.stderr
    unused = sorted(set(given) - set(EVAL_FLAGS))
    if unused:
        print(f"mario-tui: error: --{unused[0].replace('_', '-')}: not used by --eval (it takes --episodes, "
              "--level, --epsilon, --seed, --workers, --gif, --run-dir and --eval-max-steps/-stall-steps/-noops)",
              file=err)
        return 2
    options = EvalOptions(episodes=episodes, level=given.get("level"), epsilon=epsilon, seed=given.get("seed", 0),
                          max_steps=given.get("eval_max_steps", RunConfig.eval_max_steps),
                          stall_steps=given.get("eval_stall_steps", RunConfig.eval_stall_steps),
                          noop_max=given.get("eval_noops", RunConfig.eval_noops), workers=given.get("workers", 1))
    from mario_tui.engine.playback import checkpoint_file

    finished = 0
    try:
        options.validate()
        path = checkpoint_file(resolve_target(target, given.get("run_dir", RunConfig.run_dir)))

        def on_episode(episode: EvalEpisode) -> None:
            nonlocal finished
            finished += 1
            print(episode_line(finished, total, episode), file=out, flush=True)

        from mario_tui.engine.evaluate import episode_plan
        from mario_tui.engine.playback import load_policy

        config, _model = load_policy(path)  # a damaged file fails here, before any process starts
        total = len(episode_plan(options.level or config.level, options.episodes, options.seed))
        print(f"evaluating {path} ({config.model}): {total} greedy episodes on {options.level or config.level}"
              f"{f', epsilon {epsilon:g}' if epsilon else ''}, {options.workers} process"
              f"{'es' if options.workers > 1 else ''}; each starts with 0..{options.noop_max} random no-ops and ends "
              f"at death, the flag, {options.max_steps} steps or {options.stall_steps} steps without progress",
              file=out, flush=True)
        report = evaluate(path, options, on_episode=on_episode)
    except (ConfigError, CheckpointError) as exc:
        print(f"mario-tui: error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print(f"mario-tui: evaluation interrupted after {finished} episodes; nothing written", file=err)
        return 130
    print(file=out)
    print(report.table(), file=out)
    print(report.summary_line(), file=out)
    folder = report_folder(path)
    try:
        json_path, csv_path = report.save(folder)
        print(f"wrote {json_path} and {csv_path.name}", file=out, flush=True)
        if gif:
            print(f"recording the best episode ({report.best_episode().level}, max x {report.best_episode().max_x})…",
                  file=out, flush=True)
            gif_path = write_gif(path, report.best_episode(), options, json_path.with_suffix(".gif"))
            print(f"wrote {gif_path}", file=out, flush=True)
    except OSError as exc:
        print(f"mario-tui: error: could not write the evaluation report in {folder}: {exc.strerror or exc}",
              file=err)
        return 1
    except KeyboardInterrupt:
        print("mario-tui: GIF interrupted; the JSON and CSV reports are written", file=err)
        return 130
    return 0


def write_gif(path: Path, episode: EvalEpisode, options: EvalOptions, gif_path: Path) -> Path:
    from mario_tui.engine.playback import export_gif

    recording = record_episode(path, episode, options)
    return export_gif(recording, gif_path, every=2)
