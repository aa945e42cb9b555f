"""`fes detect`: a recorded trial gives back the loop's own events; bad input exits 2
with a message that names what is wrong, never a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trial")
    assert main(["sim", "--duration-s", "12", "--seed", "5", "--out", str(out)]) == 0
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_replaying_a_trial_gives_the_loops_events(trial, tmp_path, capsys):
    """The loop's events, and before them the strides its mounting check held back (the
    replay checks the sign on the whole file instead)."""
    out = tmp_path / "events.csv"
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", str(out)]) == 0
    assert "events" in capsys.readouterr().out
    live = sorted((float(r["time_s"]), r["event"]) for r in rows(trial / "events.csv")
                  if r["source"] == "detected")
    replay = [(float(r["time_s"]), r["event"]) for r in rows(out)]
    held_back = len(replay) - len(live)
    assert 9 <= held_back <= 18  # three to six strides of three events each
    assert [e for _, e in replay[held_back:]] == [e for _, e in live]
    assert np.allclose([t for t, _ in replay[held_back:]], [t for t, _ in live], atol=1e-5)


def test_the_cycle_collector_is_on_again_after_detect_even_when_it_fails(trial, tmp_path,
                                                                         capsys):
    """fes detect runs without Python's cycle collector (start-up time); called in a
    process that goes on (a test, a script), it must leave the collector as it was."""
    import gc

    out = str(tmp_path / "e.csv")
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", out]) == 0
    assert gc.isenabled()
    assert main(["detect", "--input", str(tmp_path / "missing.csv"), "--output", out]) == 2
    assert gc.isenabled()
    capsys.readouterr()


def test_truth_scores_are_printed_as_json(trial, tmp_path, capsys):
    args = ["detect", "--input", str(trial / "samples.csv"), "--output",
            str(tmp_path / "e.csv"), "--truth", str(trial / "events.csv"), "--sensor", "fused"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sensor"] == "fused" and report["tolerance_ms"] == 100.0
    hs = report["events"]["heel_strike"]
    assert hs["recall"] >= 0.9 and hs["precision"] == 1.0
    assert abs(hs["median_error_ms"]) < 3.0  # the heel switch, not the gyro
    for key in ("median_abs_error_ms", "p95_abs_error_ms", "median_latency_ms"):
        assert key in hs


def test_fixed_rate_needs_no_time_column(tmp_path, capsys):
    path = tmp_path / "g.csv"
    t = np.arange(0.0, 6.0, 0.01)
    gyro = 3.0 * np.exp(-0.5 * ((t - 3.0) / 0.08) ** 2) - 1.5 * np.exp(
        -0.5 * ((t - 2.8) / 0.04) ** 2) - 1.0 * np.exp(-0.5 * ((t - 3.25) / 0.03) ** 2)
    path.write_text("gyro\n" + "".join(f"{g:.5f}\n" for g in gyro))
    out = tmp_path / "e.csv"
    assert main(["detect", "--input", str(path), "--output", str(out), "--rate-hz", "100",
                 "--gyro-column", "gyro"]) == 0
    assert [r["event"] for r in rows(out)] == ["toe_off", "mid_swing", "heel_strike"]


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("time_s,gyro\n0,1\n", [], "no column 'gyro_rad_s' (the sagittal angular velocity; "
         "name your column with --gyro-column NAME, and add --gyro-units deg/s if it is in "
         "deg/s); the file has: time_s, gyro"),
        # a researcher's own file: what time_s is, and --rate-hz to do without it
        ("timestamp_ms,gyro_rad_s\n0,0.1\n", [], "no column 'time_s' (the time of each "
         "sample in seconds; name your time column with --time-column NAME (e.g. "
         "timestamp), with --time-unit ms or us if it is not in seconds; for samples at a "
         "fixed rate give --rate-hz N instead"),
        ("time_s,gyro_rad_s\n0,1\n0.01,abc\n", [], "line 3, column 'gyro_rad_s': 'abc'"),
        # R's write.csv writes a missing value as NA: say how to write one
        ("time_s,gyro_rad_s\n0,1\n0.01,NA\n", [], "line 3, column 'gyro_rad_s': 'NA' is not "
         "a number (a missing sample is an empty cell: write it as nothing, or nan)"),
        ("time_s,gyro_rad_s\n0,1\n0,1\n", [], "'time_s' must increase"),
        # a row without its time stamp (a logger's gap): which row
        ("time_s,gyro_rad_s\n0,1\n0.01,1\n,\n0.03,1\n", [],
         "column 'time_s' has empty or non-finite values in 1 row(s), the first on line 4"),
        # which line (as an editor numbers it: the header is line 1, an empty line counts),
        # and the way out when the samples are evenly spaced
        ("time_s,gyro_rad_s\n0,1\n0.01,1\n0.02,1\n0.02,1\n", [],
         "line 5 has 0.02 after 0.02 on line 4 (time in seconds; if the samples are evenly"),
        ("time_s,gyro_rad_s\n\n0,1\n0.01,1\n\n0.02,1\n0.02,1\n", [],
         "line 7 has 0.02 after 0.02 on line 6 (time in seconds;"),
        # a header alone: the wrong file, not a walk of no steps (it was exit 0, '0
        # events (none) from 0 samples')
        ("time_s,gyro_rad_s\n", [], "in.csv: no samples: the header row has no sample row"),
        ("gyro_rad_s\n\n\n", ["--rate-hz", "100"], "in.csv: no samples: the header row"),
        ("time_s,gyro_rad_s\n0,1\n", ["--sensor", "heel"], "no column 'heel_switch' (the "
         "heel switch, 0/1; name your column with --heel-column NAME"),
        # a column the user named is theirs: no advice to name it
        ("time_s,gyro\n0,1\n", ["--gyro-column", "Gyr_Y"], "no column 'Gyr_Y'; the file"),
        ("time_s,gyro_rad_s\n0,1\n", ["--rate-hz", "5"], "unknown_after_missing_ms"),
        ("time_s,gyro_rad_s\n0,1\n", ["--rate-hz", "5"], "samples 200 ms apart (5 Hz)"),
        # time_s written in milliseconds: the message says how far apart the samples are
        ("time_s,gyro_rad_s\n0,1\n2,1\n4,1\n", [], "samples 2000 ms apart (0.5 Hz)"),
        # a wild time stamp: its period shortly, not as a 300-digit number
        ("time_s,gyro_rad_s\n0,1\n1e300,1\n", [], "1.5 sample periods (1.5e+303 ms)"),
        ("time_s,gyro_rad_s\n0,1\n", ["--placement", "knee"], "invalid choice"),
        # a window wider than half a stride matches a missed event with its neighbour's
        # detection (Voisard trial 1 at --rate-hz 100: 644 heel strikes matched at 2000 ms
        # against 595 at 100 ms); the trial config's metrics.event_tolerance_ms has <= 500
        ("time_s,gyro_rad_s\n0,1\n", ["--tolerance-ms", "2000"],
         "argument --tolerance-ms: must be at most 500 ms"),
        # a spreadsheet's export in a locale that separates with ';' (or a tab)
        ("time_s;gyro_rad_s\n0;1\n", [], "one column: the file seems separated by ';'"),
        ("time_s\tgyro_rad_s\n0\t1\n", [], "one column: the file seems separated by '\\t'"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(tmp_path, capsys, content, extra, expected):
    path = tmp_path / "in.csv"
    path.write_text(content)
    args = ["detect", "--input", str(path), "--output", str(tmp_path / "o.csv"), *extra]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse refuses the choice itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_truth_with_an_unknown_event_exits_2(trial, tmp_path, capsys):
    truth = tmp_path / "t.csv"
    truth.write_text("time_s,event\n1.0,foot_flat\n")
    args = ["detect", "--input", str(trial / "samples.csv"), "--output",
            str(tmp_path / "e.csv"), "--truth", str(truth)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown event 'foot_flat'" in err and "heel_strike" in err


def test_truth_with_a_short_row_exits_2_naming_the_line(trial, tmp_path, capsys):
    truth = tmp_path / "t.csv"
    truth.write_text("time_s,source,event\n1.0,true,heel_strike\n2.0\n")
    args = ["detect", "--input", str(trial / "samples.csv"), "--output",
            str(tmp_path / "e.csv"), "--truth", str(truth)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 3: 1 fields, the header names 3" in err and "Traceback" not in err


def test_heel_threshold_out_of_range_names_the_field(trial, tmp_path, capsys):
    args = ["detect", "--input", str(trial / "samples.csv"), "--output",
            str(tmp_path / "e.csv"), "--sensor", "heel", "--heel-threshold-n", "0.1"]
    assert main(args) == 2
    assert "detector.heel.force.contact_force_n" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    out = capsys.readouterr().out
    for option in ("--input", "--output", "--sensor", "--rate-hz", "--gyro-column",
                   "--gyro-units", "--invert", "--heel-column", "--heel-threshold-n",
                   "--placement", "--truth", "--tolerance-ms", "--config", "--time-column",
                   "--time-unit"):
        assert option in out


@pytest.mark.parametrize("command", ["check-config", "detect"])
def test_bad_detector_config_names_each_field(command, trial, tmp_path, capsys):
    path = tmp_path / "trial.toml"
    path.write_text('[detector]\nsensor = "knee"\n[detector.heel.force]\nrelease_force_n = 30\n')
    argv = ["check-config", str(path)] if command == "check-config" else [
        "detect", "--input", str(trial / "samples.csv"), "--output",
        str(tmp_path / "out.csv"), "--config", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "detector.sensor: input should be 'gyro', 'heel' or 'fused'" in err
    assert "detector.heel.force.release_force_n" in err and "contact_force_n (20)" in err


def test_detect_refuses_a_misspelt_section_of_its_config(trial, tmp_path, capsys):
    """fes detect reads only [detector], but a section no trial has is still a mistake."""
    path = tmp_path / "trial.toml"
    path.write_text('[detectr]\nsensor = "heel"\n')
    out = tmp_path / "out.csv"
    argv = ["detect", "--input", str(trial / "samples.csv"), "--output", str(out)]
    assert main([*argv, "--config", str(path)]) == 2
    assert "detectr: unknown section (check the spelling)" in capsys.readouterr().err
    assert not out.exists()


def test_detect_runs_the_detector_its_config_names(trial, tmp_path, capsys):
    """[detector] of --config chooses the detector as it would in a trial: the heel
    detector reports heel off, which the default gyroscope detector never does."""
    path = tmp_path / "trial.toml"
    path.write_text('[detector]\nsensor = "heel"\n')
    out = tmp_path / "out.csv"
    argv = ["detect", "--input", str(trial / "samples.csv"), "--output", str(out)]
    assert main([*argv, "--config", str(path)]) == 0
    assert "heel_off" in {r["event"] for r in rows(out)}
    assert main(argv) == 0
    assert "heel_off" not in {r["event"] for r in rows(out)}


@pytest.mark.parametrize("option", ["--input", "--truth"])
def test_an_endless_device_as_a_file_exits_2(trial, tmp_path, capsys, option):
    """``/dev/zero`` as the recording or the truth is refused at once, not read until
    memory runs out (found by the 10,000-command-line fuzz run)."""
    files = {"--input": str(trial / "samples.csv"), "--truth": None} | {option: "/dev/zero"}
    args = ["detect", "--output", str(tmp_path / "o.csv"),
            *[text for name, path in files.items() if path for text in (name, path)]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "/dev/zero: not a regular file" in err and "Traceback" not in err


@pytest.mark.parametrize("option", ["--input", "--truth"])
def test_an_output_that_is_the_recording_or_the_truth_is_refused(trial, tmp_path, capsys,
                                                                  option):
    """``fes detect --input rec.csv --output rec.csv`` replaced the recording with the
    events found in it (exit 0): a session lost to a slip of the tab key."""
    recording = tmp_path / "samples.csv"
    recording.write_bytes((trial / "samples.csv").read_bytes())
    truth = tmp_path / "events.csv"
    truth.write_bytes((trial / "events.csv").read_bytes())
    given = recording if option == "--input" else truth
    link = tmp_path / "same.csv"
    link.symlink_to(given)
    before = {path: path.read_bytes() for path in (recording, truth)}
    for output in (given, link):
        code = main(["detect", "--input", str(recording), "--truth", str(truth),
                     "--output", str(output)])
        assert code == 2
        err = capsys.readouterr().err
        assert "--output" in err and f"the file given as {option}" in err
        assert {path: path.read_bytes() for path in (recording, truth)} == before


@pytest.mark.parametrize(
    ("scale", "options", "expected"),
    [
        (180.0 / np.pi, [], "is it in deg/s? Pass --gyro-units deg/s"),
        (1.0, ["--gyro-units", "deg/s"], "is it in rad/s? Drop --gyro-units deg/s"),
    ],
    ids=["deg-read-as-rad", "rad-read-as-deg"],
)
def test_a_gyro_in_other_units_than_said_is_pointed_out(trial, tmp_path, capsys, scale,
                                                        options, expected):
    """A recording in deg/s (most IMU exports) read as rad/s, or the reverse, found 0
    events with exit 0 and only 'too few strides to check the sign': nothing said the
    units. The detection itself is unchanged (a note, exit 0)."""
    lines = (trial / "samples.csv").read_text().splitlines()
    out_lines = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[1] = repr(float(cells[1]) * scale)
        out_lines.append(",".join(cells))
    path = tmp_path / "rec.csv"
    path.write_text("\n".join(out_lines) + "\n")
    assert main(["detect", "--input", str(path), "--output", str(tmp_path / "e.csv"),
                 *options]) == 0
    err = capsys.readouterr().err
    assert "gyro_rad_s" in err and expected in err


def test_a_gyro_in_the_units_said_gets_no_units_note(trial, tmp_path, capsys):
    assert main(["detect", "--input", str(trial / "samples.csv"),
                 "--output", str(tmp_path / "e.csv")]) == 0
    assert "units" not in capsys.readouterr().err


@pytest.mark.parametrize("keep", [4, 14, 60, -3], ids=["in-time-stamp", "in-gyro-cell",
                                                     "mid-row", "in-last-cell"])
def test_a_row_cut_off_at_the_end_is_left_out_with_a_note(trial, tmp_path, capsys, keep):
    """A logger killed while writing a row leaves part of it, without a line end. Its
    cut time stamp ('11.9' of '11.998') made fes detect refuse the whole recording
    ('time_s must increase', exit 2); a cut rate ('-0.4' of '-0.462358') was read as if
    whole. Now that row is left out, with a note, and the rest gives the events of the
    whole rows."""
    text = (trial / "samples.csv").read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    whole = tmp_path / "whole.csv"
    whole.write_text(head + "\n")
    cut = tmp_path / "cut.csv"
    cut.write_text(f"{head}\n{last[:keep]}")
    assert main(["detect", "--input", str(whole), "--output", str(tmp_path / "w.csv")]) == 0
    assert "no line end" not in capsys.readouterr().err
    assert main(["detect", "--input", str(cut), "--output", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    assert f"the last line of {cut} has no line end" in err and "left out" in err
    assert (tmp_path / "c.csv").read_text() == (tmp_path / "w.csv").read_text()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--heel-column", "heel_force_n"],
         "heel_force_n is read as a 0/1 heel switch (contact at 0.5 and above) but reads 0 "),
        (["--heel-column", "heel_switch", "--heel-threshold-n", "20"],
         "heel_switch never reaches the contact force of 12 N"),
        # a force sensor whose offset stays above the release force (a resistive sensor
        # reading 150-940 unloaded): always in contact, no event
        (["--heel-column", "heel_force_n", "--heel-threshold-n", "0.5", "--input", "offset"],
         "heel_force_n never falls below the release force of 0.25 N"),
        # the column given is the time column too: read as both, no traceback
        (["--heel-column", "time_s", "--heel-threshold-n", "20"],
         "time_s never reaches the contact force of 12 N"),
    ],
    ids=["force-read-as-switch", "switch-read-as-force", "force-with-an-offset",
         "time-as-heel"],
)
def test_a_heel_column_read_as_the_other_kind_is_pointed_out(trial, tmp_path, capsys,
                                                             options, expected):
    """A force insole's heel sensor (N) read without --heel-threshold-n is a switch in
    contact from 0.5 N: on the gaitpdb walk 89 heel strikes of 96 and nothing said why;
    a 0/1 switch read with --heel-threshold-n 20 never made contact: 0 events, exit 0,
    nothing said."""
    recording = trial / "samples.csv"
    if "offset" in options:  # the trial's heel force on an offset of 150 N
        options = options[:-2]
        recording = tmp_path / "offset.csv"
        recording.write_text("time_s,heel_force_n\n" + "".join(
            f"{r['time_s']},{float(r['heel_force_n']) + 150.0}\n"
            for r in rows(trial / "samples.csv")))
    assert main(["detect", "--input", str(recording), "--output",
                 str(tmp_path / "e.csv"), "--sensor", "heel", *options]) == 0
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("options", [["--heel-column", "heel_force_n",
                                      "--heel-threshold-n", "20"], []])
def test_a_heel_column_read_as_what_it_is_gets_no_note(trial, tmp_path, capsys, options):
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output",
                 str(tmp_path / "e.csv"), "--sensor", "heel", *options]) == 0
    assert "heel" not in capsys.readouterr().err


TUNED_FOOT = ("[detector.gyro.foot]\ntoe_off_rise_fraction = 0.6\n"
              "heel_strike_level_fraction = 0.45\n")


@pytest.mark.parametrize("command", ["detect", "check-config", "sim"])
def test_a_config_setting_the_trial_does_not_read_is_pointed_out(trial, tmp_path, capsys,
                                                                 command):
    """A researcher tunes [detector.gyro.foot] in a file and runs it without --placement
    foot (or a lead_ms while trains start at pre-swing): the shank's table ran, the
    tuning changed nothing, and nothing said so. A value equal to the default
    (heel_strike_level_fraction 0.45) is no tuning and is not named."""
    path = tmp_path / "tuned.toml"
    path.write_text(f"{TUNED_FOOT}[stim.peroneal]\nlead_ms = 50\n")
    argv = {"detect": ["detect", "--input", str(trial / "samples.csv"),
                       "--output", str(tmp_path / "e.csv")],
            "check-config": ["check-config"],
            "sim": ["sim", "--duration-s", "1", "--out", str(tmp_path / "t")]}[command]
    config = [str(path)] if command == "check-config" else ["--config", str(path)]
    assert main([*argv, *config]) == 0
    err = capsys.readouterr().err
    assert (f"{path} sets what this configuration does not read, so it changes nothing: "
            "detector.gyro.foot.toe_off_rise_fraction = 0.6 (detector.placement = shank)") in err
    assert "heel_strike_level_fraction" not in err
    assert ("stim.peroneal.lead_ms = 50 (stim.peroneal.trigger = pre_swing)" in err) is (
        command != "detect")  # fes detect reads only [detector]


def test_a_config_whose_settings_are_read_gets_no_note(trial, tmp_path, capsys):
    path = tmp_path / "tuned.toml"
    path.write_text(TUNED_FOOT)
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output",
                 str(tmp_path / "e.csv"), "--config", str(path), "--placement", "foot"]) == 0
    assert "does not read" not in capsys.readouterr().err
    path.write_text(TUNED_FOOT + '[detector]\nplacement = "foot"\n')
    assert main(["check-config", str(path)]) == 0
    assert "does not read" not in capsys.readouterr().err


def test_a_rate_that_disagrees_with_the_files_time_stamps_is_pointed_out(trial, tmp_path,
                                                                         capsys):
    """--rate-hz replaces a time_s column. A 100 Hz recording read with --rate-hz 500 (a
    slip, or another sensor's rate) dated every event five times too early (Voisard 1-1
    left foot: 0 events instead of 48), exit 0, with only 'too few strides' said."""
    out = str(tmp_path / "e.csv")
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", out,
                 "--rate-hz", "100"]) == 0
    assert ("--rate-hz 100 dates the samples 10 ms apart, but the file's time_s column "
            "has them 2 ms apart (median; 500 Hz); time_s was ignored") in (
        capsys.readouterr().err)
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", out,
                 "--rate-hz", "500"]) == 0
    assert "time_s" not in capsys.readouterr().err


@pytest.mark.parametrize(("sensor", "placement", "heel_input"),
                         [("gyro", "shank", None), ("heel", None, "switch"),
                          ("fused", "shank", "switch")])
def test_the_scores_name_only_the_sensors_that_ran(trial, tmp_path, capsys, sensor,
                                                   placement, heel_input):
    """The JSON of a gyroscope-only run said "heel_input": "switch", of a heel-only run
    "placement": "shank": defaults of sensors that never ran, reported as if measured."""
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output",
                 str(tmp_path / "e.csv"), "--truth", str(trial / "events.csv"),
                 "--sensor", sensor]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["sensor"], report["placement"], report["heel_input"]) == (
        sensor, placement, heel_input)
    assert report["events"]["heel_strike"]["max_announced_after_ms"] is not None


def test_a_reference_outside_the_recording_is_refused_or_noted(trial, tmp_path, capsys):
    """A reference written in ms (or as sample numbers, as the Voisard labels come) was
    scored as it was: recall 0 and precision 0 for every event, exit 0, nothing said.
    Now a reference wholly outside the recording is refused (exit 2) with both spans;
    one partly outside is scored with a note that those events count as missed."""
    truth = [r for r in rows(trial / "events.csv") if r["source"] == "true"]
    in_ms = tmp_path / "ms.csv"
    in_ms.write_text("time_s,event\n" + "".join(
        f"{float(r['time_s']) * 1000:.0f},{r['event']}\n" for r in truth))
    out = tmp_path / "e.csv"
    args = ["detect", "--input", str(trial / "samples.csv"), "--output", str(out)]
    assert main([*args, "--truth", str(in_ms)]) == 2
    err = capsys.readouterr().err
    assert (f"{in_ms}: no reference event lies within the recording (the recording runs "
            "from 0 to 11.998 s, the reference events from ") in err
    assert "is its time_s in seconds" in err and not out.exists()
    longer = tmp_path / "longer.csv"
    longer.write_text("time_s,event\n" + "".join(f"{r['time_s']},{r['event']}\n"
                                                 for r in truth) + "30.0,heel_strike\n")
    assert main([*args, "--truth", str(longer)]) == 0
    captured = capsys.readouterr()
    assert f"1 of {len(truth) + 1} reference events lie outside the recording" in captured.err
    assert json.loads(captured.out)["events"]["heel_strike"]["recall"] < 1.0


@pytest.mark.parametrize(("head", "kind"), [(b"PK\x03\x04", "a zip archive (an Excel .xlsx"),
                                            (b"PAR1", "a Parquet file")])
def test_a_workbook_or_parquet_file_is_named_as_such(tmp_path, capsys, head, kind):
    """A Marpino workbook (.xlsx) given to fes detect as it is: 'cannot read: 'utf-8'
    codec can't decode bytes in position 15-16: invalid continuation byte'."""
    path = tmp_path / "walk.xlsx"
    path.write_bytes(head + bytes(range(128, 256)) * 4)
    assert main(["detect", "--input", str(path), "--output", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: cannot read: it is {kind}" in err
    assert "not a CSV text file: export the table as CSV" in err


def test_blank_lines_of_a_one_column_recording_are_missing_samples(trial, tmp_path, capsys):
    """One gyro column exported by a spreadsheet writes a missing sample as an empty line.
    Read at a fixed rate, those lines were skipped: every later sample, and every later
    event, came one period early per line (a 50 ms dropout at 500 Hz: 25 lines, 50 ms).
    Now they are missing samples, as 'nan' cells are; empty lines that end the file are
    no samples."""
    gyro = [r["gyro_rad_s"] for r in rows(trial / "samples.csv")]
    gone = range(2000, 2025)
    with_nan = tmp_path / "nan.csv"
    with_nan.write_text("gyro\n" + "".join(
        ("nan" if k in gone else g) + "\n" for k, g in enumerate(gyro)))
    blank = tmp_path / "blank.csv"
    blank.write_text("gyro\n" + "".join(
        ("" if k in gone else g) + "\n" for k, g in enumerate(gyro)) + "\n\n")
    spaces = tmp_path / "spaces.csv"  # and a last line of spaces without its line end
    spaces.write_text(blank.read_text() + "   ")
    found = []
    for path in (with_nan, blank, spaces):
        out = tmp_path / f"{path.stem}-events.csv"
        assert main(["detect", "--input", str(path), "--output", str(out), "--rate-hz",
                     "500", "--gyro-column", "gyro"]) == 0
        assert f"from {len(gyro)} samples" in capsys.readouterr().out
        found.append(out.read_text())
    assert found[0] == found[1] == found[2] and found[0].count("\n") > 10


def _with_time_column(trial: Path, path: Path, name: str, scale: float) -> Path:
    """The trial's recording with its time_s column renamed ``name`` and times ``scale``."""
    lines = (trial / "samples.csv").read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("time_s")
    header[at] = name
    body = []
    for line in lines[1:]:
        cells = line.split(",")
        cells[at] = f"{float(cells[at]) * scale:.6f}"
        body.append(",".join(cells))
    path.write_text("\n".join([",".join(header), *body]) + "\n")
    return path


@pytest.mark.parametrize(("name", "unit", "scale"), [
    ("timestamp", "ms", 1e3), ("Time", "us", 1e6), ("time_s", "s", 1.0)])
def test_a_time_column_of_another_name_and_unit_is_read(trial, tmp_path, capsys, name,
                                                       unit, scale):
    """A recording whose time column is 'timestamp' in ms had to be converted, or read
    with --rate-hz (and its time stamps thrown away): --time-column and --time-unit
    read it, with the same events as the trial's own time_s in seconds."""
    recording = _with_time_column(trial, tmp_path / "r.csv", name, scale)
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", str(ours)]) == 0
    capsys.readouterr()
    assert main(["detect", "--input", str(recording), "--output", str(theirs),
                 "--time-column", name, "--time-unit", unit]) == 0
    assert "note" not in capsys.readouterr().err
    mine, read = rows(ours), rows(theirs)
    assert [r["event"] for r in read] == [r["event"] for r in mine] and len(read) > 20
    assert np.allclose([float(r["time_s"]) for r in read], [float(r["time_s"]) for r in mine],
                       atol=1e-5)


def test_a_time_column_in_ms_read_as_seconds_is_pointed_out(trial, tmp_path, capsys):
    """A 500 Hz recording's time in ms read as seconds: samples 2 s apart. It was
    refused for its sample spacing without a word on the unit."""
    recording = _with_time_column(trial, tmp_path / "r.csv", "timestamp", 1e3)
    out = str(tmp_path / "e.csv")
    assert main(["detect", "--input", str(recording), "--output", out]) == 2
    err = capsys.readouterr().err
    assert "no column 'time_s'" in err and "--time-column NAME (e.g. timestamp)" in err
    assert main(["detect", "--input", str(recording), "--output", out,
                 "--time-column", "timestamp"]) == 2
    assert ("note: timestamp steps 2 s from sample to sample (median), 0.5 Hz read as s: is "
            "it in ms (500 Hz)? Pass --time-unit ms.") in capsys.readouterr().err
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output", out,
                 "--time-unit", "ms"]) == 0
    assert ("time_s steps 0.002 ms from sample to sample (median), 5e+05 Hz read as ms: is "
            "it in s (500 Hz)? Drop --time-unit.") in capsys.readouterr().err


def test_a_time_column_in_another_unit_keeps_its_checks(trial, tmp_path, capsys):
    """The checks of time_s (finite, increasing) name the column given and its unit."""
    recording = _with_time_column(trial, tmp_path / "r.csv", "timestamp", 1e3)
    lines = recording.read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    recording.write_text("\n".join(lines) + "\n")
    assert main(["detect", "--input", str(recording), "--output", str(tmp_path / "e.csv"),
                 "--time-column", "timestamp", "--time-unit", "ms"]) == 2
    assert ("column 'timestamp' must increase from row to row: line 7 has 8 after 10 on "
            "line 6 (time in ms;") in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--time-column", "time_s"], ["--time-unit", "ms"]])
def test_a_time_column_beside_a_fixed_rate_is_refused(trial, tmp_path, capsys, option):
    assert main(["detect", "--input", str(trial / "samples.csv"), "--output",
                 str(tmp_path / "e.csv"), "--rate-hz", "500", *option]) == 2
    assert "--rate-hz dates the samples at a fixed rate, so " in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()
