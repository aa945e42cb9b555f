"""A recorded walk as the live loop's sensor source, and ``fes run``'s back-end options."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.detect.csvfiles import CsvError
from controller.errors import ConfigError
from controller.trial.backends import parse_backend
from controller.trial.recording import load_recording
from hw.replay import ReplaySource

DATA = Path(__file__).parent / "data"


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_samples_are_played_on_their_grid_in_real_time_with_dropouts_as_nan():
    fake = FakeTime()
    source = ReplaySource(np.array([5.0, 5.01, 5.03]), 0.01, np.array([1.0, 2.0, 4.0]),
                          clock=fake.clock, sleep=fake.sleep)
    samples = [source.read() for _ in range(5)]
    assert [s.t_s for s in samples[:4]] == pytest.approx([0.0, 0.01, 0.02, 0.03])
    assert [s.gyro_rad_s for s in samples[:4] if not math.isnan(s.gyro_rad_s)] == [1, 2, 4]
    assert math.isnan(samples[2].gyro_rad_s) and source.dropouts == 1
    assert samples[4] is None and samples[0].heel_switch == 0
    assert sum(fake.slept) == pytest.approx(0.03)  # sample k is due k periods after 0
    assert source.started_monotonic_s == 100.0


def test_an_empty_heel_switch_cell_is_a_lost_sample_not_no_contact():
    """It was played as 0 (np.nan_to_num): a heel off in the middle of stance."""
    fake = FakeTime()
    source = ReplaySource(np.array([0.0, 0.01, 0.02, 0.04]), 0.01, np.zeros(4),
                          np.array([1.0, math.nan, 1.0, 1.0]), clock=fake.clock,
                          sleep=fake.sleep)
    switch = [source.read().heel_switch for _ in range(5)]  # type: ignore[union-attr]
    assert switch[0] == switch[2] == switch[4] == 1.0
    assert math.isnan(switch[1]) and math.isnan(switch[3])  # a cell, a row lost


def test_times_off_the_grid_are_refused_naming_the_sample():
    with pytest.raises(ValueError, match=r"sample 1 .* off the 100 Hz grid"):
        ReplaySource(np.array([0.0, 0.015]), 0.01, np.zeros(2))


def test_the_three_kinds_of_recording(tmp_path):
    csv = tmp_path / "walk.csv"
    csv.write_text("time_s,gyro_rad_s,heel_switch\n0.0,0.5,1\n0.002,,1\n0.004,0.7,0\n")
    rec = load_recording(csv)
    assert rec.period_s == pytest.approx(0.002) and rec.heel_force_n is None
    assert math.isnan(rec.gyro_rad_s[1]) and list(rec.heel_switch) == [1, 1, 0]
    voisard = load_recording(DATA / "voisard" / "13-1_lf.txt")
    assert voisard.period_s == pytest.approx(0.01) and voisard.gyro_rad_s is not None
    gaitpdb = tmp_path / "GaXX.txt"
    gaitpdb.write_text("\n".join(
        "\t".join([f"{k / 100:.4f}", f"{100 + k}"] + ["1.0"] * 17) for k in range(5)))
    rec = load_recording(gaitpdb)
    assert rec.heel_force_n is not None and list(rec.heel_force_n) == [100, 101, 102, 103, 104]


def test_a_file_without_sensor_columns_names_what_it_has(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,speed\n0,1\n")
    with pytest.raises(CsvError, match=r"no sensor column.*the file has: time_s, speed"):
        load_recording(bad)


@pytest.mark.parametrize(("options", "reason"), [
    ({"port": "/dev/x", "stimulator": "openemsstim:/dev/y"}, "not both"),
    ({"sensors": "replay:w.csv"}, "no stimulator"),
    ({"stimulator": "rehastim2:/dev/y"}, "expected one of board:URL, openemsstim:URL, p24:URL"),
    ({"stimulator": "openemsstim:/dev/y"}, "openemsstim has no sensors"),
    ({"stimulator": "p24:/dev/y"}, "p24 has no sensors"),
    ({"port": "/dev/x", "sensors": "replay:w.csv"}, "streams its own sensors"),
    ({"stimulator": "openemsstim:/dev/y", "sensors": "replay"}, "replay:PATH"),
    # --port "" was reported as "--stimulator 'board:': expected one of ...", an option
    # the user had not given
    ({"port": ""}, "^--port is empty: give the board's port"),
])
def test_back_end_options_that_do_not_fit(options, reason):
    args = {"port": None, "sensors": None, "stimulator": None, "settings": None} | options
    with pytest.raises(ValueError, match=reason):
        parse_backend(**args)


def test_fes_run_refuses_a_trial_the_unit_cannot_deliver(tmp_path, capsys):
    walk = tmp_path / "walk.csv"
    walk.write_text("time_s,gyro_rad_s\n" + "".join(f"{k / 100},0\n" for k in range(50)))
    config = tmp_path / "trial.toml"
    config.write_text("[stim.peroneal]\namplitude_ma = 55.0\ninterphase_gap_us = 50.0\n")
    code = main(["run", "--sensors", f"replay:{walk}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--config", str(config),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "stim.peroneal.amplitude_ma: 55 mA is outside" in err and "12.9-50.1 mA" in err
    assert "shaped pulse" in err
    assert not (tmp_path / "out").exists()


def test_fes_run_with_a_missing_recording_is_a_usage_error(tmp_path, capsys):
    code = main(["run", "--sensors", f"replay:{tmp_path / 'none.csv'}", "--stimulator",
                 "openemsstim:/dev/nonexistent"])
    assert code == 2 and "file not found" in capsys.readouterr().err


def test_overwrite_never_removes_the_recording_being_replayed(tmp_path, capsys):
    """``--out`` an earlier trial's folder with ``--overwrite``, replaying that trial's own
    samples.csv: the folder's trial files would be removed, the recording with them."""
    walk = tmp_path / "samples.csv"
    text = "time_s,gyro_rad_s\n" + "".join(f"{k / 100},0\n" for k in range(50))
    walk.write_text(text)
    code = main(["run", "--sensors", f"replay:{walk}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--out", str(tmp_path), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--out" in err and "the recording --sensors replays" in err
    assert walk.read_text() == text


def test_a_device_given_as_the_recording_is_refused():
    with pytest.raises(CsvError, match=r"/dev/zero: not a regular file"):
        load_recording(Path("/dev/zero"))


def _walk(rows: int = 50) -> str:
    return "time_s,gyro_rad_s\n" + "".join(f"{k / 100:.2f},{k % 7 / 10}\n" for k in range(rows))


def test_a_recording_is_read_by_fes_detect_s_rules(tmp_path):
    """The replay read its CSV its own way: a last row cut off while written ('2.9' of
    '2.98') was refused (times not increasing) or played as if whole ('-1.' of '-1.125');
    rows of empty cells that end a spreadsheet's export were refused (times not finite).
    Now as fes detect: the cut row left out with a note, the empty end rows dropped."""
    cut = tmp_path / "cut.csv"
    cut.write_text(_walk() + "0.50,-1.")
    rec = load_recording(cut)
    assert rec.t_s.size == 50 and rec.gyro_rad_s is not None and rec.gyro_rad_s[-1] == 0.0
    assert [note.kind for note in rec.notes] == ["note"]
    assert rec.notes[0].text.startswith(f"the last line of {cut} has no line end")
    export = tmp_path / "export.csv"
    export.write_text(_walk() + ",\n,\n\n")
    rec = load_recording(export)
    assert rec.t_s.size == 50 and rec.notes == () and rec.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize(("text", "expected"), [
    # a header alone: the wrong file (it was 'the times must be finite and increasing,
    # with at least two samples', as for any other fault)
    ("time_s,gyro_rad_s\n", "no samples: the header row has no sample row below it; is it "
     "the recording you meant?"),
    # which line, as an editor numbers it (header line 1, empty lines counted)
    ("time_s,gyro_rad_s\n\n0.00,1\n0.01,1\n\n0.01,1\n", "column 'time_s' must increase from "
     "row to row: line 6 has 0.01 after 0.01 on line 4 (time in seconds; a replay plays "
     "each sample at its time on the grid of the median step: correct the time or delete "
     "the row)"),
    ("time_s,gyro_rad_s\n0.00,1\n\n,1\n0.02,1\n", "column 'time_s' has empty or non-finite "
     "values in 1 row(s), the first on line 4: every sample needs its time"),
    # was 'sample 2 at 0.025000 s lies 0.50 periods off the 100 Hz grid', counted from 0
    ("time_s,gyro_rad_s\n\n0.00,1\n0.01,1\n0.025,1\n0.03,1\n0.04,1\n", "line 5: its time "
     "0.025000 s lies 0.50 periods off the 100 Hz grid of the median step"),
    # time_s in ms: was the loop's 'loop.sample_rate_hz: ... (got 0.1)'
    ("time_s,gyro_rad_s\n" + "".join(f"{k * 10},0\n" for k in range(20)),
     "time_s steps 10 s from sample to sample (median), 0.1 Hz read as s: is it in ms "
     "(100 Hz)? A replay reads time_s in seconds: write the times in seconds (x 0.001 from "
     "ms)."),
    ("time_s,gyro_rad_s\n0.0,1\n", "one sample (line 2): a replay needs at least two"),
])
def test_fes_run_refuses_a_recording_it_cannot_replay_naming_the_line(tmp_path, capsys, text,
                                                                      expected):
    walk = tmp_path / "walk.csv"
    walk.write_text(text)
    code = main(["run", "--sensors", f"replay:{walk}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"fes run: {walk}: {expected}")


def test_a_voisard_file_without_samples_is_refused_as_a_csv_is(tmp_path, capsys):
    """It was 'not a Voisard IMU file:' and numpy's indexing error ('index 0 is out of
    bounds', 'boolean index did not match indexed array', by the numpy)."""
    imu = tmp_path / "13-1_lf.txt"
    imu.write_text("Acquisition frequency: 100 Hz\nPacketCounter\tGyr_Y\n")
    code = main(["run", "--sensors", f"replay:{imu}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"fes run: {imu}: no samples: its two header lines have no sample row below them; "
        "is it the recording you meant?\n")


def test_fes_run_prints_the_note_on_a_cut_row(tmp_path, capsys, monkeypatch):
    from controller.commands import run

    def no_trial(*args: object) -> None:
        raise SystemExit(9)  # stop before the trial: the note is printed on reading

    walk = tmp_path / "walk.csv"
    walk.write_text(_walk() + "0.50,-1.")
    monkeypatch.setattr(run, "load_checked", no_trial)
    with pytest.raises(SystemExit):
        main(["run", "--sensors", f"replay:{walk}", "--stimulator",
              "openemsstim:/dev/nonexistent", "--out", str(tmp_path / "out")])
    assert capsys.readouterr().err.startswith(
        f"fes run: note: the last line of {walk} has no line end")


def test_fes_run_reads_the_replayed_recording_once(tmp_path, monkeypatch, capsys):
    """``fes run`` reads the recording for its notes and rate; the trial plays that
    reading (it read the file again: a recorded hour at 500 Hz is 9 s and 58 MB more)."""
    from dataclasses import replace

    from helpers.live import QuietStimulator
    from helpers.walks import OPENEMS_RISE

    from controller.trial import backends, recording

    walk = tmp_path / "walk.csv"
    walk.write_text("time_s,gyro_rad_s\n" + "".join(f"{k / 100},0\n" for k in range(50)))
    reads: list[Path] = []

    def counted(path: Path) -> recording.Recording:
        reads.append(path)
        return load_recording(path)

    monkeypatch.setattr(recording, "load_recording", counted)
    monkeypatch.setitem(backends.STIMULATORS, "openemsstim", replace(
        backends.STIMULATORS["openemsstim"], open=lambda url, path: QuietStimulator()))
    config = tmp_path / "trial.toml"
    config.write_text("[safety]\n" + OPENEMS_RISE)  # the example unit's onset step
    code = main(["run", "--sensors", f"replay:{walk}", "--stimulator", "openemsstim:test",
                 "--out", str(tmp_path / "out"), "--no-status", "--config", str(config)])
    assert code == 0, capsys.readouterr().err
    assert reads == [walk]
    assert (tmp_path / "out" / "samples.csv").read_text().count("\n") == 51


@pytest.mark.parametrize(("columns", "detector", "refused"), [
    ("heel_switch", "sensor = 'gyro'", "detector.sensor = 'gyro' reads the gyroscope"),
    ("heel_force_n", "sensor = 'fused'\nheel_input = 'force'",
     "detector.sensor = 'fused' reads the gyroscope"),
    ("gyro_rad_s,heel_switch", "sensor = 'heel'\nheel_input = 'force'",
     "with detector.heel_input = 'force' reads the heel force sensor, but the recording "
     "has no heel_force_n column (it has: gyro_rad_s, heel_switch)"),
])
def test_fes_run_refuses_a_recording_without_a_sensor_its_detector_reads(
        tmp_path, capsys, columns, detector, refused):
    """Every sample would lack a sensor the watchdog needs (docs/safety.md, "Valid
    sensor samples"): before, the trial started and ended in the sensor timeout 32 ms
    in, without a train."""
    walk = tmp_path / "walk.csv"
    n = columns.count(",") + 1
    walk.write_text(f"time_s,{columns}\n" + "".join(
        f"{k / 100}" + ",1" * n + "\n" for k in range(50)))
    config = tmp_path / "trial.toml"
    config.write_text(f"[detector]\n{detector}\n")
    code = main(["run", "--sensors", f"replay:{walk}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--config", str(config),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert refused in err and "sensor timeout at the start" in err
    assert not (tmp_path / "out").exists()


def test_fes_run_takes_a_heel_only_recording_with_the_heel_detector(tmp_path):
    """The same checks pass a recording whose sensors the detector reads."""
    from controller.config import load_config
    from controller.trial.backends import BackendSpec, check_sensors

    walk = tmp_path / "walk.csv"
    walk.write_text("time_s,heel_switch\n" + "".join(f"{k / 100},1\n" for k in range(50)))
    spec = BackendSpec("openemsstim", "/dev/x", replay=walk, recording=load_recording(walk))
    check_sensors(spec, load_config(None, {"detector": {"sensor": "heel"}}))
    with pytest.raises(ConfigError, match="no gyro_rad_s column"):
        check_sensors(spec, load_config(None))
