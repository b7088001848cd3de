"""The app's paced garbage collection: no automatic full collections while active, cycles still freed on tick,
and the interpreter's settings restored afterwards."""

from __future__ import annotations

import gc
import weakref

from mario_tui.gc_pacing import NO_AUTOMATIC_FULL_COLLECTIONS, PacedCollector


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


def test_paced_collector_freezes_collects_on_tick_and_restores():
    before = gc.get_threshold()
    collector = PacedCollector()
    collector.start()
    try:
        assert collector.active
        assert gc.get_threshold()[2] == NO_AUTOMATIC_FULL_COLLECTIONS
        assert gc.get_threshold()[:2] == before[:2]  # young generations keep Python's schedule
        assert gc.get_freeze_count() > 0
        frozen = Node()
        collector.freeze()  # now part of the frozen heap: survives even once unreachable
        frozen_ref = weakref.ref(frozen)
        del frozen
        garbage = Node()
        garbage_ref = weakref.ref(garbage)
        del garbage
        collector.tick()
        assert garbage_ref() is None  # the tick's full collection freed the cycle
        assert frozen_ref() is not None
        assert collector.last_ms > 0 and collector.max_ms >= collector.last_ms
    finally:
        collector.stop()
    assert not collector.active
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert frozen_ref() is None  # unfrozen again: collectable


def test_stop_and_tick_without_start_are_harmless():
    before = gc.get_threshold()
    collector = PacedCollector()
    collector.tick()
    collector.stop()
    assert gc.get_threshold() == before


def test_ticks_are_skipped_while_held_and_resume_after():
    collector = PacedCollector()
    collector.start()
    gc.disable()  # no automatic young collection may free the cycle behind the test's back
    try:
        garbage = Node()
        garbage_ref = weakref.ref(garbage)
        del garbage
        with collector.held():
            collector.tick()
            assert garbage_ref() is not None  # held: no pass
        collector.tick()
        assert garbage_ref() is None
    finally:
        gc.enable()
        collector.stop()
