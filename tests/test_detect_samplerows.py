"""``controller.detect.samplerows``: a user's recording read into samples, a row each:
at a fixed rate an empty line is a missing sample but those that end the file are none,
and a last row cut off while it was written is left out with a note
(tests/test_detect_cli.py runs both through ``fes detect``)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.cli import main
from controller.detect.csvfiles import CsvError
from controller.detect.samplerows import read_samples


def test_at_a_fixed_rate_an_empty_line_is_a_missing_sample_but_not_one_that_ends_the_file(
    tmp_path,
):
    path = tmp_path / "gyro.csv"
    path.write_text("gyr_y\n1.5\n\n2.5\n\n\n")
    columns, note = read_samples(path, ["gyr_y"], fixed_rate=True)
    assert np.array_equal(columns["gyr_y"], [1.5, np.nan, 2.5], equal_nan=True)
    assert note is None
    columns, _ = read_samples(path, ["gyr_y"], fixed_rate=False)  # times date each row
    assert columns["gyr_y"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_file_whose_last_line_is_ended_keeps_every_row(tmp_path, end):
    path = tmp_path / "walk.csv"
    path.write_text(end.join(["time_s,gyro", "0.0,1.0", "0.01,-1.125"]) + end, newline="")
    columns, note = read_samples(path, ["time_s", "gyro"], fixed_rate=False)
    assert columns["gyro"].tolist() == [1.0, -1.125] and note is None


@pytest.mark.parametrize("fixed_rate", [False, True])
def test_a_last_row_cut_off_while_written_is_left_out_with_a_note(tmp_path, fixed_rate):
    """'-1.' of '-1.125' would be read as -1: the row is left out, and the user told."""
    path = tmp_path / "walk.csv"
    path.write_text("time_s,gyro\n0.0,1.0\n0.01,-1.")
    columns, note = read_samples(path, ["time_s", "gyro"], fixed_rate=fixed_rate)
    assert columns["time_s"].tolist() == [0.0] and columns["gyro"].tolist() == [1.0]
    assert note is not None and note.kind == "note"
    assert note.text.startswith(f"the last line of {path} has no line end")
    assert "that row was left out (if it is whole, end the file with a newline)" in note.text


@pytest.mark.parametrize(("text", "fixed_rate", "why"), [
    # a header without its line end is no cut row
    ("gyr_y", True, "the header row has no sample row below it"),
    ("time_s,gyr_y\n", False, "the header row has no sample row below it"),
    # empty lines and rows of empty cells that end a file end it: none is left
    ("gyr_y\n\n\n", True, "the header row has no sample row below it"),
    ("time_s,gyr_y\n,\n,\n", False, "the header row has no sample row below it"),
    ("time_s,gyr_y\n0.0,1.", False, "its only row has no line end"),
])
def test_a_file_with_no_sample_row_is_refused(tmp_path, text, fixed_rate, why):
    """A header alone was read as a walk of 0 samples: fes detect wrote no events and
    exited 0 ('0 events from 0 samples'), when the user had given the wrong file."""
    path = tmp_path / "empty.csv"
    path.write_text(text)
    wanted = ["gyr_y"] if fixed_rate else ["time_s", "gyr_y"]
    with pytest.raises(CsvError) as error:
        read_samples(path, wanted, fixed_rate=fixed_rate)
    assert str(error.value).startswith(f"{path}: no samples: {why}")
    assert str(error.value).endswith("is it the recording you meant?")


@pytest.mark.parametrize("fixed_rate", [False, True])
def test_rows_of_empty_cells_that_end_a_spreadsheet_export_are_no_samples(tmp_path, fixed_rate):
    """A spreadsheet saves the rows it has touched past the data as empty cells (',').
    At a fixed rate they were left out; dated by the file's time column they were
    samples without a time, and fes detect refused the recording (exit 2, 'every sample
    needs its time')."""
    path = tmp_path / "export.csv"
    path.write_text("time_s,gyro\n0.0,1.0\n0.01,\n0.02,-1.125\n,\n,\n")
    columns, note = read_samples(path, ["time_s", "gyro"], fixed_rate=fixed_rate)
    assert columns["time_s"].tolist() == [0.0, 0.01, 0.02] and note is None
    assert np.array_equal(columns["gyro"], [1.0, np.nan, -1.125], equal_nan=True)
    out = tmp_path / "events.csv"
    options = ["--rate-hz", "100"] if fixed_rate else []
    assert main(["detect", "--input", str(path), "--output", str(out), "--gyro-column",
                 "gyro", *options]) == 0
    assert out.read_text() == "time_s,event\n"
