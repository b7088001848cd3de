"""How this engine starts its processes (workers, evaluators, playback), kept free of torch so that the app can
start multiprocessing's helpers before its first paint without paying for the engine's imports."""

from __future__ import annotations

import multiprocessing as mp


def process_context(method: str | None = None) -> mp.context.BaseContext:
    """forkserver with the engine preloaded (restarts in ~0.2 s), else spawn. Never plain fork: the
    coordinator process has threads and torch state that a fork would copy half-way."""
    methods = mp.get_all_start_methods()
    method = method or ("forkserver" if "forkserver" in methods else "spawn")
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["mario_tui.engine.worker"])
    return ctx


def start_process_helpers(ctx: mp.context.BaseContext) -> None:
    """Start multiprocessing's resource tracker (and the forkserver) now, with the real stdio.

    Both are started lazily by the first Process.start(), and pass `sys.stderr.fileno()` to the helper
    process; inside a Textual app sys.stderr is a capture object without a usable descriptor, and the start
    fails with "bad value(s) in fds_to_keep". Starting them here with the original streams avoids that, and
    lets the forkserver import torch while the user is still busy with the app.
    """
    import sys
    from multiprocessing import forkserver, resource_tracker

    saved = sys.stdout, sys.stderr
    if sys.__stdout__ is not None and sys.__stderr__ is not None:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        resource_tracker.ensure_running()
        if ctx.get_start_method() == "forkserver":
            forkserver.ensure_running()
    finally:
        sys.stdout, sys.stderr = saved
