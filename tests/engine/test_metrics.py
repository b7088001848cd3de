"""training.csv: appended across sessions; a session with other columns starts training.v2.csv instead of mixing."""

from __future__ import annotations

import csv

from mario_tui.engine.metrics import BASE_COLUMNS, MetricsCsv


def read(path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_same_columns_append_and_other_columns_go_to_a_new_file(tmp_path):
    path = tmp_path / "training.csv"
    first = MetricsCsv(path, ["q_loss"])
    first.append({"updates": 5, "q_loss": 0.5})
    again = MetricsCsv(path, ["q_loss"])  # a resumed session of the same version
    again.append({"updates": 10, "q_loss": 0.25})
    rows = read(path)
    assert rows[0] == [*BASE_COLUMNS, "q_loss"] and len(rows) == 3  # one header, two rows
    assert [r[rows[0].index("updates")] for r in rows[1:]] == ["5", "10"]

    newer = MetricsCsv(path, ["q_loss", "grad_norm_actor"])  # a version that writes more columns
    assert newer.path == tmp_path / "training.v2.csv"
    newer.append({"updates": 15, "q_loss": 0.1, "grad_norm_actor": 0.3})
    assert read(path) == rows  # the old file is left as it was
    assert read(newer.path)[0][-1] == "grad_norm_actor" and len(read(newer.path)) == 2


def test_a_failed_write_leaves_no_half_row_and_the_row_waits_for_the_next(tmp_path, monkeypatch):
    """Disk full in the middle of a row: the file is cut back to its last whole row, and no row is lost."""
    import errno
    import os

    path = tmp_path / "training.csv"
    metrics = MetricsCsv(path, ["q_loss"])
    metrics.append({"updates": 5, "q_loss": 0.5})
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    try:
        metrics.append({"updates": 10, "q_loss": 0.25})
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the write was meant to fail")
    monkeypatch.undo()
    assert path.read_bytes() == before and metrics.pending == 1
    metrics.append({"updates": 15, "q_loss": 0.125})
    rows = read(path)
    assert [r[rows[0].index("updates")] for r in rows[1:]] == ["5", "10", "15"] and metrics.pending == 0
