"""Live game frames for the UI: one 240x256x3 uint8 area per worker, each behind a seqlock.

A worker writes its frame only while the control block's `preview_worker` names it, so normally a single
184 KB copy per step happens across the whole run. The seqlock (seq odd while writing) lets the UI detect a
frame copied while it was being overwritten and retry; after a few failed tries it simply skips that refresh.
The frame `version` (how many frames worker i has written) lets the UI skip unchanged frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ShmStruct
from .layout import CACHE_LINE, LAYOUT_VERSION, PAGE, align, magic, view
from .segments import SegmentGroup
from .waiting import Backoff

FRAME_SHAPE = (240, 256, 3)
FRAME_BYTES = 240 * 256 * 3
PREVIEW_MAGIC = magic("MTUIPREV")
_HEADER_WORDS = 8
_F_SEQ, _F_VERSION = range(2)
_STRIDE = align(CACHE_LINE + FRAME_BYTES, PAGE)


@dataclass(frozen=True)
class PreviewSpec:
    name: str
    num_workers: int

    @property
    def size(self) -> int:
        return PAGE + self.num_workers * _STRIDE


class PreviewFrames(ShmStruct):
    """`write(i, frame)` from worker i, `read_if_newer(i, version, out)` from the UI."""

    def __init__(self) -> None:
        raise TypeError("use PreviewFrames.create(num_workers) or PreviewFrames.attach(spec)")

    @classmethod
    def create(cls, num_workers: int, *, owner: SegmentGroup | None = None) -> PreviewFrames:
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        self = object.__new__(cls)
        buf = self._init_created("preview", PreviewSpec("", num_workers).size, owner)
        self.spec = PreviewSpec(self.segment_name, num_workers)
        self._map(buf)
        self._header[:3] = [PREVIEW_MAGIC, LAYOUT_VERSION, num_workers]
        return self

    @classmethod
    def attach(cls, spec: PreviewSpec) -> PreviewFrames:
        return cls._attach_checked(spec, PREVIEW_MAGIC, "preview")

    def _map(self, buf: memoryview) -> None:
        n = self.spec.num_workers
        self._header = view(buf, np.int64, _HEADER_WORDS, 0)
        self._hdr = [view(buf, np.int64, 2, PAGE + i * _STRIDE) for i in range(n)]
        self._frames = [view(buf, np.uint8, FRAME_SHAPE, PAGE + i * _STRIDE + CACHE_LINE) for i in range(n)]

    def _drop_views(self) -> None:
        self._header = None  # type: ignore[assignment]
        self._hdr = self._frames = []

    @property
    def num_workers(self) -> int:
        return self.spec.num_workers

    def version(self, worker_id: int) -> int:
        """How many frames worker `worker_id` has written (0: none)."""
        return int(self._hdr[worker_id][_F_VERSION])

    def write(self, worker_id: int, frame: np.ndarray) -> int:
        """Copy an RGB frame (240x256x3 uint8) in; returns the new frame version. Worker `worker_id` only."""
        if frame.shape != FRAME_SHAPE:
            raise ValueError(f"frame must be {FRAME_SHAPE}, got {frame.shape}")
        hdr = self._hdr[worker_id]
        seq = int(hdr[_F_SEQ])
        hdr[_F_SEQ] = seq + 1
        np.copyto(self._frames[worker_id], frame, casting="same_kind")
        version = int(hdr[_F_VERSION]) + 1
        hdr[_F_VERSION] = version
        hdr[_F_SEQ] = seq + 2
        return version

    def read_if_newer(
        self, worker_id: int, current_version: int, out: np.ndarray | None = None, *, timeout: float = 0.02
    ) -> tuple[int, np.ndarray] | None:
        """(version, frame) if worker `worker_id` wrote a frame newer than `current_version`, else None.

        Also None if no untorn copy could be made within `timeout` s (the UI just tries next refresh).
        """
        if out is None:
            out = np.empty(FRAME_SHAPE, np.uint8)
        elif out.shape != FRAME_SHAPE or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 {FRAME_SHAPE}")
        hdr = self._hdr[worker_id]
        backoff = Backoff(timeout)
        while True:
            seq = int(hdr[_F_SEQ])
            if seq % 2 == 0:
                version = int(hdr[_F_VERSION])
                if version <= current_version:
                    return None
                np.copyto(out, self._frames[worker_id])
                if int(hdr[_F_SEQ]) == seq:
                    return version, out
            if not backoff.wait():
                return None
