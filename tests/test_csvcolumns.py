"""The one CSV column reader (``controller.csvcolumns``) that ``fes report`` and ``fes
detect`` share: what it reads is what the csv module and ``float`` read of the whole
file, however the file is cut into blocks, and a problem is named by its line as an
editor numbers it, in each command's own words."""

from __future__ import annotations

import csv
import io
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import csvcolumns
from controller.csvcolumns import (
    CsvProblem,
    FieldCount,
    Malformed,
    NoHeader,
    NotANumber,
    NotUtf8,
    read_columns,
)
from controller.detect.csvfiles import CsvError
from controller.detect.csvfiles import read_columns as detect_columns
from controller.report import trial_data
from controller.validation import ConfigError

HEADER = ["time_s", "gyro_rad_s", "note"]
WANTED = ["gyro_rad_s", "time_s"]


def _choose(header: list[str]) -> list[str]:
    return [name for name in WANTED if name in header]


def _read(path: Path, *, exact: bool, strip: bool = False, block_bytes: int = 1 << 20,
          choose=_choose) -> dict[str, np.ndarray]:
    return read_columns(path, choose, exact_fields=exact, strip_cells=strip,
                        block_bytes=block_bytes)


def _outcome(path: Path, exact: bool, strip: bool, block_bytes: int) -> object:
    """The columns read, or the problem's kind and line."""
    try:
        got = _read(path, exact=exact, strip=strip, block_bytes=block_bytes)
    except CsvProblem as problem:
        return type(problem).__name__, problem.line
    return {name: values.tobytes() for name, values in got.items()}


def _reference(data: bytes, exact: bool, strip: bool) -> dict[str, np.ndarray] | None:
    """What the csv module and ``float`` read of the whole file (None: a problem)."""
    try:
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    if not rows or not rows[0]:
        return None
    header = [name.strip() for name in rows[0]]
    at = [header.index(name) for name in _choose(header)]
    out: list[list[float]] = []
    for row in rows[1:]:
        if exact and len(row) != len(header):
            return None
        if not row:
            continue
        row = row + [""] * (len(header) - len(row))
        try:
            cells = [row[i].strip() if strip else row[i] for i in at]
            out.append([float(cell) if cell else math.nan for cell in cells])
        except ValueError:
            return None
    table = np.array(out, dtype=float).reshape(len(out), len(at))
    return {name: table[:, k] for k, name in enumerate(_choose(header))}


NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=64)
CELLS = st.one_of(
    NUMBERS.map(repr),
    NUMBERS.map(lambda x: f"{x:.6f}"),
    st.sampled_from(["", " ", " 2.5 ", '"2.5"', '"1\n"', '"3\r\n"', '"4,5"', '1"2', "x",
                     "1_0", "nan", "-inf", "caf\u00e9", '""', '"a""b"']),
)
ROW = st.lists(CELLS, min_size=2, max_size=4)


@st.composite
def files(draw) -> bytes:
    """Small CSV files with what real ones hold and what breaks readers: quoted cells
    (some with line ends or commas inside), blank cells, short and long rows, blank
    lines, every kind of line end, a byte order mark, no final newline, bytes that
    are not UTF-8."""
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    rows = draw(st.lists(st.one_of(ROW, st.just([])), max_size=10))
    plain = draw(st.booleans())
    if plain:  # most files: three plain numbers a row
        rows = [[repr(float(k + j)) for j in range(3)] for k in range(len(rows))]
    lines = [",".join(HEADER), *(",".join(row) for row in rows)]
    data = (end.join(lines) + (end if draw(st.booleans()) else "")).encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if not plain and draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff" + data[at:]
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=files(), exact=st.booleans(), strip=st.booleans(),
       block_bytes=st.sampled_from([1, 2, 3, 5, 8, 13, 64, 4096]))
def test_block_boundaries_never_change_what_is_read(tmp_path_factory, data, exact, strip,
                                                    block_bytes):
    """Cut into blocks from one byte to more than the file: the same columns to the bit
    (those of the csv module and ``float`` on the whole file), or the same problem at the
    same line."""
    path = tmp_path_factory.mktemp("csv") / "samples.csv"
    path.write_bytes(data)
    whole = _outcome(path, exact, strip, 1 << 20)
    assert _outcome(path, exact, strip, block_bytes) == whole
    expected = _reference(data, exact, strip)
    if expected is None:
        assert isinstance(whole, tuple), "the csv module refuses this file"
        return
    assert isinstance(whole, dict), whole
    for name, values in expected.items():
        assert whole[name] == values.tobytes(), name


def _file(tmp_path: Path, text: str | bytes, name: str = "samples.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _rows(count: int, start: int = 0) -> str:
    return "".join(f"{k * 0.002:.3f},{0.25 * k},a\n" for k in range(start, start + count))


def test_a_short_row_in_a_later_block_is_named_by_its_line(tmp_path):
    """Line 2,003 of the file (the header is line 1), far past the first blocks."""
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n" + _rows(2001) + "4.002,1.5\n"
                 + _rows(10, 2002))
    with pytest.raises(FieldCount) as raised:
        _read(path, exact=True, block_bytes=256)
    assert (raised.value.line, raised.value.fields, raised.value.expected) == (2003, 2, 3)
    with pytest.raises(ConfigError, match=r"samples.csv: line 2003 has 2 fields, the header 3"):
        trial_data._read_samples_csv(path, ["time_s", "gyro_rad_s"])
    got = detect_columns(path, ["gyro_rad_s"])["gyro_rad_s"]  # fes detect: NaN, read on
    assert got.size == 2012 and got[2001] == 1.5


def test_a_file_with_a_header_and_no_rows_has_empty_columns(tmp_path):
    got = _read(_file(tmp_path, "time_s,gyro_rad_s,note\n"), exact=True)
    assert list(got) == WANTED and all(v.size == 0 and v.dtype == float for v in got.values())
    got = _read(_file(tmp_path, "time_s,gyro_rad_s,note"), exact=False)
    assert all(v.size == 0 for v in got.values())


@pytest.mark.parametrize("text", ["", "\n", "\r\n", "\xef\xbb\xbf"])
def test_an_empty_file_or_first_line_is_no_header(tmp_path, text):
    path = _file(tmp_path, text.encode("latin-1"))
    with pytest.raises(NoHeader):
        _read(path, exact=True)
    with pytest.raises(ConfigError, match=r"samples.csv: empty file"):
        trial_data._read_samples_csv(path, ["time_s"])
    with pytest.raises(CsvError, match=r"empty file \(a header row is needed\)"):
        detect_columns(path, ["time_s"])


def test_bytes_that_are_not_utf8_are_named_by_line_and_position_in_the_file(tmp_path):
    path = _file(tmp_path, ("time_s,gyro_rad_s,note\n" + _rows(300)).encode()
                 + b"0.6,1.0,caf\xe9\n" + _rows(5, 301).encode())
    offset = path.read_bytes().index(b"\xe9")
    with pytest.raises(NotUtf8) as raised:
        _read(path, exact=True, block_bytes=100)
    assert raised.value.line == 302 and raised.value.offset == offset
    with pytest.raises(ConfigError,
                       match=r"samples.csv: line 302: not UTF-8 text \(invalid continuation"):
        trial_data._read_samples_csv(path, ["time_s"])
    with pytest.raises(CsvError, match=(rf"cannot read: 'utf-8' codec can't decode byte 0xe9 "
                                        rf"in position {offset}: invalid continuation byte")):
        detect_columns(path, ["time_s"])


def test_a_problem_before_bad_bytes_in_the_same_block_is_named_first(tmp_path):
    path = _file(tmp_path, b"time_s,gyro_rad_s,note\n0,fast,a\n0.002,1,caf\xe9\n")
    with pytest.raises(NotANumber) as raised:
        _read(path, exact=True)
    assert (raised.value.line, raised.value.column, raised.value.cell) == (2, "gyro_rad_s",
                                                                           "fast")


@pytest.mark.parametrize("end", ["\r\n", "\r"])
def test_windows_and_old_mac_line_ends_read_as_unix_ones(tmp_path, end):
    unix = "time_s,gyro_rad_s,note\n" + _rows(500)
    want = _read(_file(tmp_path, unix, "unix.csv"), exact=True, block_bytes=97)
    for exact in (True, False):
        got = _read(_file(tmp_path, unix.replace("\n", end)), exact=exact, block_bytes=97)
        for name in WANTED:
            assert got[name].tobytes() == want[name].tobytes()


def test_a_final_line_without_newline_is_read(tmp_path):
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n0,1.5,a\n0.002,-2.25,b")
    for exact in (True, False):
        assert _read(path, exact=exact, block_bytes=4)["gyro_rad_s"].tolist() == [1.5, -2.25]


def test_a_missing_column_is_named_by_each_command(tmp_path):
    path = _file(tmp_path, "time_s;gyro_rad_s\n0;1\n")
    with pytest.raises(CsvError, match=(r"no column 'time_s'; the file has: "
                                        r"time_s;gyro_rad_s \(one column: the file seems "
                                        r"separated by ';'")):
        detect_columns(path, ["time_s", "gyro_rad_s"])
    # the report reads the columns the file has; load_trial names the missing ones
    assert list(trial_data._read_samples_csv(path, ["time_s", "gyro_rad_s"])) == []


def test_a_byte_order_mark_and_spaces_around_names_are_not_part_of_them(tmp_path):
    path = _file(tmp_path, b"\xef\xbb\xbf time_s , gyro_rad_s,note\n0,1.5,a\n")
    assert _read(path, exact=True)["time_s"].tolist() == [0.0]


def test_a_quoted_cell_holding_a_line_end_across_blocks_is_one_row(tmp_path):
    path = _file(tmp_path, 'time_s,gyro_rad_s,note\n0,1,"a\nb"\n0.002,"2\n",c\n0.004,3,d\n')
    for block_bytes in (1, 5, 11, 1 << 10):
        got = _read(path, exact=True, block_bytes=block_bytes)
        assert got["gyro_rad_s"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(NotANumber) as raised:  # line 7, as an editor shows it
        _read(_file(tmp_path, path.read_text() + "0.006,x,e\n"), exact=True, block_bytes=5)
    assert raised.value.line == 7


def test_blank_lines_are_rows_of_no_field_or_skipped(tmp_path):
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n0,1,a\n\n0.004,x,d\n")
    with pytest.raises(FieldCount) as raised:
        _read(path, exact=True)
    assert (raised.value.line, raised.value.fields) == (3, 0)
    with pytest.raises(CsvError, match=r"line 4, column 'gyro_rad_s': 'x' is not a number"):
        detect_columns(path, ["time_s", "gyro_rad_s"])


def test_blank_cells_are_nan_or_not_a_number_as_the_caller_says(tmp_path):
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n0, ,a\n0.002,,b\n")
    got = _read(path, exact=True, strip=True)["gyro_rad_s"]
    assert np.isnan(got).all() and got.size == 2
    with pytest.raises(NotANumber) as raised:
        _read(path, exact=True, strip=False)
    assert (raised.value.line, raised.value.cell) == (2, " ")


def test_a_field_beyond_the_csv_limit_is_malformed_with_its_line(tmp_path):
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n0,1,a\n0.002," + "x" * 140_000 + ",b\n")
    with pytest.raises(Malformed) as raised:
        _read(path, exact=True)
    assert raised.value.line == 3
    with pytest.raises(ConfigError, match=r"samples.csv: line 3: field larger than field"):
        trial_data._read_samples_csv(path, ["time_s", "gyro_rad_s"])


def test_the_bytes_read_are_told_as_they_are_read(tmp_path):
    path = _file(tmp_path, "time_s,gyro_rad_s,note\n" + _rows(1000))
    told: list[int] = []
    read_columns(path, _choose, exact_fields=True, strip_cells=False,
                 on_bytes=told.append, block_bytes=1000)
    assert sum(told) == path.stat().st_size and max(told) <= 2000 and len(told) > 10


def test_fes_detect_holds_less_than_the_file_in_memory(tmp_path, monkeypatch):
    """It held the whole file's bytes and more (1.47 times a 443 MB samples.csv, 2.4
    times this file as traced); now the columns as numbers (0.35 of this file of short
    rows) and a block of text at a time."""
    monkeypatch.setattr(csvcolumns, "BLOCK_BYTES", 1 << 16)
    path = _file(tmp_path, "time_s,gyro_rad_s,heel_switch,a,b,c\n" + "".join(
        f"{k * 0.002:.3f},{0.001 * k:.6f},{k % 2},1.000000,2.000000,3.000000\n"
        for k in range(40_000)))
    tracemalloc.start()
    try:
        got = detect_columns(path, ["time_s", "gyro_rad_s"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got["gyro_rad_s"].size == 40_000
    assert peak < 0.9 * path.stat().st_size, f"{peak / path.stat().st_size:.2f} x the file"


def test_the_block_size_is_the_readers_own_unless_a_caller_says(tmp_path):
    assert csvcolumns.BLOCK_BYTES == trial_data.READ_BLOCK_BYTES == 1 << 23


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_row_is_named_by_the_line_it_starts_on(tmp_path, end):
    """For messages about a row: the line as an editor numbers it (the header is line 1,
    empty lines count, a quoted line end too), the row counted as read_columns reads it."""
    path = tmp_path / "walk.csv"
    lines = ["t,note", "", "0.0,a", "", '0.01,"two', 'lines"', "0.02,b"]
    path.write_bytes(b"\xef\xbb\xbf" + end.join(lines).encode() + end.encode())
    rows = csvcolumns.read_columns(path, lambda header: ["t"], exact_fields=False,
                                   strip_cells=True)["t"].size
    assert rows == 3
    assert [csvcolumns.line_of_row(path, k) for k in range(4)] == [3, 5, 7, -1]
    assert [csvcolumns.line_of_row(path, k, blank_rows=True) for k in range(6)] == [
        2, 3, 4, 5, 7, -1]
