"""Fuzzing ``fes detect``: generated recordings and event files.

The CSVs are mostly what a user might hand over (a header, a time column, a gyroscope
column, a heel column, others), made imperfect in the ways real files are: a byte order
mark, CRLF line ends, quoted cells, empty cells, words and non-finite numbers in number
columns, times that stall or go back, short and long rows, huge fields, NUL bytes, text
that is not UTF-8; sometimes just random bytes. Properties: exit 0 or 2 with no
traceback; on 0, the events file lists events in time order with known names. The
default run is a fixed (derandomized) sample of 150 files, a few seconds; ``-m slow``
draws 10,000 afresh.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers.fuzzing import check_outcome, fes, scratch, weighted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.events import EVENT_BY_NAME

CELL = weighted(
    (6, st.floats(-20.0, 20.0, allow_nan=False).map(lambda v: f"{v:.4f}")),
    (2, st.sampled_from(["", "nan", "inf", "-inf", "1e400", "abc", '"1.5"', " 2 ", "0x1",
                         "1,5", "\x00", "１"])),
    (1, st.text(max_size=5)),
)
COLUMNS = weighted(
    (3, st.just(["time_s", "gyro_rad_s"])),
    (1, st.just(["time_s", "gyro_rad_s", "heel_switch", "heel_force_n", "other"])),
    (1, st.lists(st.sampled_from(["time_s", "gyro_rad_s", "heel_switch", "heel_force_n",
                                  "other", "Time_s", " gyro_rad_s ", ""]),
                 min_size=1, max_size=5)),
)


def clean_cell(name: str, k: int, period: float) -> str:
    """Row ``k``'s value of column ``name`` in a well-formed recording (a walk-like gyro
    signal, a heel switch, a heel force)."""
    column = name.strip()
    if column.lower() == "time_s":
        return f"{k * period:.6f}"
    if column == "heel_switch":
        return str(int(k % 500 > 300))
    if column == "heel_force_n":
        return f"{600.0 * (k % 500 > 300):.1f}"
    return f"{3.0 * ((k % 550) / 275.0 - 1.0):.3f}"


@st.composite
def recording(draw: st.DrawFn) -> bytes:
    """A recording CSV as bytes, imperfect in the ways real files are."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    columns = draw(COLUMNS)
    rows = draw(st.integers(0, 3000))
    period = draw(st.sampled_from([0.002] * 6 + [0.01, 0.0, -0.002, 1.0]))
    table = [[clean_cell(name, k, period) for name in columns] for k in range(rows)]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 3]))):  # a few bad cells, or none
        if table:
            row = draw(st.integers(0, rows - 1))
            table[row][draw(st.integers(0, len(columns) - 1))] = draw(CELL)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1]))):  # a short or long row
        if table:
            row = draw(st.integers(0, rows - 1))
            table[row] = table[row][:-1] if draw(st.booleans()) else [*table[row], "x"]
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = newline.join([",".join(columns), *(",".join(r) for r in table)]) + newline
    data = text.encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 14)) == 0:
        data += b"9" * draw(st.sampled_from([200_000, 10]))
    if draw(st.integers(0, 14)) == 0:
        data = data.replace(b"1", b"\xff", 1)
    return data


EVENTS = st.one_of(
    st.just(b"time_s,event\n0.5,heel_strike\n1.0,toe_off\n"),
    st.lists(st.tuples(st.one_of(st.floats(-1, 100), st.just(float("nan"))), st.sampled_from(
        [*EVENT_BY_NAME, "stumble", ""]), st.sampled_from(["true", "detected", ""])),
        max_size=20).map(lambda rows: ("time_s,event,source\n" + "".join(
            f"{t},{e},{s}\n" for t, e, s in rows)).encode()),
    st.binary(max_size=100),
)
OPTIONS = st.lists(st.sampled_from([
    ["--sensor", "heel"], ["--sensor", "fused"], ["--rate-hz", "500"], ["--rate-hz", "0.001"],
    ["--gyro-units", "deg/s"], ["--invert"], ["--heel-threshold-n", "50"],
    ["--placement", "foot"], ["--tolerance-ms", "1"], ["--gyro-column", "other"],
]), max_size=3).map(lambda chosen: [token for option in chosen for token in option])


def check_detect(root: Path, data: bytes, events: bytes | None, options: list[str]) -> int:
    with scratch(root, "case") as folder:
        (folder / "rec.csv").write_bytes(data)
        argv = ["detect", "--input", "rec.csv", "--output", "out.csv", *options]
        if events is not None:
            (folder / "truth.csv").write_bytes(events)
            argv += ["--truth", "truth.csv"]
        code, err = fes(argv, folder)
        check_outcome(code, err, frozenset({0, 2}))
        if code == 0:
            with (folder / "out.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            times = [float(r["time_s"]) for r in rows]
            assert times == sorted(times)
            assert all(r["event"] in EVENT_BY_NAME for r in rows)
        return code


def test_generated_recordings_are_detected_or_named(tmp_path):
    codes: list[int] = []

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(recording(), st.one_of(st.none(), EVENTS), OPTIONS)
    def run(data, events, options):
        codes.append(check_detect(tmp_path, data, events, options))

    run()
    assert codes.count(0) >= 5 and codes.count(2) >= 5


@pytest.mark.slow
def test_10000_generated_recordings(tmp_path):
    codes: list[int] = []

    @settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(recording(), st.one_of(st.none(), EVENTS), OPTIONS)
    def run(data, events, options):
        codes.append(check_detect(tmp_path, data, events, options))

    run()
    print(f"\ndetect fuzz: cases tried {len(codes)} (exit 0: {codes.count(0)}, exit 2: "
          f"{codes.count(2)}), failures 0")
    assert len(codes) >= 10_000
