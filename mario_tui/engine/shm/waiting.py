"""Polite waiting for another process: `sched_yield` for a short while, then short sleeps that grow.

Spin-polling is only fast while a core is free; with more runnable processes than cores a spinning waiter
steals the time slice of the very process it waits for (measured: round trip 0.7 ms -> ~8 ms). `sched_yield`
hands the core to any other runnable process at once, and costs well under a microsecond when there is none,
so yielding for a short window keeps latency low when the other side is nearly done; after that, sleeps
(growing to `max_sleep`) bound both the CPU burnt and the extra latency while it is not.
"""

from __future__ import annotations

import os
import time


class Backoff:
    """Call `wait()` in a retry loop; it returns False once `timeout` seconds (None: never) have passed."""

    __slots__ = ("_deadline", "_sleep", "_yield_until", "max_sleep")

    def __init__(
        self,
        timeout: float | None = None,
        *,
        yield_for: float = 200e-6,
        min_sleep: float = 50e-6,
        max_sleep: float = 1e-3,
    ) -> None:
        now = time.monotonic()
        self._deadline = None if timeout is None else now + timeout
        self._yield_until = now + yield_for
        self._sleep = min_sleep
        self.max_sleep = max_sleep

    def expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def wait(self) -> bool:
        """Give the CPU away for a moment; False if the deadline has passed."""
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            return False
        if now < self._yield_until:
            os.sched_yield()
            return True
        time.sleep(self._sleep)
        self._sleep = min(self._sleep * 2, self.max_sleep)
        return True
