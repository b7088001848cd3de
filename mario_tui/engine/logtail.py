"""Follow a growing log file (training.log) without re-reading it: the dashboard's log panel source."""

from __future__ import annotations

from pathlib import Path


class LogTail:
    """Returns complete new lines since the last call; starts with the last `initial_lines` lines."""

    def __init__(self, path: Path, initial_lines: int = 200) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self._initial = initial_lines

    def read_new(self, max_bytes: int = 1 << 20) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._offset:  # truncated or replaced: start over
            self._offset, self._partial = 0, b""
        if size == self._offset:
            return []
        with self.path.open("rb") as handle:
            if self._offset == 0 and size > max_bytes:
                self._offset = size - max_bytes
            handle.seek(self._offset)
            data = handle.read(max_bytes)
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        out = [line.decode("utf-8", "replace") for line in lines]
        if self._initial:
            out, self._initial = out[-self._initial:], 0
        return out
