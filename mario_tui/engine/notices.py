"""What a run tells its user beside the log: failed writes of its files, why it ended.

A full disk, a quota, a read-only or vanished run folder must not end a run: each failed write becomes one line
(the file and the reason), training goes on, and the next write tries again. Front ends read the lines with
their own cursor (`Notices.since`), so the dashboard and `--batch` each show every line once.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def os_reason(exc: OSError) -> str:
    """`No space left on device` rather than `[Errno 28] No space left on device: '/x/.checkpoint.pt.tmp'`."""
    if exc.errno is not None:
        return exc.strerror or os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Notice:
    time: float
    severity: str  # "warning" (training goes on) or "error" (the run stopped or lost something)
    text: str


class Notices:
    """An append-only list of notices, shared between the run's threads and its front end."""

    def __init__(self) -> None:
        self._items: list[Notice] = []
        self._lock = threading.Lock()

    def add(self, text: str, severity: str = "warning") -> Notice:
        notice = Notice(time.time(), severity, text)
        with self._lock:
            self._items.append(notice)
        return notice

    def since(self, cursor: int) -> tuple[list[Notice], int]:
        """The notices after the first `cursor` ones, and the cursor to pass next time."""
        with self._lock:
            return self._items[cursor:], len(self._items)

    @property
    def last(self) -> Notice | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)


class WriteFailures:
    """Tracks which of a run's files cannot be written, so each outage is one notice and its end another."""

    REPEAT_S = 300.0  # a file that keeps failing is reported again after this long (not at every write)

    def __init__(self, notices: Notices, log: logging.Logger | None = None) -> None:
        self.notices = notices
        self.log = log
        self.count = 0
        self._failing: dict[str, tuple[int, float]] = {}  # file name → (failures since the last success, reported at)

    @property
    def failing(self) -> bool:
        return bool(self._failing)

    def failed(self, path: Path, exc: OSError, consequence: str, always: bool = False) -> None:
        """Report a failed write of `path` (unless already reported recently); `consequence` says what it means."""
        self.count += 1
        name = Path(path).name
        failures, reported_at = self._failing.get(name, (0, -1e9))
        now = time.monotonic()
        report = always or failures == 0 or now - reported_at >= self.REPEAT_S
        self._failing[name] = (failures + 1, now if report else reported_at)
        if not report:
            return
        hint = " (free some space)" if exc.errno in DISK_FULL else ""
        again = f", {failures + 1} failures so far" if failures else ""
        text = f"could not write {name}: {os_reason(exc)}{hint}{again}; {consequence}"
        self.notices.add(text, "warning")
        self._log(text)

    def succeeded(self, path: Path) -> None:
        name = Path(path).name
        if name in self._failing:
            failures, _ = self._failing.pop(name)
            text = f"{name} written again (after {failures} failed write{'s' if failures != 1 else ''})"
            self.notices.add(text, "info")
            self._log(text)

    def _log(self, text: str) -> None:
        if self.log is not None:
            self.log.info(text)


class QuietFileHandler(logging.FileHandler):
    """A log file that cannot be written (disk full) loses its lines silently: logging's default prints a
    traceback to stderr for every line, over the app's screen or `--batch`'s output."""

    failed_lines = 0

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failed_lines += 1
