"""Reading a recording's columns: numpy's fast reader and the row-by-row one agree.

``read_columns`` parses a file of plain numbers with numpy's C reader and anything else
row by row; whichever path a file takes, the columns must be the ones the csv module and
Python's ``float`` read (empty cell = NaN), to the bit, and a cell that is not a number
must be named with its line and column.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.detect.csvfiles import CsvError, read_columns

NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=64)
CELLS = st.one_of(
    NUMBERS.map(repr),
    NUMBERS.map(lambda x: f"{x:.6f}"),
    NUMBERS.map(lambda x: f" {x:g} "),
    st.sampled_from(["", "nan", "-inf", "1e3", '"2.5"', "1_0", " ", "0x1p3"]),
)


def _reference(text: str, columns: list[str]) -> dict[str, list[float]] | None:
    """What the csv module and ``float`` read (None: some cell is not a number)."""
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    header = [name.strip() for name in rows[0]]
    out: dict[str, list[float]] = {name: [] for name in columns}
    for row in rows[1:]:
        for name in columns:
            i = header.index(name)
            cell = row[i].strip() if i < len(row) else ""
            try:
                out[name].append(float(cell) if cell else math.nan)
            except ValueError:
                return None
    return out


@settings(max_examples=150, deadline=None)
@given(
    table=st.lists(st.lists(CELLS, min_size=3, max_size=3), min_size=0, max_size=12),
    plain=st.booleans(),
    crlf=st.booleans(),
    blank_line=st.booleans(),
)
def test_both_readers_read_what_csv_and_float_read(tmp_path_factory, table, plain, crlf,
                                                   blank_line):
    if plain:  # most recordings: every cell a plain number, the fast path
        table = [[repr(float(len(row) + j)) for j in range(3)] for row in table]
    lines = ["time_s,gyro_rad_s,heel_switch", *(",".join(row) for row in table)]
    if blank_line and lines[1:]:
        lines.insert(2, "")
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    path = tmp_path_factory.mktemp("csv") / "recording.csv"
    path.write_bytes(text.encode())
    columns = ["gyro_rad_s", "time_s"]
    expected = _reference(text, columns)
    if expected is None:
        with pytest.raises(CsvError, match=r"line \d+, column '\w+'"):
            read_columns(path, columns)
        return
    got = read_columns(path, columns)
    for name in columns:
        assert got[name].dtype == np.float64
        assert np.array_equal(got[name], np.array(expected[name]), equal_nan=True), name


def test_a_recording_with_a_missing_sample_reads_it_as_nan(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("time_s,gyro_rad_s\n0.0,1.5\n0.002,\n0.004,-2.25\n")
    got = read_columns(path, ["gyro_rad_s"])["gyro_rad_s"]
    assert got[0] == 1.5 and math.isnan(got[1]) and got[2] == -2.25


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="01,.e-\n\r \t\x0bx\"", max_size=40))
def test_the_fast_reader_counts_lines_as_splitlines_does(text):
    """The fast path trusts numpy's rows only if there are as many as the csv module's
    rows (non-empty lines); the count made on the bytes of a block (whole lines, the
    last one ended, as ``controller.csvcolumns`` cuts them) must be that number, or the
    block must go row by row (None) when its line endings are not plain."""
    from controller.csvcolumns import _blank, _plain_ends

    block = text.encode()
    block += b"" if block.endswith((b"\n", b"\r")) else b"\n"
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = _plain_ends(block, raw)
    found = None if ends is None else int(np.count_nonzero(~_blank(raw, ends)))
    plain = '"' not in text and "\x0b" not in text and "\r" not in text.replace("\r\n", "")
    if plain:
        assert found == sum(1 for line in text.splitlines() if line)
    else:
        assert found is None


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "."])
def test_a_device_or_folder_is_refused_before_it_is_read(path):
    """Found by the 10,000-command-line fuzz run: ``fes detect --input /dev/zero`` read
    an endless device until the machine ran out of memory (24 GB)."""
    with pytest.raises(CsvError, match=r"not a regular file"):
        read_columns(Path(path), ["time_s"])
