"""The Ray backend's worker end (`RayLink`) on its own: what an exchange call carries each way, the two-gradient
backpressure, and that every gradient, episode, command and log line crosses exactly once. No Ray instance is
needed: the driver's calls are made here directly, from another thread where the worker loop would be."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray")

from mario_tui.engine.protocol import RunState, WorkerCommand, WorkerState  # noqa: E402
from mario_tui.engine.runtime.ray_worker import EXCHANGE_WAIT_S, OUTBOX, Downlink, RayLink  # noqa: E402


def down(state: RunState = RunState.RUNNING, commands: list[int] | None = None, preview: bool = False) -> Downlink:
    return Downlink(int(state), None, None, commands or [], preview)


def send(link: RayLink, version: int, value: float) -> None:
    buffer = link.gradient_buffer()
    assert buffer is not None
    buffer[:] = value
    link.send_gradient(version, {"q_loss": value, "not_a_metric": 1.0})


def test_an_exchange_carries_everything_once_and_backpressure_holds_the_worker():
    link = RayLink(3, ("q_loss",), numel=4)
    for k in range(OUTBOX):
        send(link, 10 + k, float(k))
    assert link.gradient_buffer() is None  # two gradients on their way: the worker waits, as for the shm slots
    link.report(state=WorkerState.RUNNING, steps=120, episodes=2)
    link.report_episode(reward=5.0, x_pos=300, length=40, flag=False, world=1, stage=1)
    link.log("hello")
    up = link.exchange(down(commands=[int(WorkerCommand.SAVE_REPLAY)], preview=True))
    assert [(v, g.tolist(), m) for v, g, m in up.gradients] == [
        (10, [0.0] * 4, {"q_loss": 0.0}), (11, [1.0] * 4, {"q_loss": 1.0})]
    assert up.stats["steps"] == 120 and up.stats["state"] == WorkerState.RUNNING.code
    assert up.episodes == [(5.0, 300, 40, False, 1, 1)] and up.logs[0].endswith("[w3] hello") and up.error == ""
    assert link.take_commands() == [WorkerCommand.SAVE_REPLAY] and link.take_commands() == []
    assert link.wants_preview() and link.run_state() is RunState.RUNNING
    assert link.gradient_buffer() is not None  # drained: room again
    again = link.exchange(down(RunState.PAUSED))
    assert again.gradients == [] and again.episodes == [] and again.logs == []
    assert link.run_state() is RunState.PAUSED and not link.wants_preview()


def test_an_exchange_answers_as_soon_as_a_gradient_is_ready_and_after_the_wait_otherwise():
    link = RayLink(0, ("q_loss",), numel=2)
    t0 = time.monotonic()
    assert link.exchange(down()).gradients == []
    assert EXCHANGE_WAIT_S * 0.8 <= time.monotonic() - t0 < EXCHANGE_WAIT_S * 5
    sender = threading.Timer(0.02, send, args=(link, 1, 0.5))
    sender.start()
    try:
        t0 = time.monotonic()
        up = link.exchange(down())
        waited = time.monotonic() - t0
    finally:
        sender.join()
    assert len(up.gradients) == 1 and waited < EXCHANGE_WAIT_S
    link.fail("ValueError: boom")
    assert link.exchange(down()).error == "ValueError: boom"


def test_a_gradient_buffer_is_never_reused_while_it_is_on_its_way():
    link = RayLink(0, (), numel=3)
    first = link.gradient_buffer()
    send(link, 1, 1.0)
    second = link.gradient_buffer()
    assert second is not None and not np.shares_memory(first, second)
