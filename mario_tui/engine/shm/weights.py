"""Coordinator-to-workers weight broadcast: one writer, any number of readers, no locks.

Two buffers, each guarded by its own seqlock (seq odd while being written, even when stable). The writer
always fills the buffer readers are *not* directed to, then points `latest` at it and bumps the global
version. A reader copies the latest buffer and keeps the copy only if that buffer's seq was even and
unchanged across the copy; otherwise it retries. With two buffers a reader is disturbed only if the writer
publishes twice during one copy, and the writer never waits for readers. Versions start at 0 (= nothing
published yet) and increase with every publish. See `layout` for the memory-ordering assumption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ShmStruct
from .layout import CACHE_LINE, LAYOUT_VERSION, PAGE, align, check_header, magic, view
from .segments import SegmentGroup
from .waiting import Backoff

WEIGHTS_MAGIC = magic("MTUIWGHT")
_G_MAGIC, _G_LAYOUT, _G_NUMEL, _G_LATEST, _G_VERSION = range(5)
_B_SEQ, _B_VERSION = range(2)
_BUFFERS = 2


@dataclass(frozen=True)
class WeightsSpec:
    """What a reader needs to attach (picklable)."""

    name: str
    numel: int

    @property
    def buffer_stride(self) -> int:
        return align(CACHE_LINE + self.numel * 4, PAGE)

    @property
    def size(self) -> int:
        return PAGE + _BUFFERS * self.buffer_stride


class WeightsBroadcast(ShmStruct):
    """Flattened float32 parameters with a version; `publish` on the creator, `read_if_newer` anywhere."""

    def __init__(self) -> None:
        raise TypeError("use WeightsBroadcast.create(numel) or WeightsBroadcast.attach(spec)")

    @classmethod
    def create(cls, numel: int, *, owner: SegmentGroup | None = None) -> WeightsBroadcast:
        """Create the segment (in `owner`, or a private one that `close()` unlinks). Only this object publishes."""
        if numel < 1:
            raise ValueError("numel must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("weights", WeightsSpec("", numel).size, owner)
        self.spec = WeightsSpec(self.segment_name, numel)
        self._map(buf)
        self._g[[_G_MAGIC, _G_LAYOUT, _G_NUMEL, _G_LATEST, _G_VERSION]] = [WEIGHTS_MAGIC, LAYOUT_VERSION, numel, -1, 0]
        self._writer = True
        return self

    @classmethod
    def attach(cls, spec: WeightsSpec) -> WeightsBroadcast:
        """Map an existing broadcast for reading."""
        self = object.__new__(cls)
        buf = self._init_attached(spec.name)
        self.spec = spec
        self._map(buf)
        try:
            check_header(self._g, WEIGHTS_MAGIC, f"weights {spec.name}")
            if int(self._g[_G_NUMEL]) != spec.numel:
                raise ValueError(f"weights {spec.name}: segment numel {int(self._g[_G_NUMEL])} != spec {spec.numel}")
        except BaseException:
            self.close()
            raise
        self._writer = False
        return self

    def _map(self, buf: memoryview) -> None:
        stride = self.spec.buffer_stride
        self._g = view(buf, np.int64, 8, 0)
        self._hdr = [view(buf, np.int64, 2, PAGE + b * stride) for b in range(_BUFFERS)]
        self._data = [view(buf, np.float32, self.spec.numel, PAGE + b * stride + CACHE_LINE) for b in range(_BUFFERS)]

    def _drop_views(self) -> None:
        self._g = None  # type: ignore[assignment]
        self._hdr = self._data = []

    @property
    def numel(self) -> int:
        return self.spec.numel

    @property
    def version(self) -> int:
        """Latest published version (0: none yet). One load: cheap enough to check every step."""
        return int(self._g[_G_VERSION])

    def publish(self, params: np.ndarray, version: int | None = None) -> int:
        """Copy `params` (numel float32 values) into the idle buffer and make it current; returns its version."""
        if not self._writer:
            raise RuntimeError("only the process that created the broadcast publishes")
        if params.size != self.spec.numel:
            raise ValueError(f"params have {params.size} elements, the broadcast {self.spec.numel}")
        current = int(self._g[_G_VERSION])
        version = current + 1 if version is None else int(version)
        if version <= current:
            raise ValueError(f"version must increase: {version} <= {current}")
        latest = int(self._g[_G_LATEST])
        b = 0 if latest < 0 else 1 - latest
        hdr = self._hdr[b]
        seq = int(hdr[_B_SEQ])
        hdr[_B_SEQ] = seq + 1  # odd: readers of this buffer will retry
        np.copyto(self._data[b], params.reshape(-1), casting="same_kind")
        hdr[_B_VERSION] = version
        hdr[_B_SEQ] = seq + 2  # even: stable
        self._g[_G_LATEST] = b
        self._g[_G_VERSION] = version  # last: `version` readers then find `latest` already updated
        return version

    def read_if_newer(self, current_version: int, out: np.ndarray, *, timeout: float = 5.0) -> int | None:
        """Copy the latest weights into `out` if their version is newer than `current_version`.

        Returns the version copied, or None if nothing newer is published (`out` untouched). A copy raced by
        a publish is redone, so a returned version always matches `out` exactly. On TimeoutError (no
        consistent copy within `timeout` s: publishes kept coming faster than one copy) `out` may be partial.
        """
        if out.dtype != np.float32 or out.size != self.spec.numel or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 with {self.spec.numel} elements")
        flat = out.reshape(-1)
        backoff = Backoff(timeout)
        while True:
            if int(self._g[_G_VERSION]) <= current_version:
                return None
            b = int(self._g[_G_LATEST])
            hdr = self._hdr[b]
            seq = int(hdr[_B_SEQ])
            if seq % 2 == 0:
                version = int(hdr[_B_VERSION])
                if version <= current_version:
                    return None
                np.copyto(flat, self._data[b])
                if int(hdr[_B_SEQ]) == seq:
                    return version
            if not backoff.wait():
                raise TimeoutError(f"no consistent weights copy within {timeout} s")
