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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from controller import csvcolumns
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


#: How other programs write a missing value (R's write.csv: NA; spreadsheets: #N/A).
_MISSING_WORDS = ("na", "n/a", "#n/a", "null", "none", "-", "?", "missing")
#: Separators other programs write (a spreadsheet in a decimal-comma locale: ``;``).
_OTHER_SEPARATORS = (";", "\t", "|")


def _index(path: Path, header: Sequence[str], column: str, meaning: str = "") -> int:
    if column not in header:
        seen = [sep for sep in _OTHER_SEPARATORS if len(header) == 1 and sep in header[0]]
        hint = (f" (one column: the file seems separated by {seen[0]!r}; the recording must "
                "be comma-separated)") if seen else ""
        meaning = f" ({meaning})" if meaning else ""
        raise CsvError(f"{path}: no column {column!r}{meaning}; the file has: "
                       f"{', '.join(header) or '(none)'}{hint}")
    return header.index(column)


def read_columns(
    path: Path, columns: Iterable[str], optional: Iterable[str] = (),
    on_bytes: Callable[[int], None] = lambda count: None,
    meanings: Mapping[str, str] | None = None,
    blank_rows: bool = False,
) -> dict[str, np.ndarray]:
    """The named columns as float arrays (empty cell = NaN, a blank one too, as the
    cells a short row lacks), and those of ``optional`` that the file has. Read a block
    at a time by ``controller.csvcolumns`` (plain numbers by numpy's C reader, anything
    else row by row), ``on_bytes`` told of the bytes read; a cell that is not a number
    is named with its line and column. A missing column is named with the file's
    columns and what ``meanings`` says of it (what it holds, how to do without). With
    ``blank_rows`` an empty line is a row of empty cells (a missing sample)."""
    require_regular_file(path)
    meanings = meanings or {}

    def choose(header: list[str]) -> list[str]:
        wanted = {name: _index(path, header, name, meanings.get(name, "")) for name in columns}
        return [*wanted, *(name for name in optional if name in header and name not in wanted)]

    try:
        columns = csvcolumns.read_columns(path, choose, exact_fields=False, strip_cells=True,
                                          on_bytes=on_bytes, blank_rows=blank_rows)
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc}") from None
    except csvcolumns.CsvProblem as problem:
        raise CsvError(_described(path, problem)) from None
    return columns


def _described(path: Path, problem: csvcolumns.CsvProblem) -> str:
    """What is wrong with a recording, as ``fes detect`` says it."""
    match problem:
        case csvcolumns.NoHeader():
            return f"{path}: empty file (a header row is needed)"
        case csvcolumns.NotUtf8():
            if (kind := _binary_kind(path)) is not None:
                return (f"{path}: cannot read: it is {kind}, not a CSV text file: export the "
                        "table as CSV (comma-separated, a header row)")
            return f"{path}: cannot read: {problem.decoder_message()}"
        case csvcolumns.NotANumber(line=line, column=column, cell=cell):
            missing = (" (a missing sample is an empty cell: write it as nothing, or nan)"
                       if cell.strip().lower() in _MISSING_WORDS else "")
            return f"{path}: line {line}, column {column!r}: {cell!r} is not a number{missing}"
        case csvcolumns.Malformed(line=line, error=error):
            return f"{path}: line {line}: {_csv_problem(error)}"
    return f"{path}: line {problem.line}: {problem}"


#: How files that are not text start, and what they are.
_MAGIC = ((b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)"),
          (b"\xd0\xcf\x11\xe0", "an old Office file (an Excel .xls workbook?)"),
          (b"PAR1", "a Parquet file"), (b"\x89HDF", "an HDF5 file (a MATLAB v7.3 .mat?)"),
          (b"MATLAB", "a MATLAB .mat file"))


def _binary_kind(path: Path) -> str | None:
    """What a file that is not text is, from its first bytes (None: not known)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


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
