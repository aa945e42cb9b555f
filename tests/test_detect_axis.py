"""The gyroscope axis check (issue 16 item 4): on real feet with all three axes the
sagittal axis passes and either other axis is called wrong; ``fes detect`` reads the
sagittal column instead of a wrong one, with a warning naming ``--gyro-column``; the
sample-by-sample check reaches the verdict the whole-file check reaches."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.shared_machine import SHARED_MACHINE_LIMITS, rerun_after_heartbeat_faults

from controller.cli import main
from controller.commands.common import EXIT_WATCHDOG_FAULT
from controller.detect.axis import (
    CHECKING,
    MOVING_S,
    SAGITTAL,
    WRONG_AXIS,
    AxisCheck,
    check_axes,
)
from controller.detect.datasets import load_voisard
from controller.detect.gyrocolumn import axis_columns
from controller.trial.summary import render_text

#: Two Voisard walkers (trial 1, both feet) with all three gyro axes (tests/data/README.md).
VOISARD_AXES = Path(__file__).parent / "data" / "voisard_axes"
NAMES = ("Gyr_X", "Gyr_Y", "Gyr_Z")


@pytest.fixture(scope="module")
def feet():
    recordings = load_voisard(VOISARD_AXES)
    assert len(recordings) == 4 and all(r.gyro_axes is not None for r in recordings)
    return recordings


def rates(rec) -> np.ndarray:
    return np.vstack([rec.gyro_axes[name] for name in NAMES])


def test_the_sagittal_axis_passes_and_the_others_are_wrong_on_real_feet(feet):
    for rec in feet:
        right = check_axes(rec.t_s, rates(rec), 1, NAMES)
        assert right.verdict == SAGITTAL, rec.name
        # Decided after MOVING_S of movement, within the first strides of the walk.
        assert right.moving_s == pytest.approx(MOVING_S, abs=0.011)
        first_event_s = min(t for t, _ in rec.reference)
        assert right.decided_s is not None and right.decided_s < first_event_s + 5.0
        for wrong in (0, 2):
            found = check_axes(rec.t_s, rates(rec), wrong, NAMES)
            assert found.verdict == WRONG_AXIS, (rec.name, wrong)
            assert found.sagittal_found == "Gyr_Y"
            assert "no stimulation" in found.message()


def test_sample_by_sample_the_check_reaches_the_same_verdict_at_the_same_time(feet):
    rec = feet[0]
    for declared in range(3):
        whole = check_axes(rec.t_s, rates(rec), declared, NAMES)
        check = AxisCheck(declared, 0.01, NAMES)
        for k, t in enumerate(rec.t_s):
            check.add(float(t), rates(rec)[:, k])
        streamed = check.result()
        assert streamed.verdict == whole.verdict != CHECKING
        assert streamed.decided_s == whole.decided_s
        assert streamed.mean_abs_rad_s == pytest.approx(whole.mean_abs_rad_s)


def test_standing_still_decides_nothing():
    t = np.arange(1000) * 0.01
    still = np.random.default_rng(1).normal(0.0, 0.05, (3, t.size))
    assert check_axes(t, still, 1).verdict == CHECKING
    check = AxisCheck(1, 0.01)
    assert all(check.add(float(tk), still[:, k]) == CHECKING for k, tk in enumerate(t))
    assert "checking the gyroscope's axis" in check.result().message()


def test_axis_columns_are_found_from_the_name():
    assert axis_columns("Gyr_Y") == (("Gyr_X", "Gyr_Y", "Gyr_Z"), 1)
    assert axis_columns("gyro_z_rad_s") == (("gyro_x_rad_s", "gyro_y_rad_s", "gyro_z_rad_s"), 2)
    assert axis_columns("gyro_rad_s") is None
    assert axis_columns("gyro") is None


def csv_of(path: Path, rec, columns: tuple[str, ...] = NAMES) -> Path:
    cells = [rec.t_s] + [rec.gyro_axes[name] for name in columns]
    rows = "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in zip(*cells, strict=True))
    path.write_text(f"time_s,{','.join(columns)}\n" + rows)
    return path


def test_fes_detect_reads_the_sagittal_column_instead_of_a_wrong_one(feet, tmp_path, capsys):
    recording = csv_of(tmp_path / "walk.csv", feet[0])
    out = {}
    for column in NAMES:
        out[column] = tmp_path / f"{column}.csv"
        assert main(["detect", "--input", str(recording), "--output", str(out[column]),
                     "--placement", "foot", "--gyro-column", column]) == 0
        err = capsys.readouterr().err
        if column == "Gyr_Y":
            assert err == ""
        else:
            assert f"gyroscope axis {column} is not the sagittal one" in err
            assert "read Gyr_Y instead. Pass --gyro-column Gyr_Y" in err
    assert len(out["Gyr_Y"].read_text().splitlines()) > 40
    assert out["Gyr_X"].read_text() == out["Gyr_Y"].read_text() == out["Gyr_Z"].read_text()


def test_fes_detect_without_the_other_axes_checks_no_axis(feet, tmp_path, capsys):
    """A file with the roll axis only cannot be checked: read as it is, no axis warning
    (the sign check still runs)."""
    recording = csv_of(tmp_path / "walk.csv", feet[0], ("Gyr_X",))
    assert main(["detect", "--input", str(recording), "--output", str(tmp_path / "e.csv"),
                 "--placement", "foot", "--gyro-column", "Gyr_X"]) == 0
    assert "axis" not in capsys.readouterr().err


def live_walk(tmp_path: Path, name: str, **board: int):
    """A 14 s live trial (simulated patient, seed 3) on the Python board emulator over a
    pty, played 3 times faster than real time (2 until 7 Dec 2026: the same verdict at
    4.176 s and 9 trains of the right axis either way), the board's settings ``board``,
    the host's wall-clock timeouts those of a shared machine: the result, the status
    lines, the board's log. Run again if a loaded machine
    kept the loop, or the emulator's thread that paces it, off the CPU beyond the
    watchdog's timeouts (``rerun_after_heartbeat_faults``, with the board's log)."""

    def attempt(k: int):
        result, status, log = _live_walk(tmp_path, f"{name}{k}", **board)
        code = EXIT_WATCHDOG_FAULT if result.stopped_by == "watchdog_fault" else 0
        return code, result.message, (result, status, log, tmp_path / f"{name}{k}")

    return rerun_after_heartbeat_faults(attempt, lambda walk: walk[2])[2]


def _live_walk(tmp_path: Path, name: str, **board: int):
    from controller.config import load_config
    from controller.trial.live import LinkLimits, run_live_trial
    from hw.emulator import EmulatorConfig, serve_in_thread
    from hw.firmware import FirmwareSettings

    log = io.StringIO()
    settings = FirmwareSettings(comm_timeout_ms=400, **board)
    emu, finish = serve_in_thread(EmulatorConfig(seed=3, board=settings, speed=3.0), log)
    config = load_config(overrides={"loop": {"duration_s": 14.0},
                                    "safety": SHARED_MACHINE_LIMITS})
    status = tmp_path / f"{name}_status.txt"
    try:
        with status.open("w") as stream:
            result = run_live_trial(config, emu.path, tmp_path / name, stream,
                                    LinkLimits(0.3, 0.4))
    finally:
        finish()
    return result, status.read_text(), [json.loads(line) for line in log.getvalue().splitlines()]


def test_a_board_declaring_a_wrong_axis_never_stimulates_and_says_why(tmp_path):
    """The emulated board declares x sagittal while z carries the patient's sagittal rate
    (x carries 0.4 of it, as a roll axis might): no output is ever switched on, and the
    summary, its text and the status line say why; the same board declaring z walks and
    stimulates."""
    wrong, status, log, folder = live_walk(tmp_path, "wrong", declared_sagittal_axis=0)
    assert wrong.stopped_by == "duration", wrong.message
    axis = wrong.summary["gyro_axis"]
    assert (axis["verdict"], axis["declared"], axis["turns_most"]) == ("wrong axis", "x", "z")
    assert axis["decided_s"] < 8.0
    assert wrong.summary["stim"]["trains"] == 0
    assert not any(e["event"] == "outputs" and e["on"] for e in log)
    assert "gyro: gyroscope axis x is not the sagittal one" in render_text(wrong.summary)
    assert "declare z the sagittal axis" in render_text(wrong.summary)
    assert "gyro: WRONG AXIS, no stimulation (declare z the sagittal axis)" in status
    written = json.loads((folder / "summary.json").read_text())
    assert written["gyro_axis"]["verdict"] == "wrong axis"

    right, status, log, _ = live_walk(tmp_path, "right")
    assert right.stopped_by == "duration", right.message
    assert right.summary["gyro_axis"]["verdict"] == "sagittal"
    assert right.summary["stim"]["trains"] >= 3
    assert any(e["event"] == "outputs" and e["on"] for e in log)
    # The sign check's line stays (when stimulation could start); no line of the axis.
    assert "WRONG AXIS" not in status and "gyro: gyroscope axis" not in render_text(
        right.summary)
