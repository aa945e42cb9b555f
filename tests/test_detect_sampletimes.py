"""``controller.detect.sampletimes``: the time of each sample of a recording, checked,
and the notes on a time unit or a fixed rate that does not fit the file (``fes detect``
prints them; tests/test_detect_cli.py runs them through the command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controller.commands.detect import TIME_UNIT_NAMES
from controller.detect.csvfiles import CsvError
from controller.detect.samplerows import read_samples
from controller.detect.sampletimes import PLAUSIBLE_RATE_HZ, TIME_UNITS, SampleClock

PATH = Path("walk.csv")


def test_the_command_offers_the_units_the_clock_reads():
    assert tuple(TIME_UNITS) == TIME_UNIT_NAMES


def test_a_fixed_rate_dates_sample_k_at_k_over_the_rate():
    t_s = SampleClock(rate_hz=200.0).times(PATH, {}, 5)
    assert t_s.tolist() == [0.0, 0.005, 0.01, 0.015, 0.02]


def test_a_time_column_is_read_in_its_unit():
    columns = {"stamp": np.array([1000.0, 1010.0, 1020.0])}
    t_s = SampleClock(column="stamp", unit="ms").times(PATH, columns, 3)
    assert np.allclose(t_s, [1.0, 1.01, 1.02])


@pytest.mark.parametrize(("text", "expected"), [
    ("time_s\n0.0\n0.01\n\n\n0.03\n0.04\n", None),
    ("time_s\n0.0\n0.01\n,\n\n,\n0.04\n",
     "walk.csv: column 'time_s' has empty or non-finite values in 2 row(s), the first on "
     "line 4: every sample needs its time"),
    ("time_s\n0.0\n0.01\n0.02\n0.02\n0.04\n",
     "walk.csv: column 'time_s' must increase from row to row: line 5 has 0.02 after "
     "0.02 on line 4 (time in seconds;"),
    # the empty lines that a time column skips count as lines (an editor's numbers):
    # they were 'data row 3' and 'data row 4', rows of numbers counted from 1
    ("time_s\n\n0.0\n\n0.01\n\n0.02\n0.02\n",
     "walk.csv: column 'time_s' must increase from row to row: line 8 has 0.02 after "
     "0.02 on line 7 (time in seconds;"),
])
def test_a_missing_or_repeated_time_is_refused_naming_its_line(tmp_path, monkeypatch, text,
                                                               expected):
    monkeypatch.chdir(tmp_path)
    PATH.write_text(text)
    columns, _ = read_samples(PATH, ["time_s"], fixed_rate=False)
    n = columns["time_s"].size
    if expected is None:
        assert SampleClock().times(PATH, columns, n).tolist() == [0.0, 0.01, 0.03, 0.04]
        return
    with pytest.raises(CsvError) as error:
        SampleClock().times(PATH, columns, n)
    assert str(error.value).startswith(expected)


def test_a_replay_words_its_own_advice_and_places():
    times = {"time_s": np.array([0.0, 0.01, 0.01])}
    with pytest.raises(CsvError, match=r"packet 3 has 0.01 after 0.01 on packet 2 \(time in "
                       r"seconds; fix it\)$"):
        SampleClock().times(PATH, times, 3, where=lambda k: f"packet {k + 1}", advice="fix it")


@pytest.mark.parametrize(("step", "unit", "said"), [
    (10.0, "s", "stamp steps 10 s from sample to sample (median), 0.1 Hz read as s: is it in "
                "ms (100 Hz)? Pass --time-unit ms."),
    (1e4, "ms", "stamp steps 1e+04 ms from sample to sample (median), 0.1 Hz read as ms: is "
                "it in us (100 Hz)? Pass --time-unit us."),
    (0.01, "ms", "stamp steps 0.01 ms from sample to sample (median), 1e+05 Hz read as ms: "
                 "is it in s (100 Hz)? Drop --time-unit."),
    (0.01, "s", None),  # 100 Hz
    (1.0 / PLAUSIBLE_RATE_HZ[0], "s", None),  # 4 Hz: slow, but a rate some recordings have
    (1e-6, "s", None),  # 1 MHz, but no other unit gives a walking rate either
])
def test_a_time_unit_that_dates_no_walking_rate_names_the_unit_that_does(step, unit, said):
    clock = SampleClock(column="stamp", unit=unit)
    t_s = clock.in_seconds(np.arange(50) * step)
    note = clock.unit_note(t_s)
    assert (note.text if note else None) == said
    assert note is None or note.kind == "note"


def test_the_unit_note_gives_the_median_step_of_an_even_count():
    """A 400 Hz logger stamping whole milliseconds steps 2, 3, 2, 3 ms: the median is
    2.5 ms. The note took the upper of the two middle steps when their count was even,
    and named 3 ms and 333.3 Hz, a rate the recording was not taken at."""
    stamps = (np.arange(401) * 5) // 2  # 0, 2, 5, 7, 10, ...: 400 steps, half 2, half 3
    clock = SampleClock(column="t_ms")
    note = clock.unit_note(clock.in_seconds(stamps.astype(float)))
    assert note is not None and note.text == (
        "t_ms steps 2.5 s from sample to sample (median), 0.4 Hz read as s: is it in ms "
        "(400 Hz)? Pass --time-unit ms.")


def test_a_fixed_rate_is_compared_with_the_files_own_time_column():
    time_s = np.arange(100) * 0.002  # 500 Hz
    assert SampleClock(rate_hz=510.0).rate_note(time_s) is None  # within 5 %
    assert SampleClock(rate_hz=500.0).rate_note(None) is None  # the file has none
    note = SampleClock(rate_hz=100.0).rate_note(time_s)
    assert note is not None and note.text.startswith(
        "--rate-hz 100 dates the samples 10 ms apart, but the file's time_s column has "
        "them 2 ms apart (median; 500 Hz); time_s was ignored.")
    assert SampleClock().unit_note(time_s) is None


def test_comparing_a_fixed_rate_with_the_time_column_leaves_numpy_ma_unloaded():
    """np.median's first call imports numpy.ma, 8 ms of a fes detect that takes half a
    second (controller.detect.period); fes detect --rate-hz on a file with time_s made
    that call."""
    code = (
        "import sys, numpy as np\n"
        "from controller.detect.sampletimes import SampleClock\n"
        "note = SampleClock(rate_hz=100.0).rate_note(np.arange(1000) * 0.002)\n"
        "print(note.text.split(';')[0], '|', 'numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ("--rate-hz 100 dates the samples 10 ms apart, but the file's time_s "
                   "column has them 2 ms apart (median | False")
