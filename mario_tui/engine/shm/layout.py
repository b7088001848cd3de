"""Byte layout helpers shared by the shared-memory structures.

Memory-ordering assumption (documented once, relied on everywhere): every flag, sequence number and version
word is an 8-byte-aligned int64 written with a single numpy scalar store, *after* the data it guards, and
read with a single load *before* that data. On x86-64 (TSO) stores become visible in program order and loads
are not reordered with older loads, so a reader that sees the flag also sees the data; glibc's large memcpy
ends its non-temporal stores with an sfence. Each numpy call is an opaque C call, so the compiler cannot
reorder across them either. On weakly ordered CPUs (ARM) this would need explicit fences, which CPython
cannot issue; the torn-read tests would catch a failure there.
"""

from __future__ import annotations

import numpy as np

CACHE_LINE = 64
PAGE = 4096
LAYOUT_VERSION = 2


def align(n: int, to: int = CACHE_LINE) -> int:
    """Round `n` up to a multiple of `to`."""
    return (n + to - 1) // to * to


def magic(tag: str) -> int:
    """An int64 magic number from an 8-character ASCII tag (e.g. 'MTUIGRAD')."""
    raw = tag.encode("ascii")
    if len(raw) != 8:
        raise ValueError("magic tags are 8 ASCII characters")
    return int.from_bytes(raw, "little", signed=True)


def view(
    buf: memoryview,
    dtype: np.dtype | type,
    shape: int | tuple[int, ...],
    offset: int,
    strides: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A numpy array over `buf` at byte `offset` (no copy) that keeps the mapping alive.

    `np.ndarray(buffer=memoryview)` releases its buffer export at once and only keeps a reference, so a
    later `SharedMemory.close()` would unmap memory the array still points to (a segfault on next use).
    Going through `np.asarray(memoryview)` keeps an export for as long as any derived array lives, so
    `close()` raises BufferError instead and `segments.close_segment` leaves the unmapping to the last view.
    """
    return np.ndarray(shape, dtype=dtype, buffer=np.asarray(buf), offset=offset, strides=strides)


def check_header(header: np.ndarray, expected_magic: int, what: str) -> None:
    """Refuse to attach to a segment of another kind or layout version."""
    if int(header[0]) != expected_magic:
        raise ValueError(f"{what}: bad magic {int(header[0]):#x}, not a segment of this kind")
    if int(header[1]) != LAYOUT_VERSION:
        raise ValueError(f"{what}: layout version {int(header[1])}, this code reads {LAYOUT_VERSION}")
