"""Checkpoint files: atomic, safe to load, clear errors for damaged or foreign files."""

from __future__ import annotations

import os

import pytest
import torch

from mario_tui.engine.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint, save_weights
from mario_tui.engine.fileio import atomic_writer


def payload() -> dict:
    return {"config": {"model": "ddqn"}, "model": {"w": torch.arange(4.0)}, "optimizer": {"state": {}},
            "counters": {"updates": 7}, "rng": {"torch": torch.get_rng_state()}}


def test_round_trip(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, payload())
    data = load_checkpoint(path)
    assert data["counters"]["updates"] == 7
    assert torch.equal(data["model"]["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_truncated_garbage_and_foreign_files_are_named(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="checkpoint.pt.*damaged"):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="foreign"):
        load_checkpoint(path)
    save_weights(path, {"w": torch.zeros(1)}, {}, {})
    with pytest.raises(CheckpointError, match="expected 'checkpoint'"):
        load_checkpoint(path)
    assert load_weights(path)["model"]["w"].shape == (1,)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_code_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "mario-tui", "kind": "checkpoint", "version": 1, "evil": os.system}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload())
    before = path.read_bytes()
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write(b"half")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
