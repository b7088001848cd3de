"""Backends that run a run's workers: `base` holds the protocols, `local` the one-machine default, `ray` the
cluster backend (optional: the `ray` package is an extra)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mario_tui.engine.config import RunConfig
    from mario_tui.engine.runtime.base import WorkerRuntime

RAY_INSTALL_HINT = ("needs the optional ray package: uv sync --extra ray (in a checkout), or pip install "
                    "'mario-tui[ray]'")


def ray_missing() -> str | None:
    """Why `--backend ray` cannot work here (Ray is not installed), or None. Does not import Ray (~2 s)."""
    return None if importlib.util.find_spec("ray") is not None else RAY_INSTALL_HINT


def make_runtime(config: RunConfig, *, numel: int, target_numel: int, metric_names: Sequence[str],
                 worker_spec: Callable[[int, int, Any], Any], ctx: BaseContext, run_root: str,
                 log: Callable[[str], None]) -> WorkerRuntime:
    """The backend `config.backend` names, for a run whose model has `numel` (and `target_numel`) parameters.

    `worker_spec(worker_id, incarnation, link)` builds what a (re)started worker gets; `log` takes the
    coordinator's lines for training.log."""
    from mario_tui.engine.worker import append_run_log, worker_log_path, worker_main

    if config.backend == "ray":
        from mario_tui.engine.runtime.ray_backend import RayRuntime

        return RayRuntime(config.workers, numel, metric_names, address=config.ray_address,
                          cpus_per_worker=config.ray_cpus_per_worker, gpus_per_worker=config.ray_gpus_per_worker,
                          worker_spec=worker_spec, heartbeat_timeout=config.heartbeat_timeout, log=log,
                          worker_lines=lambda line: append_run_log(run_root, line, echo=False))
    from mario_tui.engine.runtime.local import LocalRuntime

    return LocalRuntime(config.workers, numel, metric_names, target_numel=target_numel, ctx=ctx, target=worker_main,
                        worker_spec=worker_spec, heartbeat_timeout=config.heartbeat_timeout, log=log,
                        run_root=run_root, worker_log=lambda i: worker_log_path(run_root, i))
