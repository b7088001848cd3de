"""Gradient packets from workers to the coordinator through shared memory, without copies through pickle.

Each worker owns `slots_per_worker` (default 2) slots, so it can fill the next packet while the coordinator
still reads the previous one. A slot is a 256-byte header (int64 words + 16 float64 metrics) followed by a
float32 payload of `numel` elements. Each slot has exactly one producer (its worker) and one consumer (the
coordinator), and the state word hands it over between them, so no lock or compare-and-swap is needed:

    EMPTY --worker claims--> WRITING --worker publishes--> READY --coordinator releases--> EMPTY

The worker writes payload, header and metrics, and stores READY last (one aligned int64 store); the
coordinator reads a slot only while it is READY and the worker never touches a READY slot, so the coordinator
never sees a torn packet (see `layout` for the memory-ordering assumption). Sequence numbers increase per
worker across its slots, so `poll()` can return a worker's packets oldest first.

A worker killed while WRITING leaves that slot WRITING forever; the coordinator reclaims it with
`reset_worker(i)` once it knows the worker is dead, and a worker attaching under the same id reclaims its own
WRITING slots (a replacement is only started after its predecessor is dead). Nothing ever waits on a slot
without a timeout, so a dead peer cannot deadlock the other side.

Coordinator packets are read-only *views* into the slot: accumulate from `packet.grad`, then `release()` it
(or use `with packet:`); `poll(copy=True)` copies and releases at once for callers that want to keep data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .base import ShmStruct
from .layout import LAYOUT_VERSION, PAGE, align, check_header, magic, view
from .segments import SegmentGroup
from .waiting import Backoff

EMPTY, WRITING, READY = 0, 1, 2
STATE_NAMES = {EMPTY: "EMPTY", WRITING: "WRITING", READY: "READY"}
DEFAULT_METRIC_NAMES: tuple[str, ...] = ("loss", "q_mean", "batch_size")
MAX_METRICS = 16

POOL_MAGIC = magic("MTUIGRDP")
SLOT_MAGIC = magic("MTUIGRDS")

# Pool header (int64 words at offset 0).
_P_MAGIC, _P_LAYOUT, _P_WORKERS, _P_SLOTS, _P_NUMEL, _P_METRICS, _P_STRIDE = range(7)
_POOL_HEADER_WORDS = 16
# Slot header: 16 int64 words, then MAX_METRICS float64 metrics, then the payload.
H_MAGIC, H_LAYOUT, H_STATE, H_SEQ, H_WEIGHTS_VERSION, H_NUMEL, H_WORKER, H_SLOT, H_TIME_NS, H_PID = range(10)
_SLOT_HEADER_WORDS = 16
_SLOT_HEADER_BYTES = _SLOT_HEADER_WORDS * 8 + MAX_METRICS * 8  # 256: payload stays 64-byte aligned
_SLOTS_OFFSET = PAGE


@dataclass(frozen=True)
class GradientPoolSpec:
    """What a worker needs to attach (picklable; send it through the spawn arguments)."""

    name: str
    num_workers: int
    numel: int
    metric_names: tuple[str, ...]
    slots_per_worker: int = 2

    @property
    def slot_stride(self) -> int:
        return align(_SLOT_HEADER_BYTES + self.numel * 4, PAGE)

    @property
    def size(self) -> int:
        return _SLOTS_OFFSET + self.num_workers * self.slots_per_worker * self.slot_stride

    @staticmethod
    def validate(num_workers: int, numel: int, metric_names: Sequence[str], slots_per_worker: int) -> None:
        if num_workers < 1 or numel < 1 or slots_per_worker < 1:
            raise ValueError("num_workers, numel and slots_per_worker must be >= 1")
        if len(metric_names) > MAX_METRICS:
            raise ValueError(f"at most {MAX_METRICS} metric names, got {len(metric_names)}")
        if len(set(metric_names)) != len(metric_names):
            raise ValueError(f"duplicate metric names in {tuple(metric_names)}")


@dataclass
class GradientPacket:
    """One published gradient, as the coordinator sees it.

    `grad` is a read-only view into shared memory, valid until `release()`; after that the worker may
    overwrite it. Packets from `poll(copy=True)` own a copy and are already released.
    """

    worker_id: int
    seq: int
    weights_version: int
    grad: np.ndarray
    metrics: dict[str, float]
    publish_time_ns: int
    writer_pid: int
    _pool: GradientPool | None = field(default=None, repr=False)
    _slot: int = field(default=-1, repr=False)

    @property
    def released(self) -> bool:
        return self._pool is None

    def release(self) -> None:
        """Hand the slot back to its worker. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._release(self._slot, self.seq)

    def __enter__(self) -> GradientPacket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Slots:
    """Numpy views over the slots of one pool mapping."""

    def __init__(self, buf: memoryview, spec: GradientPoolSpec) -> None:
        stride = spec.slot_stride
        n = spec.num_workers * spec.slots_per_worker
        self.pool_header = view(buf, np.int64, _POOL_HEADER_WORDS, 0)
        self.headers = [view(buf, np.int64, _SLOT_HEADER_WORDS, _SLOTS_OFFSET + i * stride) for i in range(n)]
        self.metrics = [
            view(buf, np.float64, MAX_METRICS, _SLOTS_OFFSET + i * stride + _SLOT_HEADER_WORDS * 8) for i in range(n)
        ]
        self.payloads = [
            view(buf, np.float32, spec.numel, _SLOTS_OFFSET + i * stride + _SLOT_HEADER_BYTES) for i in range(n)
        ]
        # Every slot's state word as one strided array: one vectorised compare finds the READY slots.
        self.states = view(buf, np.int64, (n,), _SLOTS_OFFSET + H_STATE * 8, strides=(stride,))


class GradientPool(ShmStruct):
    """Coordinator side: create the slots, poll READY packets, release them, reclaim a dead worker's slots."""

    def __init__(self) -> None:
        raise TypeError("use GradientPool.create(...) or GradientPool.attach(spec, worker_id)")

    @classmethod
    def create(
        cls,
        num_workers: int,
        numel: int,
        metric_names: Sequence[str] = DEFAULT_METRIC_NAMES,
        *,
        slots_per_worker: int = 2,
        owner: SegmentGroup | None = None,
    ) -> GradientPool:
        """Create the pool's segment (in `owner`, or a private one that `close()` unlinks)."""
        GradientPoolSpec.validate(num_workers, numel, metric_names, slots_per_worker)
        self = object.__new__(cls)
        probe = GradientPoolSpec("", num_workers, numel, tuple(metric_names), slots_per_worker)
        buf = self._init_created("grad", probe.size, owner)
        self.spec = GradientPoolSpec(self.segment_name, num_workers, numel, tuple(metric_names), slots_per_worker)
        s = self._slots = _Slots(buf, self.spec)
        s.pool_header[[_P_MAGIC, _P_LAYOUT, _P_WORKERS, _P_SLOTS, _P_NUMEL, _P_METRICS, _P_STRIDE]] = [
            POOL_MAGIC, LAYOUT_VERSION, num_workers, slots_per_worker, numel, len(metric_names), self.spec.slot_stride
        ]  # fmt: skip
        for i, h in enumerate(s.headers):
            h[[H_MAGIC, H_LAYOUT, H_NUMEL, H_WORKER, H_SLOT]] = [
                SLOT_MAGIC, LAYOUT_VERSION, numel, i // slots_per_worker, i % slots_per_worker
            ]  # fmt: skip
            s.metrics[i][:] = np.nan
        self._held: set[int] = set()
        self._read_only = [p.view() for p in s.payloads]
        for p in self._read_only:
            p.flags.writeable = False
        return self

    @staticmethod
    def attach(spec: GradientPoolSpec, worker_id: int) -> GradientWriter:
        """Worker side: map the pool and return the writer for `worker_id`'s slots."""
        return GradientWriter(spec, worker_id)

    def _drop_views(self) -> None:
        self._slots = None  # type: ignore[assignment]
        self._read_only = []

    # ------------------------------------------------------------------ coordinator API
    @property
    def num_workers(self) -> int:
        return self.spec.num_workers

    @property
    def numel(self) -> int:
        return self.spec.numel

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.spec.metric_names

    def poll(self, *, copy: bool = False, max_packets: int | None = None) -> list[GradientPacket]:
        """READY packets not yet handed out, oldest first (so by seq within a worker); never blocks.

        With `copy=False` each packet views its slot and must be `release()`d; with `copy=True` the payload
        is copied and the slot released before returning.
        """
        s = self._slots
        ready = np.flatnonzero(s.states == READY)
        if ready.size == 0:
            return []
        packets = []
        names = self.spec.metric_names
        for idx in ready.tolist():
            if idx in self._held:
                continue
            h = s.headers[idx]
            m = s.metrics[idx]
            packet = GradientPacket(
                worker_id=int(h[H_WORKER]),
                seq=int(h[H_SEQ]),
                weights_version=int(h[H_WEIGHTS_VERSION]),
                grad=self._read_only[idx],
                metrics={name: float(m[k]) for k, name in enumerate(names)},
                publish_time_ns=int(h[H_TIME_NS]),
                writer_pid=int(h[H_PID]),
                _pool=self,
                _slot=idx,
            )
            self._held.add(idx)
            packets.append(packet)
        # Oldest first across workers (monotonic clock is system-wide), hence by seq within a worker.
        packets.sort(key=lambda p: (p.publish_time_ns, p.worker_id, p.seq))
        if max_packets is not None:
            for extra in packets[max_packets:]:
                self._held.discard(extra._slot)  # not handed out: stays READY for the next poll
                extra._pool = None
            packets = packets[:max_packets]
        if copy:
            for p in packets:
                p.grad = p.grad.copy()
                p.release()
        return packets

    def wait(
        self, timeout: float | None = None, *, copy: bool = False, max_sleep: float = 1e-3
    ) -> list[GradientPacket]:
        """Like `poll`, but wait politely up to `timeout` s for at least one packet (returns [] on timeout).

        It yields, then sleeps up to `max_sleep` between polls: a packet can wait that long to be noticed,
        which is nothing next to a gradient's ~50 ms compute, and keeps an idle coordinator off the CPU.
        """
        backoff = Backoff(timeout, max_sleep=max_sleep)
        while True:
            packets = self.poll(copy=copy)
            if packets or not backoff.wait():
                return packets

    def _release(self, idx: int, seq: int) -> None:
        if idx not in self._held or self._slots is None:
            return
        self._held.discard(idx)
        h = self._slots.headers[idx]
        if int(h[H_STATE]) == READY and int(h[H_SEQ]) == seq:
            h[H_STATE] = EMPTY

    def reset_worker(self, worker_id: int) -> int:
        """Empty a dead worker's slots (WRITING ones it left behind, and unread READY ones); returns how many.

        Call only once worker `worker_id` is dead (or not yet started): emptying a slot a live worker is
        writing would let two writers share it. Slots whose packets the coordinator still holds are left for
        their `release()`. Sequence numbers are kept, so a replacement worker continues after them.
        """
        s = self._slots
        count = 0
        for idx in self._worker_slots(worker_id):
            if idx in self._held:
                continue
            h = s.headers[idx]
            if int(h[H_STATE]) != EMPTY:
                h[H_STATE] = EMPTY
                count += 1
        return count

    def slot_states(self, worker_id: int | None = None) -> np.ndarray:
        """A copy of the state words (all slots, or one worker's)."""
        states = self._slots.states.copy()
        if worker_id is None:
            return states
        return states[list(self._worker_slots(worker_id))]

    def _worker_slots(self, worker_id: int) -> range:
        if not 0 <= worker_id < self.spec.num_workers:
            raise IndexError(f"worker_id {worker_id} out of range 0..{self.spec.num_workers - 1}")
        k = self.spec.slots_per_worker
        return range(worker_id * k, worker_id * k + k)


class GradientWriter(ShmStruct):
    """Worker side: claim a free slot, fill it (in place or by copy), publish it.

    Two ways to fill a packet:
    - in place: `buf = writer.grad_buffer(zero=True)`, point the model's `.grad` tensors at slices of
      `torch.from_numpy(buf)`, run backward, then `publish(weights_version, metrics)`; call `grad_buffer()`
      again before the next backward, since the next packet may go to the other slot;
    - by copy: `write(flat_grad, weights_version, metrics)` (blocking) or `try_publish(..., flat_grad=...)`.
    After publishing, the buffer belongs to the coordinator until it releases it: do not write to it.
    """

    def __init__(self, spec: GradientPoolSpec, worker_id: int) -> None:
        if not 0 <= worker_id < spec.num_workers:
            raise IndexError(f"worker_id {worker_id} out of range 0..{spec.num_workers - 1}")
        buf = self._init_attached(spec.name)
        s = None
        try:
            s = _Slots(buf, spec)
            check_header(s.pool_header, POOL_MAGIC, f"gradient pool {spec.name}")
            got = tuple(int(x) for x in s.pool_header[[_P_WORKERS, _P_SLOTS, _P_NUMEL, _P_METRICS]])
            want = (spec.num_workers, spec.slots_per_worker, spec.numel, len(spec.metric_names))
            if got != want:
                raise ValueError(f"gradient pool {spec.name}: segment has {got}, spec says {want}")
        except BaseException:
            del s
            self.close()
            raise
        self.spec = spec
        self.worker_id = worker_id
        k = spec.slots_per_worker
        first = worker_id * k
        self._headers = s.headers[first : first + k]
        self._metrics = s.metrics[first : first + k]
        self._payloads = s.payloads[first : first + k]
        self._metric_index = {name: i for i, name in enumerate(spec.metric_names)}
        self._pid = os.getpid()
        self._claimed: int | None = None
        # A predecessor with this id is dead (a replacement starts only then): its WRITING slots are ours.
        for h in self._headers:
            if int(h[H_STATE]) == WRITING:
                h[H_STATE] = EMPTY
        self._seq = max(int(h[H_SEQ]) for h in self._headers)

    def _drop_views(self) -> None:
        self._headers = self._metrics = self._payloads = []

    @property
    def numel(self) -> int:
        return self.spec.numel

    @property
    def seq(self) -> int:
        """Sequence number of the last packet this worker id published."""
        return self._seq

    def free_slots(self) -> int:
        """How many of this worker's slots are EMPTY right now."""
        return sum(int(h[H_STATE]) == EMPTY for h in self._headers)

    def try_grad_buffer(self, *, zero: bool = False) -> np.ndarray | None:
        """The writable payload of a claimed slot (claiming an EMPTY one if needed); None if none is free."""
        if self._claimed is None:
            for k, h in enumerate(self._headers):
                if int(h[H_STATE]) == EMPTY:
                    h[H_PID] = self._pid
                    h[H_STATE] = WRITING
                    self._claimed = k
                    break
            else:
                return None
        buf = self._payloads[self._claimed]
        if zero:
            buf.fill(0.0)
        return buf

    def grad_buffer(self, *, zero: bool = False, timeout: float | None = None) -> np.ndarray:
        """Like `try_grad_buffer`, waiting politely up to `timeout` s for the coordinator to free a slot."""
        backoff = Backoff(timeout)
        while True:
            buf = self.try_grad_buffer(zero=zero)
            if buf is not None:
                return buf
            if not backoff.wait():
                raise TimeoutError(f"worker {self.worker_id}: no free gradient slot after {timeout} s")

    def try_publish(
        self, weights_version: int, metrics: Mapping[str, float] | None = None, flat_grad: np.ndarray | None = None
    ) -> bool:
        """Publish without waiting: the claimed buffer, or a copy of `flat_grad`. False if no slot is free."""
        if flat_grad is not None:
            self._check_size(flat_grad)
            buf = self.try_grad_buffer()
            if buf is None:
                return False
            np.copyto(buf, flat_grad.reshape(-1), casting="same_kind")
        elif self._claimed is None:
            raise RuntimeError("nothing to publish: call grad_buffer() first or pass flat_grad")
        self._publish(weights_version, metrics)
        return True

    def publish(
        self,
        weights_version: int,
        metrics: Mapping[str, float] | None = None,
        flat_grad: np.ndarray | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish, waiting up to `timeout` s for a free slot if `flat_grad` needs one (TimeoutError)."""
        if flat_grad is not None:
            self._check_size(flat_grad)
            buf = self.grad_buffer(timeout=timeout)
            np.copyto(buf, flat_grad.reshape(-1), casting="same_kind")
        elif self._claimed is None:
            raise RuntimeError("nothing to publish: call grad_buffer() first or pass flat_grad")
        self._publish(weights_version, metrics)

    def write(
        self,
        flat_grad: np.ndarray,
        weights_version: int,
        metrics: Mapping[str, float] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Copy `flat_grad` (numel float32 values) into a free slot and publish it."""
        self.publish(weights_version, metrics, flat_grad, timeout=timeout)

    def _check_size(self, flat_grad: np.ndarray) -> None:
        if flat_grad.size != self.spec.numel:  # np.copyto would silently broadcast a 1-element array
            raise ValueError(f"gradient has {flat_grad.size} elements, the pool {self.spec.numel}")

    def abandon(self) -> None:
        """Give back a claimed slot without publishing (e.g. the gradient came out NaN)."""
        if self._claimed is not None:
            self._headers[self._claimed][H_STATE] = EMPTY
            self._claimed = None

    def _publish(self, weights_version: int, metrics: Mapping[str, float] | None) -> None:
        k = self._claimed
        assert k is not None
        h = self._headers[k]
        m = self._metrics[k]
        m.fill(np.nan)
        if metrics:
            index = self._metric_index
            for name, value in metrics.items():
                try:
                    m[index[name]] = value
                except KeyError:
                    raise KeyError(f"unknown metric {name!r}; the pool has {self.spec.metric_names}") from None
        self._seq += 1
        h[H_SEQ] = self._seq
        h[H_WEIGHTS_VERSION] = weights_version
        h[H_TIME_NS] = time.monotonic_ns()
        h[H_STATE] = READY  # last: the coordinator may read the slot from now on
        self._claimed = None
