"""Sixel and kitty previews end to end, in a real pseudo-terminal where the test plays the terminal emulator.

`graphics_driver.py` runs a one-FrameView app the way `run_app` does (`probe_graphics()` before `App.run()`). This
test gives it a pty of a set size, answers textual-image's start-up probe the way a given terminal would, waits for
the image to arrive, presses `q`, and then decodes what the app wrote: the sixel image (DCS `ESC P … q … ESC \\`),
or the kitty graphics commands (APC `ESC _ G … ESC \\`: chunked base64 PNG, a virtual placement and the Unicode
placeholder cells that show it), and compares the pixels with the four flat colour quadrants the driver sent.

textual-image 0.14.2 probes once, on import (`textual_image._terminal.probe_terminal`), in cbreak mode, with one
batch: a kitty query `ESC _ G i=<id>,s=1,v=1,a=q,t=d,f=24;AAAA ESC \\`, then `ESC [ 16 t` (cell size in pixels;
only when TIOCGWINSZ reports no pixel size), then primary DA `ESC [ c` as the sentinel. It reads until a DA1 reply
`ESC [ ? … c` arrives (2 s timeout per byte). Sixel = DA1 lists attribute 4; kitty = `ESC _ G …;OK ESC \\`;
the cell size comes from `ESC [ 6 ; height ; width t`. Textual's own queries (DECRQM `ESC [ ? 2026 $ p` and
`ESC [ ? 2048 $ p`) need no answer.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests.widgets.graphics_driver import QUADRANTS, VIEW_CELLS, quadrant_image

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("graphics_driver.py")
ROWS, COLS = 24, 80
DEADLINE_S = 15.0  # whole session; a healthy one takes 2-5 s

# What the fake terminal says (byte for byte what xterm -ti vt340 / foot, kitty and a plain xterm answer).
DA1_SIXEL = b"\x1b[?62;4;22c"  # VT220 level, 4 = sixel graphics, 22 = ANSI colour
DA1_KITTY = b"\x1b[?62;c"  # kitty: no sixel
DA1_PLAIN = b"\x1b[?62;22c"

_QUERY = re.compile(rb"\x1b_G([^;\x1b]*)(?:;[^\x1b]*)?\x1b\\|\x1b\[16t|\x1b\[14t|\x1b\[c")
_APC_G = re.compile(rb"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\")
_SIXEL = re.compile(rb"\x1b\[(\d+);(\d+)H\x1bP([0-9;]*)q([^\x1b]*)\x1b\\")
_SIXEL_ANY = re.compile(rb"\x1bP[0-9;]*q[^\x1b]*\x1b\\")
_PLACEHOLDER = chr(0x10EEEE)


@dataclass
class Terminal:
    """How the fake terminal behaves: what it answers and what TIOCGWINSZ says."""

    da1: bytes | None  # None: a terminal that answers nothing
    kitty: bool = False  # answers the kitty graphics query with OK
    cell_px: tuple[int, int] = (10, 20)  # (width, height) of a cell in pixels
    pixels_in_winsize: bool = False  # report the pixel size in TIOCGWINSZ (else only via ESC [ 16 t)


@dataclass
class Session:
    output: bytes
    returncode: int
    report: dict
    queries: list[bytes] = field(default_factory=list)

    def tail(self) -> str:
        return repr(self.output[-1500:])


def control_keys(control: bytes) -> dict[str, str]:
    """`a=q,i=7,m=1` -> {"a": "q", "i": "7", "m": "1"}."""
    return dict(item.decode().split("=", 1) for item in control.split(b",") if item)


def answer(terminal: Terminal, query: bytes, control: bytes | None) -> bytes:
    if query.startswith(b"\x1b_G"):
        keys = control_keys(control or b"")
        if terminal.kitty and keys.get("a") == "q":
            return f"\x1b_Gi={keys['i']};OK\x1b\\".encode()
        return b""  # image data and placements carry q=2: a kitty terminal stays silent
    if terminal.da1 is None:
        return b""
    cell_w, cell_h = terminal.cell_px
    if query == b"\x1b[16t":
        return f"\x1b[6;{cell_h};{cell_w}t".encode()
    if query == b"\x1b[14t":
        return f"\x1b[4;{ROWS * cell_h};{COLS * cell_w}t".encode()
    return terminal.da1  # ESC [ c


def run_in_terminal(mode: str, terminal: Terminal, shown: Callable[[bytes], bool], tmp_path: Path) -> Session:
    """Run the driver in a pty playing `terminal`; press `q` once `shown(output)` is true; collect all output."""
    report_path = tmp_path / "report.json"
    cell_w, cell_h = terminal.cell_px
    xpix, ypix = (COLS * cell_w, ROWS * cell_h) if terminal.pixels_in_winsize else (0, 0)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TEXTUAL", "TMUX", "TERM_PROGRAM")) and k not in ("NO_COLOR", "FORCE_COLOR",
                                                                                   "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor", PYTHONUTF8="1")
    proc = None
    output = bytearray()
    queries: list[bytes] = []
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, xpix, ypix))
        proc = subprocess.Popen([sys.executable, str(DRIVER), mode, str(report_path)], cwd=ROOT, env=env,
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = -1
        deadline = time.monotonic() + DEADLINE_S
        scanned, quit_sent, eof = 0, False, False
        while not eof:
            left = deadline - time.monotonic()
            assert left > 0, f"no clean exit within {DEADLINE_S} s (q sent: {quit_sent}); output tail: " \
                             f"{bytes(output[-1500:])!r}"
            readable, _, _ = select.select([master], [], [], min(left, 0.2))
            if readable:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the child closed the pty, i.e. it exited
                    chunk = b""
                eof = not chunk
                output += chunk
            while match := _QUERY.search(output, scanned):
                scanned = match.end()
                query = match.group(0)
                if not query.startswith(b"\x1b_G") or control_keys(match.group(1) or b"").get("a") == "q":
                    queries.append(query)  # not the image data, which also matches
                if reply := answer(terminal, query, match.group(1)):
                    os.write(master, reply)
            if not quit_sent and not eof and shown(bytes(output)):
                os.write(master, b"q")
                quit_sent = True
        returncode = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the driver and nothing else
            proc.wait(timeout=5)
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert quit_sent, f"the image never showed; output tail: {bytes(output[-1500:])!r}"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return Session(bytes(output), returncode, report, queries)


def assert_clean_exit(session: Session) -> None:
    """Exit code 0, the alternate screen left at the end, and no traceback anywhere on the terminal."""
    assert session.returncode == 0, session.tail()
    screen_on = session.output.find(b"\x1b[?1049h")
    screen_off = session.output.rfind(b"\x1b[?1049l")
    assert 0 <= screen_on < screen_off, "alternate screen never entered, or never left"
    assert session.output.count(b"\x1b[?1049h") == 1 and b"\x1b[?25h" in session.output[screen_off:], session.tail()
    text = _SIXEL_ANY.sub(b"", _APC_G.sub(b"", session.output)).decode("utf-8", "replace")  # base64 may spell anything
    for word in ("Traceback", "Error"):
        at = text.find(word)
        assert at < 0, f"{word} on the terminal: {text[max(0, at - 300):at + 1200]!r}"


def query_kinds(session: Session) -> list[str]:
    names = {b"\x1b[16t": "cell size", b"\x1b[14t": "window size", b"\x1b[c": "DA1"}
    return ["kitty query" if q.startswith(b"\x1b_G") else names[q] for q in session.queries]


# --- decoders ------------------------------------------------------------------------------------------
def decode_sixel(params: bytes, body: bytes) -> np.ndarray:
    """Decode one sixel image (the bytes between `q` and ST) into H×W×3 int, -1 where nothing was painted.

    Supports what DEC's spec defines for RGB images: raster attributes `"Pan;Pad;Ph;Pv`, colour definitions
    `#Pc;2;R;G;B` (percent; a definition also selects, as on xterm), colour selection `#Pc`, repeats `!n`,
    graphics carriage return `$` and new line `-`. Anything else (HLS colours, stray bytes) fails the test.
    """
    assert params.split(b";")[0] in (b"", b"0", b"1", b"7", b"8", b"9"), f"aspect ratio other than 1:1: {params!r}"
    numbers = re.compile(rb"\d+(?:;\d*)*")
    palette: dict[int, tuple[int, int, int]] = {}
    canvas: np.ndarray | None = None
    colour, x, y, i = None, 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == ord('"'):
            m = numbers.match(body, i + 1)
            assert m and canvas is None, "raster attributes must come first, once"
            pan, pad, width, height = (int(v) for v in m.group(0).split(b";"))
            assert (pan, pad) == (1, 1), "pixel aspect other than 1:1"
            canvas = np.full((height, width, 3), -1, np.int32)
            i = m.end()
        elif c == ord("#"):
            m = numbers.match(body, i + 1)
            assert m, f"bad colour introducer at {i}"
            args = [int(v) for v in m.group(0).split(b";")]
            colour = args[0]
            if len(args) > 1:
                assert len(args) == 5 and args[1] == 2, f"only RGB colour definitions expected, got {args}"
                assert all(0 <= v <= 100 for v in args[2:]), f"RGB percentages out of range: {args}"
                palette[colour] = tuple(round(v * 255 / 100) for v in args[2:])
            i = m.end()
        elif c == ord("$"):
            x, i = 0, i + 1
        elif c == ord("-"):
            x, y, i = 0, y + 6, i + 1
        elif c == ord("!") or 0x3F <= c <= 0x7E:
            count = 1
            if c == ord("!"):
                m = re.compile(rb"\d+").match(body, i + 1)
                assert m, f"bad repeat at {i}"
                count, i = int(m.group(0)), m.end()
                c = body[i]
                assert 0x3F <= c <= 0x7E, f"repeat of a non-sixel byte {c!r}"
            assert canvas is not None and colour in palette, "pixels before raster attributes / colour"
            bits = c - 0x3F
            for bit in range(6):
                if bits >> bit & 1:
                    assert y + bit < canvas.shape[0] and x + count <= canvas.shape[1], "painted off the raster"
                    canvas[y + bit, x:x + count] = palette[colour]
            x, i = x + count, i + 1
        else:
            raise AssertionError(f"unexpected byte {c!r} at {i} in sixel data")
    assert canvas is not None, "no raster attributes"
    return canvas


def kitty_images(output: bytes) -> tuple[dict[int, Image.Image], list[dict[str, str]]]:
    """Reassemble the kitty transmissions (chunked base64, `m=1` … `m=0`) into images; also return placements."""
    images: dict[int, Image.Image] = {}
    placements: list[dict[str, str]] = []
    pending: dict[int, list[bytes]] = {}
    first: dict[int, dict[str, str]] = {}
    for match in _APC_G.finditer(output):
        keys, payload = control_keys(match.group(1)), match.group(2) or b""
        action = keys.get("a", "t")
        if action == "q":
            continue  # the probe
        if action == "p":
            placements.append(keys)
            continue
        assert action in ("t", "T"), f"unexpected kitty action {keys}"
        image_id = int(keys["i"])
        if image_id not in pending:
            first[image_id] = keys  # format, size and compression come with the first chunk
            assert keys.get("t", "d") == "d", f"only direct (in-band) data works over ssh: {keys}"
        chunks = pending.setdefault(image_id, [])
        chunks.append(payload)
        assert len(payload) <= 4096, "kitty chunks are at most 4096 bytes"
        if keys.get("m", "0") == "0":
            assert all(len(c) % 4 == 0 for c in chunks[:-1]), "every chunk but the last is a multiple of 4"
            data = base64.b64decode(b"".join(pending.pop(image_id)), validate=True)
            images[image_id] = _kitty_pixels(first[image_id], data)
    assert not pending, f"transmissions never finished (no m=0): {list(pending)}"
    return images, placements


def _kitty_pixels(keys: dict[str, str], data: bytes) -> Image.Image:
    """Pixels of one transmission: f=100 PNG, or f=24/32 raw RGB/RGBA of s×v pixels; `o=z` is zlib on top."""
    if keys.get("o") == "z":
        data = zlib.decompress(data)
    fmt = keys.get("f", "32")
    if fmt == "100":
        return Image.open(io.BytesIO(data)).convert("RGB")
    assert fmt in ("24", "32"), f"unknown kitty pixel format {fmt}"
    size = (int(keys["s"]), int(keys["v"]))
    return Image.frombytes("RGB" if fmt == "24" else "RGBA", size, data).convert("RGB")


def kitty_placeholder_rows(output: bytes) -> dict[int, tuple[int, str, list[tuple[int, int, int]]]]:
    """The last placeholder run written at each screen row: row -> (1-based column, SGR, [(row, col, id_msb)])."""
    from textual_image.renderable.tgp import _NUMBER_TO_DIACRITIC  # kitty's rowcolumn-diacritics table

    index = {chr(d): n for n, d in enumerate(_NUMBER_TO_DIACRITIC)}
    diacritic = "[" + "".join(re.escape(chr(d)) for d in _NUMBER_TO_DIACRITIC) + "]"
    run = re.compile(rf"\x1b\[(\d+);(\d+)H((?:\x1b\[[0-9;]*m)*)((?:{_PLACEHOLDER}{diacritic}{{3}})+)")
    rows = {}
    for match in run.finditer(output.decode("utf-8")):
        cells = match.group(4)
        decoded = [tuple(index[ch] for ch in cells[k + 1:k + 4]) for k in range(0, len(cells), 4)]
        rows[int(match.group(1))] = (int(match.group(2)), match.group(3), decoded)
    return rows


# --- comparing with what the driver sent -----------------------------------------------------------------
def expected_image_px(cell_px: tuple[int, int]) -> tuple[int, int]:
    """Pixel size the image must have: 256×240 in a 40×12-cell view is bound by the height, so as tall as the view,
    as wide as the aspect allows, rounded to whole cells."""
    cell_w, cell_h = cell_px
    src = quadrant_image()
    height = VIEW_CELLS[1] * cell_h
    width = round(height * src.shape[1] / src.shape[0] / cell_w) * cell_w
    assert width <= VIEW_CELLS[0] * cell_w
    return width, height


def assert_matches_quadrants(decoded: np.ndarray, tolerance: int, seam: int = 3) -> None:
    """Every pixel but those within `seam` px of the centre cross (where scaling filters blend neighbours) has its
    quadrant's flat colour within `tolerance` per channel: right size, right place, no flip, no swap, no crop."""
    height, width = decoded.shape[:2]
    assert (decoded >= 0).all(), f"{int((decoded < 0).any(axis=2).sum())} pixels never painted"
    for (row, col), rgb in QUADRANTS.items():
        rows = slice(row * (height // 2 + seam), height // 2 - seam if row == 0 else height)
        cols = slice(col * (width // 2 + seam), width // 2 - seam if col == 0 else width)
        error = np.abs(decoded[rows, cols] - np.array(rgb)).max()
        assert error <= tolerance, f"quadrant {(row, col)}: off {rgb} by up to {error}"


def centred_origin(image_px: tuple[int, int], cell_px: tuple[int, int]) -> tuple[int, int]:
    """1-based (row, column) where the image's top-left cell must be: centred in the view at the screen's corner."""
    cells_w, cells_h = image_px[0] // cell_px[0], image_px[1] // cell_px[1]
    return (VIEW_CELLS[1] - cells_h) // 2 + 1, (VIEW_CELLS[0] - cells_w) // 2 + 1


# --- the tests -----------------------------------------------------------------------------------------------
def test_sixel_terminal_receives_the_frame_as_sixel(tmp_path):
    terminal = Terminal(da1=DA1_SIXEL, cell_px=(10, 20))  # pixel size only via ESC [ 16 t
    session = run_in_terminal("sixel", terminal, lambda out: _SIXEL_ANY.search(out) is not None, tmp_path)

    assert query_kinds(session) == ["kitty query", "cell size", "DA1"]
    assert session.report == {"probed": "sixel", "auto": "sixel", "requested": "sixel", "active_mode": "sixel",
                              "cell_size": [10, 20], "view_cells": list(VIEW_CELLS)}
    assert_clean_exit(session)
    images = list(_SIXEL.finditer(session.output))
    assert images, "no positioned sixel image in the output"
    row, col, params, body = images[-1].groups()
    decoded = decode_sixel(params, body)
    width, height = expected_image_px(terminal.cell_px)
    assert decoded.shape[:2] == (height, width)
    assert (int(row), int(col)) == centred_origin((width, height), terminal.cell_px)
    assert_matches_quadrants(decoded, tolerance=3)  # the palette is in whole percent: ±1.3 per channel
    assert b"\x1b_G" not in session.output.split(b"\x1b[c", 1)[1], "kitty graphics sent to a sixel terminal"


def test_kitty_terminal_receives_the_frame_as_png_with_placeholders(tmp_path):
    terminal = Terminal(da1=DA1_KITTY, kitty=True, cell_px=(8, 16), pixels_in_winsize=True)

    def shown(out: bytes) -> bool:
        return b"U=1" in out and _PLACEHOLDER.encode() in out

    session = run_in_terminal("kitty", terminal, shown, tmp_path)

    assert query_kinds(session) == ["kitty query", "DA1"]  # no ESC [ 16 t: TIOCGWINSZ has the pixel size
    assert session.report == {"probed": "kitty", "auto": "kitty", "requested": "kitty", "active_mode": "kitty",
                              "cell_size": [8, 16], "view_cells": list(VIEW_CELLS)}
    assert_clean_exit(session)
    assert not _SIXEL_ANY.search(session.output), "sixel sent to a kitty terminal"

    images, placements = kitty_images(session.output)
    assert len(images) == 1, f"one frame, one transmission: {list(images)}"
    (image_id, image), = images.items()
    width, height = expected_image_px(terminal.cell_px)
    assert image.size == (width, height)
    assert_matches_quadrants(np.asarray(image).astype(np.int32), tolerance=0)  # PNG is lossless

    cells_w, cells_h = width // terminal.cell_px[0], height // terminal.cell_px[1]
    assert placements and all(p["i"] == str(image_id) for p in placements)
    assert {(p["U"], p["c"], p["r"]) for p in placements} == {("1", str(cells_w), str(cells_h))}

    # The virtual placement shows only where Unicode placeholders name it: every cell of the image's rectangle.
    top, left = centred_origin((width, height), terminal.cell_px)
    rows = kitty_placeholder_rows(session.output)
    id_colour = f"38;2;{image_id >> 16 & 255};{image_id >> 8 & 255};{image_id & 255}"
    assert sorted(rows) == list(range(top, top + cells_h)), sorted(rows)
    for r in range(cells_h):
        column, sgr, cells = rows[top + r]
        assert column == left
        assert id_colour in sgr, f"row {r}: the placeholder colour must carry the image id ({sgr!r})"
        assert cells == [(r, c, image_id >> 24 & 255) for c in range(cells_w)], f"row {r}: {cells}"


def _halfblocks_in_quadrant_colours(out: bytes) -> bool:
    screen = out.split(b"\x1b[?1049h", 1)[-1]
    return "▀".encode() in screen and all(f"2;{r};{g};{b}m".encode() in screen or
                                          f"2;{r};{g};{b};".encode() in screen for r, g, b in QUADRANTS.values())


def test_terminal_without_graphics_gets_half_blocks_on_auto(tmp_path):
    terminal = Terminal(da1=DA1_PLAIN, cell_px=(9, 18))
    session = run_in_terminal("auto", terminal, _halfblocks_in_quadrant_colours, tmp_path)

    assert session.report == {"probed": "halfblock", "auto": "halfblock", "requested": "auto",
                              "active_mode": "halfblock", "cell_size": [9, 18], "view_cells": list(VIEW_CELLS)}
    assert_clean_exit(session)
    after_probe = session.output.split(b"\x1b[c", 1)[1]
    assert not _SIXEL_ANY.search(after_probe) and b"\x1b_G" not in after_probe


def test_terminal_that_answers_no_probe_gets_half_blocks_without_a_traceback(tmp_path):
    """Some terminals (and multiplexers without passthrough) answer nothing: textual-image waits 2 s, gives up, and
    the app must start with half blocks, its screen not preceded by textual-image's warning and traceback."""
    session = run_in_terminal("auto", Terminal(da1=None), _halfblocks_in_quadrant_colours, tmp_path)

    assert session.report["probed"] == "halfblock" and session.report["active_mode"] == "halfblock"
    assert session.report["cell_size"] == [10, 20]  # textual-image's VT340 default
    assert_clean_exit(session)  # includes: no "Traceback" anywhere
    before_app = session.output.split(b"\x1b[?1049h", 1)[0]
    assert before_app.endswith(b"\x1b[c"), f"something printed before the app started: {before_app!r}"
