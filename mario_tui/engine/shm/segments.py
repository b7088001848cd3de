"""Named POSIX shared memory for one run: unguessable names, mode 0o600, unlinked only by the creator.

Names look like `mtui_<creator pid>_<12 hex>_<kind>`: the pid lets the next run find segments whose creator
died without cleaning up (`cleanup_stale_segments`), the random token keeps other local users from guessing a
name and racing us to create it. Segments are opened with `track=False` so Python's resource tracker neither
warns about nor unlinks them: the creator's `SegmentGroup` owns unlinking, attached workers only map.

The creator also holds a shared `flock` on each segment it created until it unlinks it (the kernel drops it
when the process dies). A pid alone can mislead: a process in another pid namespace sharing /dev/shm (a
container with --ipc=host, a sandboxed session) has pids we cannot see, and pids get reused. So a segment
counts as stale only if its creator pid is not alive here *and* nobody holds its lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIX = "mtui_"
_KIND_RE = re.compile(r"^[a-z0-9]{1,24}$")
_NAME_RE = re.compile(r"^(?P<prefix>[a-z]+_)(?P<pid>\d+)_(?P<token>[0-9a-f]{12})_(?P<kind>[a-z0-9]+)$")
# A process that started this long after a segment's last inode change cannot be its creator (pid reuse).
_PID_REUSE_SLACK_S = 2.0
# name -> fd on which this process holds a shared flock, for each segment it created and has not unlinked.
_HELD_LOCKS: dict[str, int] = {}


@dataclass(frozen=True)
class SegmentName:
    """The parts of a segment name."""

    prefix: str
    pid: int
    token: str
    kind: str


def make_segment_name(kind: str, *, prefix: str = PREFIX, pid: int | None = None) -> str:
    """A fresh name for this process: `<prefix><pid>_<random 48 bits>_<kind>`."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"segment kind must be 1-24 chars of [a-z0-9], got {kind!r}")
    return f"{prefix}{os.getpid() if pid is None else pid}_{secrets.token_hex(6)}_{kind}"


def parse_segment_name(name: str) -> SegmentName | None:
    """Split a name made by `make_segment_name`; None for anything else."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    return SegmentName(m["prefix"], int(m["pid"]), m["token"], m["kind"])


def create_segment(kind: str, size: int, *, prefix: str = PREFIX) -> shared_memory.SharedMemory:
    """Create a new segment of `size` bytes (zero-filled, mode 0o600) with its memory reserved up front.

    The memory is reserved with posix_fallocate so that a full /dev/shm fails here with ENOSPC instead of
    killing a process with SIGBUS at its first write into a page tmpfs cannot provide.
    """
    if size <= 0:
        raise ValueError("segment size must be positive")
    shm = shared_memory.SharedMemory(name=make_segment_name(kind, prefix=prefix), create=True, size=size, track=False)
    try:
        _lock_and_reserve(shm.name, size)
    except BaseException:
        close_segment(shm)
        unlink_segment(shm.name)
        raise
    return shm


def _lock_and_reserve(name: str, size: int) -> None:
    """Hold the creator's shared lock (kept until `unlink_segment`) and reserve the memory."""
    path = SHM_DIR / name
    if not path.exists():  # not a Linux-style /dev/shm: no lock, no reservation
        return
    fd = os.open(path, os.O_RDWR)  # not inherited by spawned children (PEP 446)
    _HELD_LOCKS[name] = fd
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.ENOMEM):
            raise OSError(exc.errno, f"not enough room in {SHM_DIR} for a {size}-byte segment", name) from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


def segment_locked(name: str) -> bool:
    """Whether some live process (this one included) holds the creator lock of segment `name`."""
    try:
        fd = os.open(SHM_DIR / name, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the exclusive lock if we got it
    return False


def attach_segment(name: str) -> shared_memory.SharedMemory:
    """Map an existing segment. Untracked: this process exiting never unlinks it."""
    return shared_memory.SharedMemory(name=name, create=False, track=False)


def close_segment(shm: shared_memory.SharedMemory) -> bool:
    """Unmap now if no numpy view still points into the segment; True if unmapped.

    If someone still holds a view (made with `layout.view`, which keeps a buffer export), SharedMemory.close()
    raises BufferError, and its __del__ would raise it again later. Instead the file descriptor is closed and
    the SharedMemory is detached from its mmap: the mapping then lives exactly as long as the last view and is
    unmapped with it. (Views made with `np.ndarray(buffer=shm.buf)` hold no export: never use those, closing
    would unmap under them.)
    """
    try:
        shm.close()
    except BufferError:
        with contextlib.suppress(AttributeError, OSError):
            if shm._fd >= 0:
                os.close(shm._fd)
            shm._fd = -1
            shm._buf = None
            shm._mmap = None
        return False
    return True


def unlink_segment(name: str) -> bool:
    """Remove a segment's name (mappings stay valid until unmapped); True if it existed."""
    try:
        os.unlink(SHM_DIR / name)
    except FileNotFoundError:
        return False
    finally:
        fd = _HELD_LOCKS.pop(name, None)
        if fd is not None:
            os.close(fd)
    return True


def list_segments(prefix: str = PREFIX) -> list[str]:
    """Names in /dev/shm that look like ours."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if n.startswith(prefix) and parse_segment_name(n) is not None)


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _process_start_time(pid: int) -> float | None:
    """Wall-clock start time of `pid` from /proc (None if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # field 3 onwards; the command name may contain spaces
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime in clock ticks


def creator_alive(pid: int, segment_ctime: float | None = None) -> bool:
    """Whether the process that created a segment may still be running.

    A live pid that started after the segment's last inode change is a reused pid, not the creator.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OverflowError:
        return False
    if segment_ctime is not None:
        started = _process_start_time(pid)
        if started is not None and started > segment_ctime + _PID_REUSE_SLACK_S:
            return False
    return True


def segment_stale(name: str) -> bool:
    """Whether segment `name` (ours by prefix) was left behind: creator pid gone (or reused) and lock free."""
    parsed = parse_segment_name(name)
    if parsed is None:
        return False
    try:
        st = os.stat(SHM_DIR / name)
    except FileNotFoundError:
        return False
    return not creator_alive(parsed.pid, st.st_ctime) and not segment_locked(name)


def cleanup_stale_segments(prefix: str = PREFIX) -> list[str]:
    """Unlink our segments (same uid) whose creator is no longer alive; returns the names removed.

    Call at start-up: a coordinator killed with SIGKILL cannot clean up after itself.
    """
    removed = []
    uid = os.getuid()
    for name in list_segments(prefix):
        parsed = parse_segment_name(name)
        assert parsed is not None
        try:
            st = os.stat(SHM_DIR / name)
        except FileNotFoundError:
            continue
        if st.st_uid != uid or creator_alive(parsed.pid, st.st_ctime) or segment_locked(name):
            continue
        if unlink_segment(name):
            removed.append(name)
    return removed


def _unlink_all(names: list[str], creator_pid: int) -> None:
    """Finalizer body: must not reference the group. Only the creating process unlinks."""
    if os.getpid() != creator_pid:
        return
    while names:
        unlink_segment(names.pop())


class SegmentGroup:
    """Creates a run's segments and unlinks every one of them on `close()` (idempotent).

    A `weakref.finalize` (which also runs at interpreter exit) unlinks them if `close()` is never called.
    """

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._segments: list[shared_memory.SharedMemory] = []
        self._names: list[str] = []  # shared with the finalizer
        self._finalizer = weakref.finalize(self, _unlink_all, self._names, os.getpid())

    def create(self, kind: str, size: int) -> shared_memory.SharedMemory:
        """Create a segment owned by this group."""
        if not self._finalizer.alive:
            raise RuntimeError("SegmentGroup is closed")
        shm = create_segment(kind, size, prefix=self.prefix)
        self._segments.append(shm)
        self._names.append(shm.name)
        return shm

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Unlink all segments, then unmap those no view still uses."""
        self._finalizer()  # unlinks; a second call is a no-op
        segments, self._segments = self._segments, []
        for shm in segments:
            close_segment(shm)

    def __enter__(self) -> SegmentGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unlink_all(names: Iterable[str]) -> None:
    """Best-effort unlink of several names (for error paths)."""
    for name in names:
        with contextlib.suppress(OSError):
            unlink_segment(name)
