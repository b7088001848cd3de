"""Fixtures of the engine tests."""

from __future__ import annotations

import pytest

from mario_tui.engine.session import Run


@pytest.fixture
def runs():
    """Runs started by a test are always stopped (workers joined, shared memory unlinked)."""
    started: list[Run] = []
    yield started
    for run in started:
        run.stop(timeout=10, checkpoint=False)
