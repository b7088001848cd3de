"""Garbage collection paced by the app instead of by allocation counts, so it never stalls a key press.

Measured on the 2-core box with a run live (`benchmarks/bench_app_overhead.py`, gc callbacks): torch + Textual
leave ~500k long-lived objects, and Textual makes ~7k objects of cyclic garbage a second (every `Strip` carries
seven caches, some holding the strip itself). Python's own schedule then ran a full collection every ~4 s that
walked everything and held the event loop and the GIL for 0.2–0.5 s: the slowest key presses. So the app
1. freezes (`gc.freeze`) what is alive once the app and the run are built: modules, widgets, the model; those are
   never garbage, and a frozen object is no longer walked;
2. turns off automatic full collections and runs one every `period` seconds from a timer. Young generations still
   collect on allocation as usual. A full pass walks every live unfrozen object and frees the ~1k objects/s of
   garbage that reached the old generation. Its length is what a key press can wait, so it must stay short:
   - what it walks must stay small: render caches that kept stale renders (DataTable's, Log's) and two Textual
     leaks (`textual_fixes.py`) made the unfrozen heap grow 200-400 objects/s to 30-55k, and passes of 100-280 ms
     wall. With those fixed it stays at 10-15k objects with the run live;
   - it frees what reached the old generation since the last pass: every 10 s that made passes of 27-151 ms wall
     (12-75 ms CPU, before the leak fixes; the rest is waiting for a core beside 2 workers and the coordinator);
     every 2 s, with them, 18 ms median, p95 68 ms, max 82 ms wall, ~4.5 ms of CPU a second with the run live.
     Hence 2 s.
   No passes while a run is being built (`held()`): each walked its 100-200k new objects (68-155 ms).
`stop()` puts Python's thresholds back and unfreezes, so a test process or an embedding program is left as it was.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

NO_AUTOMATIC_FULL_COLLECTIONS = 1_000_000  # generation-2 threshold (collections of generation 1 in between)


class PacedCollector:
    """Owns the interpreter's GC settings between `start()` and `stop()`; call `tick()` every `period` seconds."""

    period: float = 2.0

    def __init__(self) -> None:
        self._saved: tuple[int, ...] | None = None
        self.last_ms = 0.0
        self.max_ms = 0.0
        self._held = 0

    @property
    def active(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        young, middle = self._saved[0], self._saved[1]
        gc.set_threshold(young, middle, NO_AUTOMATIC_FULL_COLLECTIONS)
        self.freeze()

    def freeze(self) -> None:
        """Collect, then exempt everything alive from future collections (call again after building big things).

        `max_ms` restarts: it tells how long the paced passes are over what is alive now (a pass made while a run
        was being built, before its freeze, walked the whole new model once)."""
        gc.collect()
        gc.freeze()
        self.max_ms = 0.0

    @contextmanager
    def held(self) -> Iterator[None]:
        """No paced passes inside (ticks are skipped): for building something big that is frozen right after.

        A run being built makes 100-200k objects that will live as long as it does; every pass meanwhile walks all
        of them (measured 68-155 ms each, every 2 s), only for the freeze that follows to walk them once more."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def tick(self) -> None:
        """One full collection of what is not frozen: the garbage made since the last tick."""
        if self._saved is None or self._held:
            return
        started = time.perf_counter()
        gc.collect(2)
        self.last_ms = (time.perf_counter() - started) * 1e3
        self.max_ms = max(self.max_ms, self.last_ms)

    def stop(self) -> None:
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()
