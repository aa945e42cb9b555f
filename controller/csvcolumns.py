"""Numeric columns of a CSV file, read a block of whole lines at a time.

One reader for every command that reads recorded samples: ``fes report`` (a trial's
``samples.csv``, ``controller.report.trial_data``) and ``fes detect`` (a recording,
``controller.detect.csvfiles``). It knows nothing of gait: it reads the header, lets
the caller choose the columns, and parses those columns of the rows into floats (an
empty cell is NaN), holding the chosen columns as numbers and one block of text
(``BLOCK_BYTES``) at a time: a 3,000 s trial at 1 kHz (443 MB) is read in about 0.6
times its size of memory.

A block of plain lines (ASCII, no quote, lines ended by ``\\n`` or ``\\r\\n``) is parsed
by numpy's C reader; any other block, or one that reader refuses (an empty cell, a
short row, a cell that is not a number), by the csv module and Python's ``float``, a
row at a time. Both turn a number's text into the same double (Python's own
string-to-double), so where a block is cut never changes a value.

A problem with the file raises a ``CsvProblem`` saying what and where (the line as an
editor numbers it); each caller words it in its own error (``ConfigError`` for the
report, ``CsvError`` for ``fes detect``).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: A file is read this many bytes at a time (about 57,000 rows of a simulated trial).
BLOCK_BYTES = 1 << 23
#: Bytes that end a line for ``str.splitlines`` besides ``\n`` and ``\r\n``, or quote a
#: field: a block with any of them goes to the csv module.
_ODD = (b'"', b"\v", b"\f", b"\x1c", b"\x1d", b"\x1e")
_BOM = b"\xef\xbb\xbf"


class CsvProblem(Exception):
    """What is wrong with a CSV file and where; a subclass says what."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line  # of the file, 1 being the header


class NoHeader(CsvProblem):
    """The file is empty, or its first line is."""

    def __init__(self) -> None:
        super().__init__(1)


class NotUtf8(CsvProblem):
    """Bytes that are not UTF-8: ``error`` is the decoder's, ``offset`` where in the
    file (after a byte order mark) its bad bytes start."""

    def __init__(self, line: int, error: UnicodeDecodeError, offset: int) -> None:
        super().__init__(line)
        self.error, self.offset = error, offset

    def decoder_message(self) -> str:
        """The decoder's own message, its position counted from the file's start."""
        error, end = self.error, self.offset + self.error.end - self.error.start
        if end == self.offset + 1:
            return (f"'{error.encoding}' codec can't decode byte "
                    f"0x{error.object[error.start]:02x} in position {self.offset}: "
                    f"{error.reason}")
        return (f"'{error.encoding}' codec can't decode bytes in position "
                f"{self.offset}-{end - 1}: {error.reason}")


class FieldCount(CsvProblem):
    """A row without the header's number of fields (with ``exact_fields``)."""

    def __init__(self, line: int, fields: int, expected: int) -> None:
        super().__init__(line)
        self.fields, self.expected = fields, expected


class NotANumber(CsvProblem):
    """The cell of ``column`` (as read: stripped with ``strip_cells``) is not a number."""

    def __init__(self, line: int, column: str, cell: str) -> None:
        super().__init__(line)
        self.column, self.cell = column, cell


class Malformed(CsvProblem):
    """The csv module refused the text (``error``), at ``line``."""

    def __init__(self, line: int, error: csv.Error) -> None:
        super().__init__(line)
        self.error = error


def read_columns(
    path: Path,
    choose: Callable[[list[str]], Sequence[str]],
    *,
    exact_fields: bool,
    strip_cells: bool,
    on_bytes: Callable[[int], None] = lambda count: None,
    block_bytes: int | None = None,
    blank_rows: bool = False,
) -> dict[str, np.ndarray]:
    """The columns ``choose(header)`` names, as contiguous float arrays in that order.

    The header is the first row (a UTF-8 byte order mark skipped, names stripped);
    ``choose`` may raise its own error (a column it needs is missing). With
    ``exact_fields`` every line after the header, an empty one too, must have the
    header's number of fields (``FieldCount``); without it empty lines are skipped (with
    ``blank_rows``, each is a row of empty cells: one column written with its missing
    cells empty, as a spreadsheet exports it, is blank lines) and the cells a short row
    lacks are empty. With ``strip_cells`` a cell's spaces are
    stripped before it is read (a blank cell is NaN); without it a blank cell is not a
    number. ``on_bytes`` is told of the bytes read as they are, ``block_bytes`` at a
    time (``BLOCK_BYTES`` unless given). ``OSError`` from the file passes through."""
    block_bytes = block_bytes or BLOCK_BYTES
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        first, skipped, rest = _header_line(handle, block_bytes)
        on_bytes(skipped + len(first) + len(rest))
        header = _header(first)
        names = list(choose(header))
        reader = _Blocks(header, names, exact_fields, strip_cells, blank_rows)
        table = np.empty((len(names), 0))  # a row per column: each column contiguous
        rows = 0
        line, offset = 1 + _line_ends(first), len(first)
        for text in _whole_lines(handle, rest, on_bytes, block_bytes):
            values = reader.parse(text, line, offset)
            if rows + len(values) > table.shape[1]:  # first block: guess from its rows
                guess = round(len(values) * (size - skipped - len(first)) / len(text) * 1.02)
                grown = np.empty((len(names), max(guess, round(table.shape[1] * 1.25),
                                                  rows + len(values))))
                grown[:, :rows] = table[:, :rows]
                table = grown
            table[:, rows : rows + len(values)] = values.T
            rows += len(values)
            line += reader.lines
            offset += len(text)
    return {name: table[k, :rows] for k, name in enumerate(names)}


def line_of_row(path: Path, index: int, *, blank_rows: bool = False) -> int:
    """The line of ``path`` (as an editor numbers it: 1-based, the header line 1) on
    which row ``index`` starts, counting rows from 0 as ``read_columns`` reads them: an
    empty line is a row with ``blank_rows``, else not one (-1 past the last row). For
    messages about a row: it reads the file again, a row at a time."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        if next(reader, None) is None:
            return -1
        row = 0
        while True:
            start = reader.line_num + 1
            fields = next(reader, None)
            if fields is None:
                return -1
            if fields or blank_rows:
                if row == index:
                    return start
                row += 1


def _line_ends(text: bytes) -> int:
    """How many lines ``text`` ends (by ``\\n``, ``\\r\\n`` or ``\\r``)."""
    return text.count(b"\n") + text.count(b"\r") - text.count(b"\r\n")


def _header_line(handle: BinaryIO, block_bytes: int) -> tuple[bytes, int, bytes]:
    """The bytes of the header row (more than one line if a quoted name holds a line
    end), the length of the byte order mark skipped before it and the bytes read after
    it."""
    text = handle.read(max(block_bytes, len(_BOM)))
    skipped = len(_BOM) if text.startswith(_BOM) else 0
    end = skipped
    while True:
        at = min((i for i in (text.find(b"\n", end), text.find(b"\r", end)) if i >= 0),
                 default=-1)
        if at < 0 or at + 1 == len(text):  # no line end yet, or maybe half of one
            if more := handle.read(block_bytes):
                text += more
                continue
            at = len(text) - 1 if at < 0 else at
        end = at + 1 + (text[at : at + 2] == b"\r\n")
        spans = _quoted(text[skipped:end]) if b'"' in text[skipped:end] else []
        if end == len(text) or not spans or spans[-1][1] < end - skipped:
            return text[skipped:end], skipped, text[end:]


def _header(first: bytes) -> list[str]:
    text = _decoded(first, 1, 0)
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if not header:
        raise NoHeader()
    return [name.strip() for name in header]


def _whole_lines(
    handle: BinaryIO, rest: bytes, on_bytes: Callable[[int], None], block_bytes: int
) -> Iterator[bytes]:
    """``rest`` (whole rows from a row's start) and the rest of ``handle`` in blocks of
    whole rows (about ``block_bytes``); the last one ended by a newline if it was cut
    short of one."""
    while True:
        block = handle.read(block_bytes)
        on_bytes(len(block))
        text = rest + block
        if not block:
            break
        if cut := _cut(text):
            yield text[:cut]
        rest = text[cut:]
    if text:
        yield text if text.endswith((b"\n", b"\r")) else text + b"\n"


def _cut(text: bytes) -> int:
    """Where ``text`` (whole rows from a row's start, then part of one) may be cut
    between rows: after its last line end outside every quoted field, a ``\\r`` that
    ends it being no line end (its ``\\n`` may follow); 0 if nowhere yet."""
    end = len(text)
    for opened, closed in reversed(_quoted(text) if b'"' in text else []):
        cut = _last_line_end(text, end)
        if cut > closed:  # after this field, so after every one before it
            return cut
        end = min(end, opened)
    return _last_line_end(text, end)


def _last_line_end(text: bytes, end: int) -> int:
    return text.rfind(b"\n", 0, end) + 1 or text.rfind(b"\r", 0, min(end, len(text) - 1)) + 1


def _quoted(text: bytes) -> list[tuple[int, int]]:
    """Where the quoted fields of ``text`` (rows from a row's start) open and close,
    ``len(text)`` for one still open at its end. By the csv module's rules: a quote
    opens a field only at its start; inside, a doubled quote is a quote and a single one
    closes it (one that ends ``text`` may be the first of a pair: the field stays
    open)."""
    spans = []
    opened = -1
    at = text.find(b'"')
    while at >= 0:
        if opened < 0:
            if at == 0 or text[at - 1] in b",\r\n":
                opened = at
        elif text[at + 1 : at + 2] == b'"':
            at += 1  # a doubled quote
        elif at + 1 < len(text):
            spans.append((opened, at))
            opened = -1
        at = text.find(b'"', at + 1)
    return [*spans, (opened, len(text))] if opened >= 0 else spans


class _Blocks:
    """Parses blocks of whole rows into the chosen columns."""

    def __init__(self, header: list[str], names: list[str], exact_fields: bool,
                 strip_cells: bool, blank_rows: bool = False) -> None:
        self.fields = len(header)
        self.names = names
        self.at = [header.index(name) for name in names]
        self.exact_fields = exact_fields
        self.blank_rows = blank_rows
        self.strip_cells = strip_cells
        self.lines = 0  # of the last block parsed

    def parse(self, text: bytes, line: int, offset: int) -> np.ndarray:
        """The chosen cells of the rows of ``text``, whose first line is ``line`` of the
        file and first byte at ``offset`` of it."""
        raw = np.frombuffer(text, dtype=np.uint8)
        ends = _plain_ends(text, raw)
        if ends is not None:
            self.lines = ends.size
            values = self._plain(text, raw, ends, line)
            if values is not None:
                return values
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:  # a problem in the rows before it comes first
            self._rows(text[: _cut(text[: exc.start])].decode("utf-8"), line)
            raise _not_utf8(text, exc, line, offset) from None
        return self._rows(decoded, line)

    def _plain(self, text: bytes, raw: np.ndarray, ends: np.ndarray,
               line: int) -> np.ndarray | None:
        """The block parsed by numpy's C reader, or None for the csv module to do it."""
        blank = _blank(raw, ends)
        if self.blank_rows and blank.any():
            return None  # numpy skips an empty line: the csv module keeps it as a row
        if self.exact_fields:  # (else numpy refuses a short row, and the csv module
            # reads its missing cells as NaN)
            counts = np.diff(np.searchsorted(np.flatnonzero(raw == ord(",")), ends),
                             prepend=0) + 1
            counts[blank] = 0  # an empty line: no field (the csv module)
            if np.any(counts != self.fields):
                return None  # the csv module names the first problem, row by row
        if not self.at:
            return np.empty((int(np.count_nonzero(~blank)), 0))
        try:  # the bytes as they are (decoding them first to a str takes 40 % longer)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                values = np.loadtxt(io.BytesIO(text), dtype=float, delimiter=",",
                                    usecols=self.at, comments=None, quotechar=None,
                                    ndmin=2, encoding="ascii")
        except (ValueError, UserWarning):  # an empty cell (NaN), one not a number, a
            return None  # short row
        return values if len(values) == np.count_nonzero(~blank) else None

    def _rows(self, text: str, line: int) -> np.ndarray:
        """The block read by the csv module and ``float``, a row at a time."""
        rows = []
        reader = csv.reader(io.StringIO(text, newline=""))
        needed = max(self.at, default=-1) + 1
        while True:
            number = line + reader.line_num
            try:
                row = next(reader, None)
            except csv.Error as exc:
                raise Malformed(line - 1 + reader.line_num, exc) from None
            if row is None:
                break
            if self.exact_fields:
                if len(row) != self.fields:
                    raise FieldCount(number, len(row), self.fields)
            elif not row:
                if self.blank_rows:
                    rows.append([np.nan] * len(self.at))
                continue
            elif len(row) < needed:
                row += [""] * (needed - len(row))
            rows.append(self._numbers(row, number))
        self.lines = reader.line_num
        return np.array(rows, dtype=float).reshape(len(rows), len(self.at))

    def _numbers(self, row: list[str], line: int) -> list[float]:
        out = []
        for name, i in zip(self.names, self.at, strict=True):
            cell = row[i].strip() if self.strip_cells else row[i]
            try:
                out.append(float(cell) if cell else np.nan)
            except ValueError:
                raise NotANumber(line, name, cell) from None
        return out


def _plain_ends(text: bytes, raw: np.ndarray) -> np.ndarray | None:
    """Where the lines of ``text`` end (its ``\\n``) if it is plain: ASCII, no quote,
    lines ended by ``\\n`` or ``\\r\\n``; else None."""
    if not text.isascii() or any(odd in text for odd in _ODD):
        return None
    ends = np.flatnonzero(raw == ord("\n"))
    if b"\r" in text:
        after = np.flatnonzero(raw == ord("\r")) + 1
        if after[-1] == raw.size or not np.all(raw[after] == ord("\n")):
            return None  # a carriage return that ends no line ending
    return ends


def _blank(raw: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which of the lines ending at ``ends`` (their ``\\n``) are empty."""
    starts = np.concatenate(([0], ends[:-1] + 1)) if ends.size else ends
    length = ends - starts  # without the \n; "\r" alone is empty
    return (length == 0) | ((length == 1) & (raw[starts] == ord("\r")))


def _decoded(text: bytes, line: int, offset: int) -> str:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(text, exc, line, offset) from None


def _not_utf8(text: bytes, error: UnicodeDecodeError, line: int, offset: int) -> NotUtf8:
    """``NotUtf8`` for ``text``, lines of the file from ``line``, from byte ``offset``
    of it after any byte order mark."""
    return NotUtf8(line + _line_ends(text[: error.start]), error, offset + error.start)
