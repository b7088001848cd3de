"""`RunView` is what the front ends read of a run: the engine's `Run` and the snapshots' `FixedRun` both provide
all of it, with the same parameters, so the dashboard drawn in the snapshots is the one a live run gets."""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from collections.abc import Callable

from mario_tui.engine.session import Run
from mario_tui.engine.view import RunView
from tests.app.test_snapshots import FixedRun

MEMBERS = typing.get_protocol_members(RunView)


def init_attributes(cls: type) -> set[str]:
    """The attributes `cls.__init__` sets on `self` (`self.x = ...`, `self.x: T = ...`, `self.x, self.y = ...`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id == "self":
                    names.add(item.attr)
    return names


def methods(cls: type) -> dict[str, Callable]:
    """RunView's methods as `cls` defines them."""
    return {name: getattr(cls, name) for name in MEMBERS if inspect.isfunction(getattr(RunView, name, None))}


def parameters_fit(protocol_method: Callable, method: Callable) -> bool:
    """`method` takes every parameter of the protocol's, by name and kind; any others have defaults."""
    wanted = inspect.signature(protocol_method).parameters
    given = inspect.signature(method).parameters
    return (all(name in given and given[name].kind == p.kind for name, p in wanted.items())
            and all(p.default is not inspect.Parameter.empty for name, p in given.items() if name not in wanted))


def test_run_view_names_what_the_front_ends_use():
    assert {"config", "paths", "done", "stopped", "episodes", "worker_rows", "coordinator_stats", "csv_path",
            "save_checkpoint", "stop"} <= MEMBERS
    assert not any(name.startswith("_") for name in MEMBERS)


def test_the_engines_run_has_every_member_of_run_view():
    """Class members (methods, properties) on the class; data attributes set in `Run.__init__`, so a run has them
    from its construction on (the app reads a run as soon as it exists)."""
    present = {name for name in MEMBERS if hasattr(Run, name)} | init_attributes(Run)
    assert sorted(MEMBERS - present) == []
    for name, method in methods(Run).items():
        assert parameters_fit(getattr(RunView, name), method), f"Run.{name}{inspect.signature(method)}"


def test_the_fixed_run_of_the_snapshots_is_a_run_view(tmp_path):
    run = FixedRun(tmp_path / "demo")
    assert isinstance(run, RunView)
    for name, method in methods(FixedRun).items():
        assert parameters_fit(getattr(RunView, name), method), f"FixedRun.{name}{inspect.signature(method)}"
    assert run.worker_rows() and run.coordinator_stats()["updates"] == 399 and not run.paused
    assert run.toggle_pause() and run.paused and not run.toggle_pause()
    assert run.restart_stale_workers() == [] and not run.save_checkpoint() and run.last_checkpoint_error
    run.stop(timeout=1, checkpoint=False)
    assert run.stopping.is_set() and run.stopped.is_set() and run.done.is_set()
