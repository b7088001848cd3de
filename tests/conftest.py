"""Suite-wide rules: one torch thread (2-core machines: threads fight), and no shared memory left behind."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

torch.set_num_threads(1)


def _our_segments() -> set[str]:
    """Segments this test process created (the name carries the creator pid; other runs on the machine differ)."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(f"mtui_{os.getpid()}_")}
    except FileNotFoundError:
        return set()


@pytest.fixture(autouse=True)
def no_shared_memory_left_behind():
    """Every test must unlink the segments it created, whatever happened inside it."""
    before = _our_segments()
    yield
    left = _our_segments() - before
    for name in left:  # clean up so one failure does not cascade into every later test
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{name}")
    assert not left, f"shared memory left behind: {sorted(left)}"
