"""Garbage collection paced by the app instead of by allocation counts, so it never stalls a key press.

Measured on the 2-core box with a run live (`benchmarks/bench_app_overhead.py`, gc callbacks): torch + Textual
leave ~500k long-lived objects, and Textual makes ~7k objects of cyclic garbage a second (every `Strip` carries
seven caches, some holding the strip itself). Python's own schedule then ran a full collection every ~4 s that
walked everything and held the event loop and the GIL for 0.2–0.5 s: the slowest key presses. So the app
1. freezes (`gc.freeze`) what is alive once the app and the run are built: modules, widgets, the model; those are
   never garbage, and a frozen object is no longer walked;
2. turns off automatic full collections and runs one every `period` seconds from a timer. Young generations still
   collect on allocation as usual. A full pass walks every live unfrozen object and frees the ~1k objects/s of
   garbage that reached the old generation. Measured with a run live (wall / CPU per pass, the box contended):
   every 2 s 10–32 / 5–13 ms (~4.5 ms/s of CPU); every 10 s 13–93 / 9–55 ms over the first minutes; every 30 s
   70–190 ms wall. Hence 10 s. What a pass walks must stay small too: render caches that keep stale renders
   (DataTable's, Log's) made the unfrozen heap grow ~200 objects/s to 55k and passes of 100–210 ms; the dashboard's
   `WorkerTable` keeps none and `RunLog` 256 lines, and over 90 s live the heap stayed at 7–11k objects.
`stop()` puts Python's thresholds back and unfreezes, so a test process or an embedding program is left as it was.
"""

from __future__ import annotations

import gc
import time

NO_AUTOMATIC_FULL_COLLECTIONS = 1_000_000  # generation-2 threshold (collections of generation 1 in between)


class PacedCollector:
    """Owns the interpreter's GC settings between `start()` and `stop()`; call `tick()` every `period` seconds."""

    period: float = 2.0

    def __init__(self) -> None:
        self._saved: tuple[int, ...] | None = None
        self.last_ms = 0.0
        self.max_ms = 0.0

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

    def tick(self) -> None:
        """One full collection of what is not frozen: the garbage made since the last tick."""
        if self._saved is None:
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
