"""The rows of a user's recording as ``fes detect`` reads them into samples.

The columns are read by ``controller.detect.csvfiles`` (an empty cell is a missing
sample). Two rules of the rows are the recording's, not the CSV file's:

- at a fixed rate, a sample is a row, so an empty line is a missing sample (one column
  written with its missing cells empty, as a spreadsheet exports it, is empty lines),
  but the empty lines that end a file end it; so do the rows of nothing but empty cells
  that end it (``,,``: a spreadsheet saves the rows it has touched past the data so),
  at a fixed rate or dated by a time column (which would refuse them as samples
  without a time);
- a last line without a line end, as a logger stopped while writing a row leaves it,
  is left out with a note: its cut number (a time stamp ``29.9`` of ``29.98``, a rate
  ``-1.`` of ``-1.125``) would be read as if whole;
- a file left with no sample row (a header alone, or empty rows below it) is refused
  (``CsvError``): it is not a walk without steps but most likely the wrong file.

``fes run --sensors replay:PATH`` reads a CSV recording by the same rules
(``controller.trial.recording``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from controller.detect.csvfiles import CsvError, read_columns
from controller.detect.notes import Note


def read_samples(
    path: Path, wanted: Iterable[str], optional: Iterable[str] = (), *,
    fixed_rate: bool, meanings: Mapping[str, str] | None = None,
    on_bytes: Callable[[int], None] = lambda count: None,
) -> tuple[dict[str, np.ndarray], Note | None]:
    """The ``wanted`` columns of the recording at ``path`` and those of ``optional`` it
    has (``read_columns``: ``meanings`` say what a missing one holds, ``on_bytes`` is
    told of the bytes read), a row per sample (``fixed_rate``: an empty line too),
    without the empty rows that end the file or a last row cut off; and the note saying
    a row was left out (None: none was)."""
    columns = read_columns(path, wanted, optional, on_bytes=on_bytes, meanings=meanings,
                           blank_rows=fixed_rate)
    note = _without_cut_row(path, columns, _ends_unended(path))
    _without_end_blanks(columns)
    if len(next(iter(columns.values()), ())) == 0:
        raise CsvError(_no_samples(path, note))
    return columns, note


def _no_samples(path: Path, note: Note | None) -> str:
    """Why ``path`` has no sample (``note``: its one row was cut off), for a refusal: a
    file with a header and nothing below it is not a recording of no steps, but most
    likely the wrong file (a template, a recording stopped before its first row)."""
    what = ("its only row has no line end, as a recording cut off while it was written "
            "leaves it, and was left out (if it is whole, end the file with a newline)"
            if note is not None else "the header row has no sample row below it")
    return no_samples(path, what)


def no_samples(path: Path, what: str) -> str:
    """The refusal of a recording ``path`` without a sample (``what`` it has instead),
    for every kind of recording alike."""
    return f"{path}: no samples: {what}; is it the recording you meant?"


def _ends_unended(path: Path) -> bool:
    """Whether the file's last line has no line end, as a logger stopped in the middle
    of writing a row leaves it (False for an empty file)."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) not in (b"\n", b"\r")


def _without_end_blanks(columns: dict[str, np.ndarray]) -> None:
    """Leave out the rows of nothing but empty cells that end ``columns``: read at a
    fixed rate an empty line is a missing sample, but the empty lines and rows of empty
    cells that end a file end it."""
    table = np.vstack(list(columns.values()))
    found = np.flatnonzero(~np.all(np.isnan(table), axis=0))
    rows = int(found[-1]) + 1 if found.size else 0
    for name, values in columns.items():
        columns[name] = values[:rows]


def _without_cut_row(path: Path, columns: dict[str, np.ndarray], unended: bool) -> Note | None:
    """Leave out the last row of ``columns`` (read from ``path``) if the file ended
    without a line end (``unended``). Returns what to tell the user (None: nothing left
    out)."""
    if not unended or len(next(iter(columns.values()))) == 0:
        return None
    for name, values in columns.items():
        columns[name] = values[:-1]
    return Note("note", (
        f"the last line of {path} has no line end, as a recording cut off while a row "
        "was written leaves it: that row was left out (if it is whole, end the file with "
        "a newline)."
    ))
