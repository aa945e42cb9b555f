"""Reading recorded sensor CSVs and event CSVs, writing detected events.

A recording is a CSV with a header row; the columns the detector needs are picked by
name, the others are ignored (so a ``fes sim`` ``samples.csv`` can be read as it is).
An empty cell is a missing sample (NaN). Event files have the columns ``time_s,event``
(event names as in ``controller.events``); a ``source`` column, as in ``fes sim``
``events.csv``, selects the rows whose source is ``true``.

Every problem with a file raises ``CsvError`` with a message that names the file, and
the column or line at fault, for the CLI to print.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from controller.events import EVENT_BY_NAME, EVENT_NAMES, DetectedEvent, Event


class CsvError(Exception):
    """A CSV file that cannot be used, with the reason."""


def require_regular_file(path: Path) -> None:
    """``CsvError`` unless ``path`` is a regular file: a device or FIFO is never opened
    (``/dev/zero`` given as a recording would be read until memory ran out), as a config
    file is refused (``controller.resources.load_toml``)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CsvError(f"{path}: file not found") from None
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc}") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise CsvError(f"{path}: not a regular file ({what}); give a CSV file")


def _read_bytes(path: Path) -> bytes:
    require_regular_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc}") from None


def _decode(path: Path, data: bytes) -> str:
    """The text of UTF-8 ``data``; a UTF-8 byte order mark (a spreadsheet's export) is
    skipped."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}: cannot read: {exc}") from None


def _read_text(path: Path) -> str:
    return _decode(path, _read_bytes(path))


def _parse(path: Path, text: str, first_only: bool = False) -> list[list[str]]:
    """The rows of ``text`` (only the first if ``first_only``); a csv error is a
    ``CsvError`` naming its line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        if first_only:
            return [next(reader, [])]
        return list(reader)
    except csv.Error as exc:
        raise CsvError(f"{path}: line {reader.line_num}: {_csv_problem(exc)}") from None


def _csv_problem(exc: csv.Error) -> str:
    """What the csv module's error means for a recording."""
    text = str(exc)
    if "field larger than field limit" in text:
        return (f"a field longer than {csv.field_size_limit()} characters (is this a "
                "recording of numbers?)")
    return text


def _rows(path: Path, text: str) -> tuple[list[str], list[list[str]]]:
    rows = _parse(path, text)
    if not rows:
        raise CsvError(f"{path}: empty file (a header row is needed)")
    header = [name.strip() for name in rows[0]]
    return header, [row for row in rows[1:] if row]


def _open_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    return _rows(path, _read_text(path))


#: Separators other programs write (a spreadsheet in a decimal-comma locale: ``;``).
_OTHER_SEPARATORS = (";", "\t", "|")


def _index(path: Path, header: Sequence[str], column: str) -> int:
    if column not in header:
        seen = [sep for sep in _OTHER_SEPARATORS if len(header) == 1 and sep in header[0]]
        hint = (f" (one column: the file seems separated by {seen[0]!r}; the recording must "
                "be comma-separated)") if seen else ""
        raise CsvError(
            f"{path}: no column {column!r}; the file has: {', '.join(header) or '(none)'}{hint}"
        )
    return header.index(column)


#: Bytes that end a line for ``str.splitlines`` (or the csv module) besides ``\n`` and
#: ``\r\n``, or quote a field: a file with any of them is read row by row.
_ODD = (b'"', b"\v", b"\f", b"\x1c", b"\x1d", b"\x1e")


def _plain_lines(data: bytes, start: int) -> int | None:
    """The number of non-empty lines of ``data[start:]`` (as ``str.splitlines`` counts
    them) if all of ``data`` is plain: ASCII, no quote, lines ended by ``\n`` or
    ``\r\n``; else None. Counted with numpy on the bytes: about 3 ms for a minute at
    500 Hz, where splitting the decoded text took ten and ``bytes`` searches for
    two-byte patterns eight each."""
    if not data.isascii() or any(odd in data for odd in _ODD):
        return None
    codes = np.frombuffer(data, dtype=np.uint8)
    if b"\r" in data:
        after = _positions(codes, ord("\r")) + 1
        if after[-1] == codes.size or not np.all(codes[after] == ord("\n")):
            return None  # a carriage return that ends no line ending
    codes = codes[start:]
    ends = _positions(codes, ord("\n"))
    starts = np.concatenate(([0], ends[:-1] + 1)) if ends.size else ends
    length = ends - starts  # of each line ended by \n, without it; "\r" alone is empty
    empty = np.count_nonzero((length == 0) | ((length == 1) & (codes[starts] == ord("\r"))))
    last = ends[-1] + 1 if ends.size else 0
    return int(ends.size - empty) + (1 if last < codes.size else 0)


def _positions(codes: np.ndarray, byte: int) -> np.ndarray:
    """Where ``byte`` is in ``codes``, found a slice at a time: a comparison of the whole
    recording at once would hold a byte of booleans per byte of the file (443 MB for a
    3,000 s trial at 1 kHz)."""
    step = PARSE_SLICE_BYTES
    found = [np.flatnonzero(codes[at : at + step] == byte) + at
             for at in range(0, codes.size, step)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)


def _plain_numbers(
    data: bytes, start: int, usecols: list[int], on_bytes: Callable[[int], None]
) -> np.ndarray | None:
    """The columns ``usecols`` of the rows from ``data[start]`` on, parsed by
    numpy's C reader, if the rows are plain (``_plain_lines``: then they are the rows
    the csv module sees, one per line) and every one of them is numbers; else None (an
    empty cell, a short row, a quoted field, a line ending not plain), for the row-by-row
    reader to handle. Both parse a number the same way (Python's own string-to-double),
    so the values are the same to the bit. ``on_bytes`` is told of each slice parsed."""
    lines = _plain_lines(data, start)
    if not usecols or not lines:
        return None
    parts = []
    view = memoryview(data)  # slices share the bytes: no copy of the recording
    for begin, end in _slices(data, start):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                parts.append(np.loadtxt(io.BytesIO(view[begin:end]), delimiter=",",
                                        usecols=usecols, comments=None, ndmin=2,
                                        dtype=np.float64, encoding="ascii"))
        except (ValueError, UserWarning):
            return None
        on_bytes(end - begin)
    values = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return values if values.shape[0] == lines else None


#: A plain file is parsed this many bytes at a time (whole lines), so that reading a long
#: recording can show its progress (``fes detect``: ``controller.progress``).
PARSE_SLICE_BYTES = 1 << 23


def _slices(data: bytes, start: int) -> Iterator[tuple[int, int]]:
    """``data[start:]`` cut into whole lines of about ``PARSE_SLICE_BYTES`` each."""
    while start < len(data):
        end = data.find(b"\n", start + PARSE_SLICE_BYTES) + 1 or len(data)
        yield start, end
        start = end


def _header(path: Path, data: bytes, body: int) -> list[str]:
    """The names of the file's first row (its first line is ``data[:body]``). Parsed
    from the first line alone where that is the whole row (no quote in it): decoding
    and splitting a whole recording to read one line of it took a tenth of the
    command's time."""
    first = data[:body]
    text = _decode(path, first if b'"' not in first else data)
    return [name.strip() for name in _parse(path, text, first_only=True)[0]]


def read_columns(
    path: Path, columns: Iterable[str], optional: Iterable[str] = (),
    on_bytes: Callable[[int], None] = lambda count: None,
) -> dict[str, np.ndarray]:
    """The named columns as float arrays (empty cell = NaN), and those of ``optional``
    that the file has. A file of plain numbers is parsed by numpy's C reader (a minute
    at 500 Hz: 0.03 s instead of 0.12 s), ``on_bytes`` told of each slice parsed; any
    other goes row by row, which names the line and column of a cell that is not a
    number."""
    data = _read_bytes(path)
    text = None if data.isascii() else _decode(path, data)  # refuses a non-UTF-8 file
    body = data.find(b"\n") + 1 or len(data)  # where the rows after the header start
    header = _header(path, data, body)
    if not header:
        raise CsvError(f"{path}: empty file (a header row is needed)")
    wanted = {name: _index(path, header, name) for name in columns}
    wanted |= {name: header.index(name) for name in optional if name in header}
    fast = _plain_numbers(data, body, list(wanted.values()), on_bytes)
    if fast is not None:
        return {name: fast[:, i].copy() for i, name in enumerate(wanted)}
    header, rows = _rows(path, _decode(path, data) if text is None else text)
    out = {name: np.empty(len(rows)) for name in wanted}
    for line, row in enumerate(rows, start=2):
        for name, i in wanted.items():
            text = row[i].strip() if i < len(row) else ""
            try:
                out[name][line - 2] = float(text) if text else np.nan
            except ValueError:
                raise CsvError(
                    f"{path}: line {line}, column {name!r}: {text!r} is not a number"
                ) from None
    return out


def header_of(path: Path) -> list[str]:
    """The column names of a CSV file."""
    return _open_rows(path)[0]


def read_events(path: Path) -> list[tuple[float, Event]]:
    """Reference events ``time_s,event`` (rows of source ``true`` if there is a source)."""
    header, rows = _open_rows(path)
    t_col = _index(path, header, "time_s")
    e_col = _index(path, header, "event")
    s_col = header.index("source") if "source" in header else None
    needed = max(t_col, e_col, -1 if s_col is None else s_col) + 1
    events = []
    for line, row in enumerate(rows, start=2):
        if len(row) < needed:
            raise CsvError(
                f"{path}: line {line}: {len(row)} fields, the header names {len(header)}"
            )
        if s_col is not None and row[s_col].strip() != "true":
            continue
        name = row[e_col].strip()
        if name not in EVENT_BY_NAME:
            raise CsvError(
                f"{path}: line {line}: unknown event {name!r}; "
                f"known: {', '.join(EVENT_BY_NAME)}"
            )
        try:
            t_s = float(row[t_col])
        except ValueError:
            raise CsvError(f"{path}: line {line}: time_s {row[t_col]!r} is not a number") from None
        events.append((t_s, EVENT_BY_NAME[name]))
    return events


def write_events(path: Path, events: Iterable[DetectedEvent]) -> None:
    """Detected events as ``time_s,event`` (the estimated time), sorted by time."""
    rows = sorted((e.t_est_s, EVENT_NAMES[e.event]) for e in events)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("time_s,event\n")
        for t_s, name in rows:
            handle.write(f"{t_s:.6f},{name}\n")
