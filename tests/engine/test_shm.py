"""Shared-memory transport: real segments, real processes (multiprocessing `spawn`, as the runtime uses).

Child targets are top-level functions of this module: `spawn` pickles them by reference and the child
imports `tests.engine.test_shm` (the project root is on sys.path, which spawn passes to the child).
Every test must leave no segment behind (`_no_leaked_segments`) and no process running (`spawn`).
"""

from __future__ import annotations

import fcntl
import gc
import multiprocessing as mp
import os
import pickle
import signal
import stat
import time
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mario_tui.engine.shm import (
    EMPTY,
    FRAME_SHAPE,
    READY,
    RING,
    WRITING,
    EpisodeReader,
    EpisodeRings,
    GradientPool,
    GradientPoolSpec,
    Heartbeats,
    PreviewFrames,
    RunState,
    RuntimeSegments,
    RuntimeSpec,
    SegmentGroup,
    WeightsBroadcast,
    WeightsSpec,
    WorkerCommand,
    WorkerState,
    WorkerStats,
    attach,
    cleanup_stale_segments,
    list_segments,
    make_segment_name,
    parse_segment_name,
    unlink_segment,
)
from mario_tui.engine.shm.segments import SHM_DIR, creator_alive, segment_locked, segment_stale

CTX = mp.get_context("spawn")
pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- fixtures
_SPAWNED_PIDS: set[int] = set()


def _ours(name: str) -> bool:
    """Made by this test process or a child it spawned (other runs on the machine create segments too)."""
    parsed = parse_segment_name(name)
    return parsed is not None and (parsed.pid == os.getpid() or parsed.pid in _SPAWNED_PIDS)


@pytest.fixture(autouse=True)
def _no_leaked_segments() -> Iterator[None]:
    before = set(list_segments())
    yield
    gc.collect()  # run finalizers of objects a failing test dropped
    leaked = sorted(n for n in set(list_segments()) - before if _ours(n))
    for name in leaked:  # clean up so one failure does not cascade
        unlink_segment(name)
    assert not leaked, f"test left shared memory segments behind: {leaked}"


@pytest.fixture
def spawn() -> Iterator[Callable[..., Any]]:
    """Start a daemon process with the spawn context; killed and joined at teardown, whatever happened."""
    procs: list[Any] = []

    def start(target: Callable[..., Any], *args: Any) -> Any:
        p = CTX.Process(target=target, args=args, daemon=True)
        p.start()
        procs.append(p)
        _SPAWNED_PIDS.add(p.pid)
        return p

    yield start
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def _join_ok(p: Any, timeout: float = 30.0) -> None:
    p.join(timeout)
    assert not p.is_alive(), "child process did not finish in time"
    assert p.exitcode == 0, f"child process failed with exit code {p.exitcode}"


# --------------------------------------------------------------------------- child processes
def _child_noop() -> None:
    """Exits at once (its pid then belongs to a dead process)."""


def _child_attach_and_exit(spec: RuntimeSpec) -> None:
    seg = attach(spec, 0)
    seg.beat()
    # deliberately no close(): exiting must not unlink anything either


def _child_hammer_slot(spec: GradientPoolSpec, count: int, seconds: float) -> None:
    """Publish up to `count` packets (for at most `seconds`) whose payload and metrics all equal their seq.

    The payload is filled in chunks with a yield in between (as a backward pass fills it over time), which
    widens the window in which a protocol bug would expose a half-written slot.
    """
    writer = GradientPool.attach(spec, 0)
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        seq = writer.seq + 1
        buf = writer.grad_buffer(timeout=20)
        for chunk in np.array_split(buf, 4):
            chunk.fill(float(seq))
            os.sched_yield()
        writer.publish(seq, {"loss": float(seq), "q_mean": -float(seq)})
    writer.close()


def _child_read_weights(spec: WeightsSpec, reads: Any, done: Any, results: Any) -> None:
    """Read until the writer is `done` and its last version is read, checking every copy; count `reads`.

    Reports the errors found through `results`.
    """
    weights = WeightsBroadcast.attach(spec)
    out = np.empty(spec.numel, np.float32)
    current, errors = 0, []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished = done.is_set()  # read before the version: then the loop ends only after the last one
        version = weights.read_if_newer(current, out)
        if version is None:
            if finished:
                break
            os.sched_yield()
            continue
        reads.value += 1
        if version <= current:
            errors.append(f"version went from {current} to {version}")
        if not (out.min() == out.max() == version):
            errors.append(f"torn copy for version {version}: min {out.min()} max {out.max()}")
        current = version
    if current != weights.version:
        errors.append(f"reader stopped at version {current} of {weights.version}")
    results.put(errors[:10])
    weights.close()


def _child_claim_and_hang(spec: GradientPoolSpec, worker_id: int, claimed: Any) -> None:
    """Claim a slot, write half of it, then hang until killed."""
    writer = GradientPool.attach(spec, worker_id)
    buf = writer.grad_buffer()
    buf[: buf.size // 2] = 7.0
    claimed.set()
    time.sleep(60)


def _child_worker_io(spec: RuntimeSpec, worker_id: int, results: Any) -> None:
    """One step of a worker's life: beat, read control, write stats and a preview frame."""
    seg = attach(spec, worker_id)
    seg.beat()
    commands = seg.control.take(worker_id)
    run_state = seg.control.run_state
    seg.stats.update(worker_id, pid=os.getpid(), state=WorkerState.PAUSED, steps=1234, x_pos=567, epsilon=0.25)
    if seg.wants_preview():
        frame = np.arange(np.prod(FRAME_SHAPE), dtype=np.uint64).reshape(FRAME_SHAPE).astype(np.uint8)
        seg.publish_frame(frame)
    results.put(([int(c) for c in commands], int(run_state)))
    seg.close()


# --------------------------------------------------------------------------- segments
def test_segments_private_unique_and_unlinked_on_close() -> None:
    names = {make_segment_name("x") for _ in range(1000)}
    assert len(names) == 1000
    group = SegmentGroup()
    shms = [group.create("grad", 4096) for _ in range(3)]
    assert len({s.name for s in shms}) == 3
    for shm in shms:
        parsed = parse_segment_name(shm.name)
        assert parsed is not None and parsed.pid == os.getpid() and parsed.kind == "grad"
        assert len(parsed.token) == 12
        st = os.stat(SHM_DIR / shm.name)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
    del shms
    group.close()
    group.close()  # idempotent
    for name in group.names:
        assert not (SHM_DIR / name).exists()
    with pytest.raises(RuntimeError):
        group.create("grad", 4096)


def test_segment_group_finalizer_unlinks_when_dropped() -> None:
    group = SegmentGroup()
    name = group.create("x", 4096).name
    assert (SHM_DIR / name).exists()
    del group
    gc.collect()
    assert not (SHM_DIR / name).exists()


def test_close_with_a_view_still_held_unlinks_and_keeps_view_valid() -> None:
    pool = GradientPool.create(1, 8, ("loss",))
    writer = GradientPool.attach(pool.spec, 0)
    writer.write(np.ones(8, np.float32), 1)
    packet = pool.poll()[0]
    name = pool.segment_name
    writer.close()
    pool.close()
    assert not (SHM_DIR / name).exists()
    assert packet.grad.sum() == 8.0  # the mapping lives as long as the view


def test_worker_attach_and_exit_does_not_unlink(spawn: Callable[..., Any]) -> None:
    with RuntimeSegments.create(2, 16) as rt:
        _join_ok(spawn(_child_attach_and_exit, rt.spec))
        for name in rt.spec.segment_names:
            assert (SHM_DIR / name).exists()
        assert rt.heartbeats.age(0) < 30
        names = rt.segment_names
        assert set(names) == set(rt.spec.segment_names)
    assert not any((SHM_DIR / n).exists() for n in names)


def test_cleanup_stale_segments_removes_only_dead_creators(spawn: Callable[..., Any]) -> None:
    child = spawn(_child_noop)
    _join_ok(child)
    dead_pid = child.pid
    assert not creator_alive(dead_pid)
    _SPAWNED_PIDS.add(dead_pid)  # its fake segment below must not survive the test either
    stale_name = make_segment_name("test", pid=dead_pid)
    stale = shared_memory.SharedMemory(name=stale_name, create=True, size=4096, track=False)
    stale.close()
    with SegmentGroup() as group:
        live_name = group.create("test", 4096).name
        assert segment_locked(live_name) and not segment_locked(stale_name)
        # A dead-looking pid whose lock is held (a live creator in another pid namespace) is left alone.
        fd = os.open(SHM_DIR / stale_name, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            assert stale_name not in cleanup_stale_segments()
            assert (SHM_DIR / stale_name).exists()
        finally:
            os.close(fd)
        removed = cleanup_stale_segments()
        assert stale_name in removed
        assert live_name not in removed
        assert not (SHM_DIR / stale_name).exists()
        assert (SHM_DIR / live_name).exists()
        assert not segment_stale(live_name)
    assert not segment_locked(live_name)


def test_pid_reuse_is_not_mistaken_for_the_creator() -> None:
    # This process is alive, but it started after a segment changed an hour ago: it cannot be its creator.
    assert creator_alive(os.getpid())
    assert not creator_alive(os.getpid(), segment_ctime=time.time() - 3600)
    assert creator_alive(os.getpid(), segment_ctime=time.time())


# --------------------------------------------------------------------------- gradient pool, one process
def test_gradient_pool_protocol_in_process() -> None:
    with GradientPool.create(2, 32, ("loss", "q_mean", "batch_size")) as pool:
        writer = GradientPool.attach(pool.spec, 1)
        assert pool.poll() == []
        buf = writer.grad_buffer(zero=True)
        assert buf.dtype == np.float32 and buf.shape == (32,) and buf.flags.writeable
        buf += 2.0
        assert pool.slot_states(1).tolist() == [WRITING, EMPTY]
        assert pool.poll() == []  # WRITING is invisible to the coordinator
        writer.publish(10, {"loss": 0.5, "batch_size": 32})
        writer.write(np.full(32, 3.0, np.float32), 11, {"q_mean": 1.0})
        assert writer.free_slots() == 0
        assert not writer.try_publish(12, flat_grad=np.zeros(32, np.float32))
        with pytest.raises(TimeoutError):
            writer.write(np.zeros(32, np.float32), 12, timeout=0.05)
        with pytest.raises(RuntimeError):
            writer.try_publish(12)  # nothing claimed, nothing to copy

        first, second = pool.poll()
        assert (first.worker_id, first.seq, first.weights_version) == (1, 1, 10)
        assert first.metrics["loss"] == 0.5 and first.metrics["batch_size"] == 32 and np.isnan(first.metrics["q_mean"])
        assert (second.seq, second.weights_version, second.metrics["q_mean"]) == (2, 11, 1.0)
        assert np.all(first.grad == 2.0) and np.all(second.grad == 3.0)
        assert first.writer_pid == os.getpid()
        with pytest.raises(ValueError):
            first.grad[0] = 1.0  # the coordinator's view is read-only
        assert pool.poll() == []  # held packets are not handed out twice
        first.release()
        first.release()  # idempotent
        assert writer.free_slots() == 1
        assert writer.try_publish(12, flat_grad=np.ones(32, np.float32))
        with second:
            pass
        (third,) = pool.poll(copy=True)
        assert third.released and third.seq == 3 and np.all(third.grad == 1.0)
        assert pool.slot_states().tolist() == [EMPTY] * 4

        with pytest.raises(KeyError):
            writer.write(np.zeros(32, np.float32), 13, {"no_such_metric": 1.0})
        writer.abandon()
        assert writer.free_slots() == 2
        writer.close()


def test_gradient_pool_validates_spec_and_sizes() -> None:
    with pytest.raises(ValueError):
        GradientPool.create(1, 8, tuple(f"m{i}" for i in range(17)))
    with pytest.raises(ValueError):
        GradientPool.create(1, 8, ("loss", "loss"))
    with GradientPool.create(1, 8) as pool:
        wrong = GradientPoolSpec(pool.spec.name, 1, 9, pool.spec.metric_names)
        with pytest.raises(ValueError):
            GradientPool.attach(wrong, 0)
        with pytest.raises(IndexError):
            GradientPool.attach(pool.spec, 1)
        assert pickle.loads(pickle.dumps(pool.spec)) == pool.spec
        writer = GradientPool.attach(pool.spec, 0)
        with pytest.raises(ValueError):
            writer.write(np.ones(1, np.float32), 1)  # would broadcast silently through np.copyto
        writer.close()


def test_control_commands_counted_and_runtime_defined() -> None:
    from mario_tui.engine.shm import ControlBlock

    with ControlBlock.create(2) as control:
        assert control.run_state == RunState.RUNNING and control.preview_worker == -1
        assert control.coordinator_pid == os.getpid()
        control.request(0, WorkerCommand.SAVE_REPLAY)
        control.request(0, 5)  # a number the protocol does not name is passed on as it is
        assert control.pending(0) == [WorkerCommand.SAVE_REPLAY, 5] and control.pending(1) == []
        assert control.take(0) == [WorkerCommand.SAVE_REPLAY, 5] and control.take(0) == []
        control.request(1, WorkerCommand.SYNC_WEIGHTS)
        control.clear_commands(1)
        assert control.take(1) == []
        with pytest.raises(ValueError):
            control.request(0, 8)
        with pytest.raises(IndexError):
            control.preview_worker = 2


def test_poll_max_packets_leaves_the_rest_ready() -> None:
    with GradientPool.create(3, 4) as pool:
        writers = [GradientPool.attach(pool.spec, i) for i in range(3)]
        for w in writers:
            w.write(np.full(4, w.worker_id, np.float32), 1)
        got = pool.poll(max_packets=2)
        assert len(got) == 2
        rest = pool.poll()
        assert len(rest) == 1
        assert sorted(p.worker_id for p in got + rest) == [0, 1, 2]
        for p in got + rest:
            p.release()
        for w in writers:
            w.close()


# --------------------------------------------------------------------------- across processes
def test_no_torn_gradient_packets(spawn: Callable[..., Any]) -> None:
    count, numel = 2000, 65_536
    with GradientPool.create(1, numel, ("loss", "q_mean")) as pool:
        child = spawn(_child_hammer_slot, pool.spec, count, 4.0)  # 2000 take ~1 s; less on a loaded box
        seen: list[int] = []
        polls = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            finished = not child.is_alive()  # read before polling: then the last poll sees every packet
            packets = pool.poll()
            if finished and not packets:
                break
            assert child.exitcode in (None, 0), f"writer failed with exit code {child.exitcode}"
            polls += 1
            for p in packets:
                head, tail = float(p.grad[0]), float(p.grad[-1])
                lo, hi = float(p.grad.min()), float(p.grad.max())
                os.sched_yield()  # give the writer a chance to (wrongly) touch a held slot
                assert lo == hi == head == tail == p.seq, f"torn packet seq {p.seq}: {lo}..{hi}"
                assert p.grad.min() == p.grad.max() == p.seq, f"packet seq {p.seq} changed while held"
                assert p.weights_version == p.seq and p.metrics == {"loss": p.seq, "q_mean": -p.seq}
                seen.append(p.seq)
                p.release()
            if not packets:
                os.sched_yield()
        _join_ok(child)
    assert polls >= 1000
    assert len(seen) >= 100, f"only {len(seen)} packets: the test did not exercise the protocol"
    assert seen == list(range(1, len(seen) + 1)), "packets lost, duplicated or out of order"


def test_weights_broadcast_consistent_and_monotonic(spawn: Callable[..., Any]) -> None:
    numel, wanted_reads = 65_536, 300
    with WeightsBroadcast.create(numel) as weights:
        assert weights.version == 0
        reads, done, results = CTX.Value("q", 0, lock=False), CTX.Event(), CTX.Queue()
        child = spawn(_child_read_weights, weights.spec, reads, done, results)
        payload = np.empty(numel, np.float32)
        v = 0
        deadline = time.monotonic() + 20
        # Publish back to back (racing the reader's copies) until it has made enough reads.
        while (reads.value < wanted_reads or v < 1000) and time.monotonic() < deadline:
            assert v % 256 or child.exitcode in (None, 0), f"reader failed with exit code {child.exitcode}"
            v += 1
            payload.fill(v)
            assert weights.publish(payload) == v
        done.set()
        errors = results.get(timeout=30)
        _join_ok(child)
    assert errors == []
    assert reads.value >= wanted_reads, f"only {reads.value} reads overlapped the writer"


def test_weights_broadcast_in_process_rules() -> None:
    with WeightsBroadcast.create(4) as weights:
        reader = WeightsBroadcast.attach(weights.spec)
        out = np.zeros(4, np.float32)
        assert reader.read_if_newer(0, out) is None
        assert weights.publish(np.arange(4, dtype=np.float32), version=5) == 5
        with pytest.raises(ValueError):
            weights.publish(np.zeros(4, np.float32), version=5)
        with pytest.raises(RuntimeError):
            reader.publish(np.zeros(4, np.float32))
        with pytest.raises(ValueError):
            reader.read_if_newer(0, np.zeros(3, np.float32))
        assert reader.read_if_newer(0, out) == 5 and out.tolist() == [0, 1, 2, 3]
        assert reader.read_if_newer(5, out) is None
        weights.publish(np.ones(4, np.float32))
        assert reader.version == 6 and reader.read_if_newer(5, out) == 6 and out.tolist() == [1] * 4
        reader.close()


def test_weights_reader_never_returns_a_buffer_being_written() -> None:
    # White-box: leave the current buffer's seqlock odd, as a writer that is mid-copy (or died there) would.
    from mario_tui.engine.shm import weights as weights_module

    with WeightsBroadcast.create(4) as weights:
        weights.publish(np.ones(4, np.float32))
        latest = int(weights._g[weights_module._G_LATEST])
        hdr = weights._hdr[latest]
        hdr[weights_module._B_SEQ] += 1
        out = np.zeros(4, np.float32)
        with pytest.raises(TimeoutError):
            weights.read_if_newer(0, out, timeout=0.05)
        hdr[weights_module._B_SEQ] += 1
        assert weights.read_if_newer(0, out) == 1 and out.tolist() == [1.0] * 4
        # A writer that dies mid-publish leaves the *other* buffer odd: readers keep the last good version.
        weights._hdr[1 - latest][weights_module._B_SEQ] += 1
        assert weights.read_if_newer(0, out) == 1


def test_worker_killed_mid_write_is_reclaimed(spawn: Callable[..., Any]) -> None:
    with GradientPool.create(2, 1024) as pool:
        for reclaim_by in ("reset_worker", "attach"):
            claimed = CTX.Event()
            child = spawn(_child_claim_and_hang, pool.spec, 1, claimed)
            assert claimed.wait(20), "child never claimed a slot"
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            assert child.exitcode == -signal.SIGKILL
            assert WRITING in pool.slot_states(1).tolist()
            assert pool.poll() == []  # a half-written slot is never handed out
            if reclaim_by == "reset_worker":
                assert pool.reset_worker(1) == 1
                assert pool.slot_states(1).tolist() == [EMPTY, EMPTY]
            writer = GradientPool.attach(pool.spec, 1)  # a replacement worker; reclaims its WRITING slots
            assert writer.free_slots() == 2
            writer.write(np.full(1024, 5.0, np.float32), 1)
            writer.write(np.full(1024, 6.0, np.float32), 2)
            packets = pool.poll()
            assert [(p.worker_id, float(p.grad[0])) for p in packets] == [(1, 5.0), (1, 6.0)]
            assert packets[0].seq < packets[1].seq
            for p in packets:
                p.release()
            writer.close()
        assert pool.slot_states().tolist() == [EMPTY] * 4


def test_reset_worker_leaves_held_packets_alone() -> None:
    with GradientPool.create(1, 8) as pool:
        writer = GradientPool.attach(pool.spec, 0)
        writer.write(np.ones(8, np.float32), 1)
        writer.grad_buffer()  # second slot WRITING
        (held,) = pool.poll()
        assert pool.reset_worker(0) == 1  # only the WRITING one
        assert pool.slot_states(0).tolist().count(READY) == 1
        held.release()
        assert pool.slot_states(0).tolist() == [EMPTY, EMPTY]
        writer.close()


def test_heartbeats_stats_control_preview_across_processes(spawn: Callable[..., Any]) -> None:
    with RuntimeSegments.create(2, 8) as rt:
        rt.control.run_state = RunState.PAUSED
        rt.control.preview_worker = 1
        rt.control.request(1, WorkerCommand.SYNC_WEIGHTS)
        rt.control.request(1, WorkerCommand.SAVE_REPLAY)
        old = rt.heartbeats.last(1)
        results = CTX.Queue()
        child = spawn(_child_worker_io, rt.spec, 1, results)
        commands, run_state = results.get(timeout=30)
        _join_ok(child)

        assert commands == [WorkerCommand.SYNC_WEIGHTS, WorkerCommand.SAVE_REPLAY]
        assert run_state == RunState.PAUSED
        assert rt.control.pending(1) == []
        assert rt.heartbeats.last(1) > old and rt.heartbeats.age(1) < 30
        ages = rt.heartbeats.ages()
        assert ages.shape == (2,) and ages[1] <= ages[0]

        snap = rt.stats.snapshot()
        assert snap["pid"][1] == child.pid and rt.stats.state(1) is WorkerState.PAUSED
        assert (snap["steps"][1], snap["x_pos"][1], snap["epsilon"][1]) == (1234, 567, 0.25)
        assert snap["frame_version"][1] == 1 and snap["frame_version"][0] == 0
        assert snap["steps"][0] == 0
        snap["steps"][1] = -1  # a copy, not a view
        assert rt.stats.record(1)["steps"] == 1234

        got = rt.previews.read_if_newer(1, 0)
        assert got is not None
        version, frame = got
        expected = np.arange(np.prod(FRAME_SHAPE), dtype=np.uint64).reshape(FRAME_SHAPE).astype(np.uint8)
        assert version == 1 and np.array_equal(frame, expected)
        assert rt.previews.read_if_newer(1, 1) is None
        assert rt.previews.read_if_newer(0, 0) is None


def test_stats_and_preview_in_process_rules() -> None:
    group = SegmentGroup()
    try:
        stats = WorkerStats.create(2, owner=group)
        stats.update(0, steps=3)
        stats.increment(0, steps=2, episodes=1)
        assert stats.record(0)["steps"] == 5 and stats.record(0)["episodes"] == 1
        with pytest.raises(KeyError):
            stats.update(0, no_such_field=1)
        with pytest.raises(IndexError):
            stats.update(2, steps=1)
        previews = PreviewFrames.create(1, owner=group)
        with pytest.raises(ValueError):
            previews.write(0, np.zeros((84, 84, 3), np.uint8))
        beats = Heartbeats.create(1, owner=group)
        beats.beat(0, t=time.monotonic() - 10)
        assert 9 < beats.age(0) < 20
        for part in (stats, previews, beats):
            part.close()
    finally:
        group.close()


def test_runtime_spec_is_small_and_picklable() -> None:
    with RuntimeSegments.create(4, 1000, ("loss", "q_mean", "batch_size", "td_error")) as rt:
        blob = pickle.dumps(rt.spec)
        assert len(blob) < 2000
        spec = pickle.loads(blob)
        assert spec == rt.spec and spec.metric_names == ("loss", "q_mean", "batch_size", "td_error")
        assert len(rt.segment_names) == 7  # no target network asked for: no targets broadcast
        seg = attach(spec, 3)
        seg.gradients.write(np.zeros(1000, np.float32), 0, {"td_error": 2.0})
        (p,) = rt.gradients.poll(copy=True)
        assert p.worker_id == 3 and p.metrics["td_error"] == 2.0
        seg.close()
        seg.close()
        with pytest.raises(IndexError):
            attach(spec, 4)
    assert rt.closed
    assert not any(Path(SHM_DIR / n).exists() for n in rt.spec.segment_names)


# --------------------------------------------------------------------------- episode stream
def _append_episodes(rings: EpisodeRings, worker_id: int, first: int, count: int) -> None:
    for k in range(first, first + count):
        rings.append(worker_id, reward=float(k), x_pos=k, length=k + 1, flag=k % 7 == 0, world=1, stage=1)


def test_episode_stream_counts_every_episode_and_keeps_their_order() -> None:
    with EpisodeRings.create(2) as rings:
        reader = EpisodeReader(rings)
        _append_episodes(rings, 1, 0, 3)  # three episodes end between two polls
        batch = reader.read_new()
        assert [(e.worker_id, e.x_pos, e.length, e.flag) for e in batch.episodes] == [
            (1, 0, 1, True), (1, 1, 2, False), (1, 2, 3, False)]
        assert batch.lost == 0 and reader.read_new().episodes == []
        _append_episodes(rings, 0, 100, RING + 5)  # the reader fell more than a ring behind
        batch = reader.read_new()
        assert batch.lost == 5 and [e.x_pos for e in batch.episodes] == list(range(105, 100 + RING + 5))
        # a restarted worker attaches and continues its predecessor's count: nothing is read twice
        again = EpisodeRings.attach(rings.spec)
        _append_episodes(again, 0, 500, 1)
        again.close()
        assert [e.x_pos for e in reader.read_new().episodes] == [500]


def _child_append_episodes(spec: Any, count: int) -> None:
    rings = EpisodeRings.attach(spec)
    for k in range(count):
        _append_episodes(rings, 0, k, 1)
        if k % 16 == 0:
            time.sleep(0.001)
    rings.close()


def test_episode_stream_across_processes_loses_no_count(spawn: Callable[..., Any]) -> None:
    """A writer process appending faster than the reader polls: every episode is counted, none twice, in order."""
    total = 3 * RING
    with EpisodeRings.create(1) as rings:
        reader = EpisodeReader(rings)
        child = spawn(_child_append_episodes, rings.spec, total)
        seen: list[int] = []
        lost = 0
        deadline = time.monotonic() + 30
        while len(seen) + lost < total and time.monotonic() < deadline:
            batch = reader.read_new()
            assert all(e.reward == e.x_pos and e.length == e.x_pos + 1 for e in batch.episodes)  # no torn record
            seen += [e.x_pos for e in batch.episodes]
            lost += batch.lost
            time.sleep(0.002)
        _join_ok(child)
        assert len(seen) + lost == total
        assert seen == sorted(set(seen)) and all(0 <= x < total for x in seen)
