"""Command line: `mario-tui` opens the app; `mario-tui --batch ...` trains headless (servers, CI, nohup).

Every run option is a flag generated from `RunConfig`, so the flags, their help and their validation
can never drift from the config the engine uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields

from mario_tui.defaults import DEFAULT_PREVIEW_FPS, EXIT_STATUS_HELP
from mario_tui.engine.config import (
    ConfigError,
    RunConfig,
    coerce,
    field_choices,
    field_help,
    field_type,
    flag_name,
    model_defaults_text,
)

# Options that define the network or the data shape: a resumed run must keep them.
FIXED_ON_RESUME = ("model", "actions", "frame_size", "frame_stack", "frame_skip", "conv_width", "hidden_size",
                   "prev_action")


def _typed(name: str):
    def parse(text: str):
        try:
            return coerce(name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None

    parse.__name__ = field_type(name).__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mario-tui",
        usage="mario-tui [--batch] [--resume RUN] [options] | mario-tui --eval RUN_OR_CHECKPOINT [--episodes N] "
              "[--level L] [--epsilon E] [--seed S] [--workers N] [--gif]   (mario-tui --help lists every option)",
        description="Train deep RL agents to play Super Mario Bros. Without --batch, opens the terminal app.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"--batch {EXIT_STATUS_HELP}.",
    )
    parser.add_argument("--batch", action="store_true", help="Train without a UI (servers, CI, nohup).")
    parser.add_argument("--resume", metavar="RUN", default=None,
                        help="Resume a run: its name under --run-dir, or a path to its folder or checkpoint.pt.")
    evaluation = parser.add_argument_group(
        "evaluation", "mario-tui --eval RUN_OR_CHECKPOINT plays greedy episodes of a saved agent (also --level, "
        "where 'all' means every stage, --seed, --workers for parallel processes, --eval-max-steps, "
        "--eval-stall-steps and --eval-noops) and writes eval/<timestamp>.json and .csv in its run folder")
    evaluation.add_argument("--eval", metavar="RUN_OR_CHECKPOINT", default=None,
                            help="Evaluate a run (its weights.pt; name under --run-dir or path) or a weights.pt, "
                                 "best.pt or checkpoint.pt file, then exit.")
    evaluation.add_argument("--episodes", type=positive_int, default=10, metavar="N",
                            help="Evaluation episodes per level.")
    evaluation.add_argument("--epsilon", type=unit_float, default=0.0, metavar="E",
                            help="Chance of a random action per evaluation step (0: greedy).")
    evaluation.add_argument("--gif", action="store_true",
                            help="Also record the best evaluation episode as an animated GIF beside the report.")
    parser.add_argument("--preview", choices=("auto", "sixel", "kitty", "halfblock", "off"), default="auto",
                        help="How the app draws the game frame.")
    parser.add_argument("--preview-fps", type=preview_fps, default=DEFAULT_PREVIEW_FPS, metavar="FPS",
                        help="Game frames a second in the dashboard's live preview (1-30; each costs the training a "
                             "little CPU, the replay viewer plays episodes at full speed).")
    for f in fields(RunConfig):
        kind = field_type(f.name)
        flag = flag_name(f.name)
        help_text = field_help(f.name)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=f"{help_text} ({default_text(f.name)})")
            continue
        choices = field_choices(f.name) or None
        parser.add_argument(flag, type=_typed(f.name), choices=choices, default=argparse.SUPPRESS,
                            metavar=None if choices else f.name.upper(),
                            help=f"{help_text} ({default_text(f.name)})")
    return parser


def default_text(field_name: str) -> str:
    """`default: 1.0`, plus the models that default otherwise: `default: 1.0; dreamer: 0.0`."""
    others = model_defaults_text(field_name)
    return f"default: {getattr(RunConfig, field_name)!r}" + (f"; {others}" if others else "")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[RunConfig, str | None]:
    """Explicit flags over defaults (or over the resumed run's config.json). Exits 2 on a bad value."""
    given = {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}
    resume_dir: str | None = None
    if args.resume:
        from mario_tui.engine.runs import resolve_run

        try:
            paths = resolve_run(args.resume, given.get("run_dir", RunConfig.run_dir))
            base = RunConfig.load(paths.config)
        except ConfigError as exc:
            parser.error(str(exc))
        changed = [k for k in FIXED_ON_RESUME if k in given and given[k] != getattr(base, k)]
        if changed:
            parser.error(f"{flag_name(changed[0])}: cannot change when resuming (the run uses "
                         f"{getattr(base, changed[0])!r})")
        config = base.replace(**{k: v for k, v in given.items() if k not in ("name", "run_dir")})
        config = config.replace(name=paths.root.name, run_dir=str(paths.root.parent))
        resume_dir = str(paths.root)
    else:
        try:
            config = RunConfig.with_model_defaults(**given)
        except ConfigError as exc:
            parser.error(str(exc))
    problems = config.problems()
    if problems:
        parser.error(next(iter(problems.values())))
    from mario_tui.engine.registry import check_available

    try:
        check_available(config.model)
    except ConfigError as exc:
        parser.error(str(exc))
    return config, resume_dir


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def preview_fps(text: str) -> float:
    """argparse type for --preview-fps: a number of frames a second between 1 and 30."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 30:
        raise argparse.ArgumentTypeError(f"must be between 1 and 30, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.eval is not None:
        if args.batch or args.resume:
            parser.error("--eval: cannot be combined with --batch or --resume")
        from mario_tui.eval_cli import run_eval

        given = {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}
        return run_eval(args.eval, given, args.episodes, args.epsilon, args.gif)
    config, resume_dir = config_from_args(args, parser)
    if args.batch:
        from mario_tui.batch import run_batch

        return run_batch(config, resume_dir)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("mario-tui: the app needs an interactive terminal (stdin/stdout are not a TTY).\n"
              "For servers, CI or nohup, train headless instead:  mario-tui --batch [options]\n"
              "(mario-tui --help lists the options)", file=sys.stderr)
        return 2
    from mario_tui.app import run_app

    return run_app(config, resume_dir, preview=args.preview, preview_fps=args.preview_fps)


if __name__ == "__main__":
    raise SystemExit(main())
