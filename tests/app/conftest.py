"""Fixtures of the app tests."""

from __future__ import annotations

import pytest

from mario_tui.app import MarioApp


@pytest.fixture
def apps():
    """Whatever a test does, the runs its apps started are stopped (workers, shared memory)."""
    made: list[MarioApp] = []
    yield made
    for app in made:
        if app.current_run is not None:
            app.current_run.stop(timeout=10, checkpoint=False)
