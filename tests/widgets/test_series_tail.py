"""The dashboard's incremental reading of a run's capped histories (deques the coordinator appends to)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from mario_tui.widgets.series_tail import SeriesTail, metric_value


def test_series_tail_reads_only_new_items_and_follows_a_capped_deque():
    history: deque[dict[str, float]] = deque(maxlen=5)
    tail = SeriesTail("updates", {"updates": lambda r: r["updates"], "loss": lambda r: metric_value(r, key="loss")})
    tail.update(history)
    assert tail.version == 0 and tail.column("updates").size == 0
    for i in range(3):
        history.append({"updates": i, "loss": 10.0 - i})
    history.append({"updates": 3})  # a row without the metric: NaN, not an error
    tail.update(history)
    assert tail.version == 1
    assert tail.column("updates").tolist() == [0, 1, 2, 3]
    assert np.isnan(tail.column("loss")[-1]) and tail.column("loss")[:3].tolist() == [10, 9, 8]
    tail.update(history)
    assert tail.version == 1  # nothing new
    history.append({"updates": 4, "loss": 6.0})
    tail.update(history)
    assert tail.column("updates").tolist() == [0, 1, 2, 3, 4]  # kept beyond the deque's window, up to `cap`
    for i in range(5, 12):  # more than the deque holds: the last item seen is gone, so it starts over
        history.append({"updates": i, "loss": 1.0})
    tail.update(history)
    assert tail.column("updates").tolist() == [7, 8, 9, 10, 11]


def test_series_tail_keeps_order_while_another_thread_appends():
    history: deque[int] = deque(maxlen=100_000)
    tail = SeriesTail("x", {"x": float}, cap=100_000)
    done = threading.Event()

    def writer() -> None:
        for i in range(50_000):
            history.append(i)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        tail.update(history)
    thread.join()
    tail.update(history)
    assert np.array_equal(tail.column("x"), np.arange(50_000))
