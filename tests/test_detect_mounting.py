"""The gyroscope's mounting check: a sign found flipped is corrected by ``fes detect``
with a warning naming ``--invert``; in a trial nothing gait-triggered is stimulated until
the sign is checked, nothing at all once it is found flipped, and the summary and the
live status line say why.

Real feet (Voisard et al. 2023, ``tests/data/voisard``) and the simulated shank, each as
recorded and with its sign flipped (the sensor upside down or on the other leg).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers.detect_signals import simulated_walk

from controller.cli import main
from controller.config import load_config
from controller.detect.config import DetectorConfig, build_detector
from controller.detect.datasets import load_voisard
from controller.detect.detector import GaitDetector, detect_batch, gyro_mounting, gyro_setup
from controller.detect.gyro import FLIPPED, FOOT, MOUNTED, SHANK
from controller.events import Event, Phase
from controller.ports import Sample
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder
from controller.trial.simulated import run_simulated_trial
from controller.trial.status import StatusLine, live_snapshot
from controller.trial.summary import render_text
from sim.limb import SimulatedLimb

VOISARD = Path(__file__).parent / "data" / "voisard"


@pytest.fixture(scope="module")
def feet():
    return load_voisard(VOISARD)


def test_real_feet_are_found_mounted_as_recorded_and_flipped_when_flipped(feet):
    for rec in feet:
        assert gyro_mounting(FOOT, rec.t_s, rec.gyro_rad_s)["verdict"] == "mounted", rec.name
        assert gyro_mounting(FOOT, rec.t_s, -rec.gyro_rad_s)["verdict"] == "flipped", rec.name


@pytest.mark.parametrize("patient", ["healthy", "moderate", "severe"])
def test_the_simulated_shank_is_found_mounted_within_five_strides(patient):
    walk = simulated_walk(patient, 20.0, 3, 250.0)
    right = gyro_mounting(SHANK, walk.t_s, walk.gyro_rad_s)
    flipped = gyro_mounting(SHANK, walk.t_s, -walk.gyro_rad_s)
    assert (right["verdict"], flipped["verdict"]) == ("mounted", "flipped")
    fifth_toe_off = walk.true_times(Event.TOE_OFF)[4]
    assert right["decided_s"] < fifth_toe_off and flipped["decided_s"] < fifth_toe_off


def test_until_checked_the_phase_is_stance_and_no_event_is_reported():
    """Stance and no event up to the verdict, the walk's phases and events after it."""
    rate_hz = 250.0
    walk = simulated_walk("moderate", 20.0, 4, rate_hz)
    detector = GaitDetector(gyro_setup(SHANK), rate_hz)
    phases, events, checked_at = [], [], None
    for t, g in zip(walk.t_s, walk.gyro_rad_s, strict=True):
        phase, new = detector.step(float(t), float(g))
        if checked_at is None and detector.mounting == MOUNTED:
            checked_at = float(t)
        phases.append(phase)
        events += new
    assert checked_at is not None
    before = walk.t_s < checked_at
    assert set(np.array(phases)[before]) <= {Phase.UNKNOWN, Phase.STANCE}
    assert min(e.t_known_s for e in events) >= checked_at
    assert Phase.SWING in np.array(phases)[~before]
    hs = walk.true_times(Event.HEEL_STRIKE)
    found = [e for e in events if e.event == Event.HEEL_STRIKE]
    assert len(found) >= np.count_nonzero(hs > checked_at) - 1


def test_a_flipped_gyro_is_unknown_for_good_and_never_stimulated():
    rate_hz = 250.0
    walk = simulated_walk("moderate", 20.0, 5, rate_hz)
    detector = GaitDetector(gyro_setup(SHANK), rate_hz)
    scheduler = StimScheduler(load_config().stim)
    stimulated = False
    phases = []
    for t, g in zip(walk.t_s, -walk.gyro_rad_s, strict=True):
        phase, new = detector.step(float(t), float(g))
        phases.append(phase)
        stimulated |= any(c.on for c in scheduler.step(float(t), phase, new))
    assert detector.mounting == FLIPPED
    assert not stimulated
    last = np.array(phases)[walk.t_s > 8.0]
    assert np.all(last == Phase.UNKNOWN)


def csv_of(path: Path, t_s: np.ndarray, gyro_rad_s: np.ndarray) -> Path:
    path.write_text("time_s,gyro\n" + "".join(
        f"{t:.3f},{g:.6f}\n" for t, g in zip(t_s, gyro_rad_s, strict=True)))
    return path


def test_fes_detect_inverts_a_flipped_recording_and_names_invert(feet, tmp_path, capsys):
    rec = next(r for r in feet if r.name == "voisard 4-1 left")
    args = ["--placement", "foot", "--gyro-column", "gyro"]
    flipped = csv_of(tmp_path / "flipped.csv", rec.t_s, -rec.gyro_rad_s)
    right = csv_of(tmp_path / "right.csv", rec.t_s, rec.gyro_rad_s)
    out_flipped, out_right = tmp_path / "flipped_events.csv", tmp_path / "right_events.csv"
    assert main(["detect", "--input", str(flipped), "--output", str(out_flipped), *args]) == 0
    warning = capsys.readouterr().err
    assert "sign flipped" in warning and "Pass --invert" in warning
    assert main(["detect", "--input", str(right), "--output", str(out_right), *args]) == 0
    assert "flipped" not in capsys.readouterr().err
    assert out_flipped.read_text() == out_right.read_text()
    assert len(out_right.read_text().splitlines()) > 40
    # --invert on a file that was right already: corrected back, and said so.
    assert main(["detect", "--input", str(right), "--output", str(tmp_path / "e.csv"),
                 "--invert", *args]) == 0
    assert "Drop --invert" in capsys.readouterr().err
    assert (tmp_path / "e.csv").read_text() == out_right.read_text()


def test_a_trial_with_a_flipped_gyro_stimulates_nothing_and_its_summary_says_why(
    tmp_path, monkeypatch
):
    """The simulated patient with the gyroscope worn the wrong way round (the limb's
    samples flipped on their way to the loop): no train, and the summary says why."""
    original = SimulatedLimb.read

    def flipped(self: SimulatedLimb) -> Sample | None:
        sample = original(self)
        return None if sample is None else replace(sample, gyro_rad_s=-sample.gyro_rad_s)

    monkeypatch.setattr(SimulatedLimb, "read", flipped)
    config = load_config(overrides={"loop": {"duration_s": 15.0}})
    summary = run_simulated_trial(config, tmp_path / "trial", compiled=False)
    assert summary["stim"]["trains"] == 0
    assert summary["gyro_mounting"]["verdict"] == "flipped"
    assert "gyro: gyroscope sign flipped" in render_text(summary)
    assert "--invert" in render_text(summary)
    written = json.loads((tmp_path / "trial" / "summary.json").read_text())
    assert written["gyro_mounting"]["verdict"] == "flipped"


def test_the_live_status_line_says_the_sign_is_flipped():
    """``LiveStatus`` publishes the detector's verdict; the line reads it."""
    from controller.trial.live import LiveStatus
    from hw.board import Board, BoardRequirements

    config = load_config()
    rate_hz = 250.0
    detector = build_detector(DetectorConfig(), rate_hz)
    walk = simulated_walk("moderate", 12.0, 6, rate_hz)
    for t, g in zip(walk.t_s, -walk.gyro_rad_s, strict=True):
        detector.step(float(t), float(g))
    assert detector.mounting == FLIPPED
    board = Board("loop://", BoardRequirements(config.safety, 500.0))  # never connected
    status = LiveStatus(board, Watchdog(board, config.safety), TrialRecorder(10), detector)
    status.publish()
    stream = io.StringIO()
    line = StatusLine(stream, interval_s=0.5, live=status.snapshot)
    n = 60
    line.write(0, {
        "time_s": np.arange(n) * 0.01, "phase": np.zeros(n), "stim_on": np.zeros(n),
        "amplitude_ma": np.zeros(n), "lateness_us": np.zeros(n),
        "latency_us": np.zeros(n), "skipped_periods": np.zeros(n, dtype=np.int64),
    })
    text = stream.getvalue()
    assert "unknown" in text and "gyro: SIGN FLIPPED, no stimulation" in text
    fresh = live_snapshot()
    assert fresh.names == status.snapshot.names


def test_without_the_check_a_flipped_gyro_goes_unnoticed():
    """What the check is for: with ``mount_check_strides = 0`` the flipped signal gives
    events at the wrong times (scored against the truth, almost none match)."""
    walk = simulated_walk("moderate", 20.0, 7, 250.0)
    unchecked = gyro_setup(SHANK.model_copy(update={"mount_check_strides": 0}))
    _, events = detect_batch(unchecked, walk.t_s, -walk.gyro_rad_s)
    toe_offs = np.array([e.t_est_s for e in events if e.event == Event.TOE_OFF])
    truth = walk.true_times(Event.TOE_OFF)
    assert toe_offs.size >= truth.size // 2
    near = [np.min(np.abs(truth - t)) < 0.05 for t in toe_offs]
    assert sum(near) <= toe_offs.size // 4
