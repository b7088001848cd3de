"""Checkpoint files: atomic writes, safe loads (`weights_only=True`: a checkpoint is data, never code).

`checkpoint.pt` holds everything needed to resume (model incl. target, optimizer, LR schedule, counters,
config, RNG states); `weights.pt` only what watching/evaluating an agent needs (online weights + config).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mario_tui.engine.errors import CheckpointError
from mario_tui.engine.fileio import atomic_save

FORMAT = "mario-tui"
CHECKPOINT_KIND = "checkpoint"
WEIGHTS_KIND = "weights"
VERSION = 1


def save_file(path: Path | str, kind: str, payload: dict[str, Any]) -> None:
    """torch.save `payload` tagged with our format/kind/version, atomically (temp + fsync + rename)."""
    data = {"format": FORMAT, "kind": kind, "version": VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(data, buffer)  # serialise fully before touching the disk: a failure leaves the old file
    atomic_save(path, lambda handle: handle.write(buffer.getbuffer()))


def load_file(path: Path | str, kind: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a file written by `save_file`; every failure becomes a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError,
            AttributeError, TypeError, KeyError, IndexError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: damaged, truncated or not a mario-tui file ({first_line[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a mario-tui {kind} file (foreign format)")
    if data.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {data.get('kind')!r} file, expected {kind!r}")
    if int(data.get("version", -1)) > VERSION:
        raise CheckpointError(f"{path}: written by a newer mario-tui (format version {data.get('version')})")
    return data


def save_checkpoint(path: Path | str, payload: dict[str, Any]) -> None:
    save_file(path, CHECKPOINT_KIND, payload)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    data = load_file(path, CHECKPOINT_KIND, map_location)
    for key in ("config", "model", "optimizer", "counters"):
        if key not in data:
            raise CheckpointError(f"{path}: incomplete checkpoint (missing {key!r})")
    return data


def save_weights(path: Path | str, model_state: dict[str, Any], config: dict[str, Any],
                 counters: dict[str, Any], **extra: Any) -> None:
    """`extra` entries go into the file beside the weights (best.pt keeps its evaluation result as `eval`)."""
    save_file(path, WEIGHTS_KIND, {**extra, "model": model_state, "config": config, "counters": counters})


def load_weights(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    data = load_file(path, WEIGHTS_KIND, map_location)
    if "model" not in data or "config" not in data:
        raise CheckpointError(f"{path}: incomplete weights file")
    return data
