"""The layout of `checkpoints/<run>/` and the list of previous runs (for resume)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from mario_tui.engine.config import ConfigError, RunConfig

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.pt"
CSV_FILE = "training.csv"
LOG_FILE = "training.log"
STATUS_FILE = "status.json"
BEST_FILE = "best.pt"
EMA_WEIGHTS_FILE = "weights-ema.pt"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_FILE

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS_FILE

    @property
    def csv(self) -> Path:
        return self.root / CSV_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def status(self) -> Path:
        """Small summary (updates, best x_pos, ...) written with each checkpoint, read by the runs list."""
        return self.root / STATUS_FILE

    @property
    def ema_weights(self) -> Path:
        """The moving average of the weights that the periodic evaluation plays (runs with `--eval-ema` only),
        written with each checkpoint."""
        return self.root / EMA_WEIGHTS_FILE

    @property
    def best(self) -> Path:
        """The weights of the best periodic evaluation so far (a weights file with its `eval` result)."""
        return self.root / BEST_FILE

    @property
    def eval_dir(self) -> Path:
        """`--eval` reports (`<timestamp>.json` + `.csv`, GIFs) and the periodic evaluation's weights snapshot."""
        return self.root / EVAL_DIR

    def replay(self, worker_id: int) -> Path:
        return self.root / f"replay_w{worker_id}.npz"


def default_run_name(config: RunConfig, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{config.model}"


def new_run_paths(config: RunConfig) -> RunPaths:
    """Folder for a new run; refuses to reuse an existing run's folder (that is what resume is for)."""
    name = config.name or default_run_name(config)
    root = Path(config.run_dir) / name
    if (root / CHECKPOINT_FILE).exists() or (root / CSV_FILE).exists():
        raise ConfigError(f"--name: run {name!r} already exists in {config.run_dir}; "
                          f"resume it with --resume {name} or pick another name")
    return RunPaths(root)


def resolve_run(spec: str | Path, run_dir: str | Path = "checkpoints") -> RunPaths:
    """`--resume RUN`: a run name under run_dir, or a path to a run folder or to its checkpoint.pt."""
    path = Path(spec)
    candidates = [path, Path(run_dir) / path]
    for candidate in candidates:
        if candidate.is_file() and candidate.name == CHECKPOINT_FILE:
            return RunPaths(candidate.parent)
        if candidate.is_dir() and (candidate / CHECKPOINT_FILE).exists():
            return RunPaths(candidate)
    raise ConfigError(f"--resume: no run {str(spec)!r} with a {CHECKPOINT_FILE} "
                      f"(looked in {run_dir}/ and at that path)")


@dataclass(frozen=True)
class RunSummary:
    name: str
    path: Path
    model: str
    updates: int
    best_x_pos: int
    modified: dt.datetime
    resumable: bool
    best_eval_x: float | None = None
    """Greedy mean max x of best.pt (the best periodic evaluation); None when the run was never evaluated."""
    has_best: bool = False


def list_runs(run_dir: str | Path = "checkpoints") -> list[RunSummary]:
    """Previous runs, newest first. Reads only config.json/status.json, never the large checkpoints."""
    root = Path(run_dir)
    if not root.is_dir():
        return []
    out: list[RunSummary] = []
    for folder in root.iterdir():
        paths = RunPaths(folder)
        if not folder.is_dir() or not paths.config.exists():
            continue
        try:
            model = str(json.loads(paths.config.read_text()).get("model", "?"))
        except (OSError, ValueError, AttributeError):
            model = "?"
        status: dict = {}
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(paths.status.read_text())
        files = [p for p in (paths.checkpoint, paths.csv, paths.log, paths.config) if p.exists()]
        modified = max(p.stat().st_mtime for p in files)
        best_eval_x = status.get("best_eval_x")
        out.append(RunSummary(folder.name, folder, model, int(status.get("updates", 0)),
                              int(status.get("best_x_pos", 0)), dt.datetime.fromtimestamp(modified),
                              paths.checkpoint.exists(),
                              float(best_eval_x) if isinstance(best_eval_x, int | float) else None,
                              paths.best.is_file()))
    return sorted(out, key=lambda r: r.modified, reverse=True)
