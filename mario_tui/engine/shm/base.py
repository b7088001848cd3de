"""Common life cycle of a structure that lives in one shared-memory segment.

The creator ("owner" side) may share a `SegmentGroup` with other structures of the run, or get a private
one that its `close()` unlinks; the attaching side only maps and unmaps, never unlinks.
"""

from __future__ import annotations

import contextlib
from multiprocessing import shared_memory
from typing import Any

from .layout import check_header
from .segments import SegmentGroup, attach_segment, close_segment


class ShmStruct:
    """Holds the mapping; subclasses build numpy views over `self._shm.buf` and drop them in `_drop_views`."""

    _shm: shared_memory.SharedMemory | None = None
    _owner: SegmentGroup | None = None
    _private_owner = False

    def _init_created(self, kind: str, size: int, owner: SegmentGroup | None) -> memoryview:
        """Create this structure's segment (in `owner`, or a private group) and return its buffer."""
        self._private_owner = owner is None
        self._owner = SegmentGroup() if owner is None else owner
        self._shm = self._owner.create(kind, size)
        return self._shm.buf

    @classmethod
    def _attach_checked(cls, spec: Any, magic_word: int, what: str, header: str = "_header") -> Any:
        """Map `spec.name`, build the views (`_map`) and refuse a segment of another kind or layout."""
        self = object.__new__(cls)
        buf = self._init_attached(spec.name)
        self.spec = spec
        self._map(buf)
        try:
            check_header(getattr(self, header), magic_word, f"{what} {spec.name}")
        except BaseException:
            self.close()
            raise
        return self

    def _map(self, buf: memoryview) -> None:
        """Build the numpy views over the segment (subclasses)."""
        raise NotImplementedError

    def _init_attached(self, name: str) -> memoryview:
        self._shm = attach_segment(name)
        return self._shm.buf

    @property
    def segment_name(self) -> str:
        assert self._shm is not None
        return self._shm.name

    @property
    def is_owner(self) -> bool:
        return self._owner is not None

    @property
    def closed(self) -> bool:
        return self._shm is None

    def _drop_views(self) -> None:
        """Forget every numpy view into the segment (so it can be unmapped)."""

    def close(self) -> None:
        """Unmap (and unlink, if this structure created its own segment group). Idempotent."""
        shm, self._shm = self._shm, None
        if shm is None:
            return
        self._drop_views()
        close_segment(shm)
        if self._private_owner and self._owner is not None:
            self._owner.close()

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
