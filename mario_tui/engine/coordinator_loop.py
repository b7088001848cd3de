"""The coordinator thread's loop: take gradients from the runtime, apply them, publish the new weights, and keep
the run's schedule (a CSV row every `csv_every` updates, a checkpoint every `checkpoint_every`, an evaluation
every `eval_every`, the end at `--steps`).

What is done at those moments (files, the evaluation process) is the run's business (`LoopHooks`); how gradients
and weights travel is the backend's (`WorkerRuntime`). This module is the algorithm's side between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from mario_tui.engine.config import RunConfig
from mario_tui.engine.coordinator import Coordinator, UpdateReport
from mario_tui.engine.runtime.base import WorkerRuntime

GRADIENT_WAIT_S = 0.05
PAUSED_POLL_S = 0.05


class LoopHooks(Protocol):
    """What the run does for the loop."""

    def paused(self) -> bool: ...

    def between_updates(self) -> None:
        """Read episodes, serve checkpoint requests, collect evaluation results (every pass of the loop)."""
        ...

    def updated(self, report: UpdateReport) -> None:
        """An update was applied (metric history)."""
        ...

    def write_csv_row(self) -> None: ...

    def write_checkpoint(self) -> None: ...

    def evaluation_ready(self) -> bool:
        """Whether an evaluation can start now (none is running)."""
        ...

    def start_evaluation(self) -> None: ...

    def budget_reached(self) -> None:
        """`--steps` updates are done: the run ends."""
        ...


def next_multiple(value: int, every: int) -> int:
    """The first multiple of `every` above `value`."""
    return (value // every + 1) * every


class CoordinatorLoop:
    """Runs on the coordinator thread until `stop` is set or the step budget is reached."""

    def __init__(self, config: RunConfig, coordinator: Coordinator, runtime: WorkerRuntime, hooks: LoopHooks,
                 log: Callable[[str], None]) -> None:
        self.config, self.coordinator, self.runtime, self.hooks, self.log = config, coordinator, runtime, hooks, log
        updates = coordinator.counters.updates
        self._last_csv_update = updates
        self.next_eval_at = next_multiple(updates, config.eval_every) if config.eval_every > 0 else 0

    def publish(self) -> None:
        """The coordinator's weights (and target network, when it changed) to every worker."""
        c = self.coordinator
        self.runtime.publish(c.host_weights(), c.published_version, c.changed_targets())

    def run(self, stop: threading.Event) -> None:
        hooks, coordinator = self.hooks, self.coordinator
        while not stop.is_set():
            hooks.between_updates()
            if hooks.paused():
                time.sleep(PAUSED_POLL_S)
                continue
            packets = self.runtime.gradients(GRADIENT_WAIT_S)
            if not packets:
                continue
            report = coordinator.apply(packets)
            if report is None or report.packets == 0:
                if report is not None:
                    self.log(f"dropped {report.dropped_stale} stale and {report.dropped_nonfinite} non-finite "
                             "gradients")
                continue
            self.publish()
            if report.reset:
                self.log(f"shrink-and-perturb at update {coordinator.counters.updates}: kept "
                         f"{self.config.reset_shrink:g} of the weights, the rest a fresh initialisation")
            hooks.updated(report)
            if self._keep_schedule():
                break
        hooks.between_updates()

    def _keep_schedule(self) -> bool:
        """What is due after this update; True when the step budget is reached."""
        cfg, hooks = self.config, self.hooks
        updates = self.coordinator.counters.updates
        if updates - self._last_csv_update >= cfg.csv_every:
            self._last_csv_update = updates
            hooks.write_csv_row()
        if updates % cfg.checkpoint_every == 0:
            hooks.write_checkpoint()
        if cfg.eval_every > 0 and updates >= self.next_eval_at and hooks.evaluation_ready():
            self.next_eval_at = next_multiple(updates, cfg.eval_every)
            hooks.start_evaluation()
        if cfg.steps and updates >= cfg.steps:
            hooks.budget_reached()
            return True
        return False
