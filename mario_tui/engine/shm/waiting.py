"""Polite waiting for another process: a few `sched_yield`s, then short sleeps that grow.

Spin-polling is only fast while a core is free; with more runnable processes than cores a spinning waiter
steals the time slice of the very process it waits for (measured: round trip 0.7 ms -> ~8 ms). Yielding first
keeps latency low when the other side is nearly done; sleeping bounds the CPU burnt while it is not.
"""

from __future__ import annotations

import os
import time


class Backoff:
    """Call `wait()` in a retry loop; it returns False once `timeout` seconds (None: never) have passed."""

    __slots__ = ("_deadline", "_sleep", "_yields", "max_sleep")

    def __init__(
        self, timeout: float | None = None, *, yields: int = 16, min_sleep: float = 20e-6, max_sleep: float = 1e-3
    ) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._yields = yields
        self._sleep = min_sleep
        self.max_sleep = max_sleep

    def expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def wait(self) -> bool:
        """Give the CPU away for a moment; False if the deadline has passed."""
        if self.expired():
            return False
        if self._yields > 0:
            self._yields -= 1
            os.sched_yield()
            return True
        time.sleep(self._sleep)
        self._sleep = min(self._sleep * 2, self.max_sleep)
        return True
