"""The gyroscope detector on real foot-IMU recordings (Voisard et al. 2023, tests/data).

Eight feet of four healthy walkers (a fast one, a 75-year-old whose foot rings on
impact, two with radio dropouts), one shipped foot configuration, nothing tuned per
recording. The table in docs/detection.md gives the same figures on all 38 feet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording, load_voisard
from controller.detect.detector import detect_batch, gyro_setup
from controller.detect.score import Scorer
from controller.events import EVENT_NAMES

DATA = Path(__file__).parent / "data" / "voisard"
#: The foot configuration after its mounting check (as fes detect and the evaluation run
#: it once the whole file has been checked; tests/test_detect_mounting.py tests the check).
FOOT = gyro_setup(DetectorConfig(placement="foot").gyro_config().model_copy(
    update={"mount_check_strides": 0}))


@pytest.fixture(scope="module")
def recordings() -> list[Recording]:
    return load_voisard(DATA)


def pooled(recordings: list[Recording], window: str) -> dict[str, dict]:
    scorer = Scorer(0.1)
    for rec in recordings:
        _, events = detect_batch(FOOT, rec.t_s, rec.gyro_rad_s)
        scorer.add(rec.reference, events, getattr(rec, window))
    return scorer.summary()


def test_reader_keeps_packet_gaps_as_time_gaps(recordings):
    assert len(recordings) == 8
    rec = next(r for r in recordings if r.name == "voisard 7-1 left")
    steps = np.diff(rec.t_s)
    assert np.all(steps > 0.0) and np.isclose(np.median(steps), 0.01)
    assert steps.max() > 0.05  # lost packets: the time jumps
    assert rec.window.start_s == pytest.approx(5.12)


def test_steady_walking_meets_the_accuracy_targets(recordings):
    scores = pooled(recordings, "steady")
    hs, to = scores["heel_strike"], scores["toe_off"]
    assert to["recall"] >= 0.99 and to["precision"] >= 0.98
    assert hs["recall"] >= 0.99 and hs["precision"] >= 0.99
    for s in (hs, to):
        assert s["median_abs_error_ms"] <= 10.0
        assert abs(s["median_error_ms"]) <= 5.0
        assert s["p95_abs_error_ms"] <= 30.0
    # Heel strike is known within a few samples; toe off once the swing is under way.
    assert hs["median_latency_ms"] <= 30.0 and to["median_latency_ms"] <= 80.0


def test_whole_trial_with_start_stop_and_u_turn(recordings):
    """First and last steps and the U-turn's steps are found (before the heel-strike
    deadline and the swings from standing, 88 % and 93 %), and no heel strike is
    announced more than 150 ms after the labelled one."""
    scores = pooled(recordings, "window")
    hs, to = scores["heel_strike"], scores["toe_off"]
    assert hs["recall"] >= 0.95 and to["recall"] >= 0.96
    assert hs["precision"] >= 0.98 and to["precision"] >= 0.95
    assert hs["max_announced_after_ms"] <= 150.0


def test_the_shank_configuration_is_the_wrong_one_for_a_foot(recordings):
    """One configuration per placement is not a formality: the shank's loses a third."""
    scorer = Scorer(0.1)
    shank = DetectorConfig().setup()
    for rec in recordings:
        scorer.add(rec.reference, detect_batch(shank, rec.t_s, rec.gyro_rad_s)[1], rec.straight)
    assert scorer.summary()["toe_off"]["recall"] < 0.8


def test_fes_detect_on_a_deg_per_s_inverted_csv_matches_the_api(recordings, tmp_path, capsys):
    rec = next(r for r in recordings if r.name == "voisard 13-1 right")
    recording = tmp_path / "foot.csv"
    with recording.open("w") as handle:
        handle.write("time_s,gyr_y_deg_s\n")
        for t, g in zip(rec.t_s, rec.gyro_rad_s, strict=True):
            handle.write(f"{t:.2f},{-np.degrees(g):.6f}\n")
    truth = tmp_path / "truth.csv"
    inside = [(t, e) for t, e in rec.reference if rec.window.contains(np.array([t]))[0]]
    truth.write_text("time_s,event\n" + "".join(f"{t:.2f},{EVENT_NAMES[e]}\n" for t, e in inside))
    out = tmp_path / "events.csv"
    assert main([
        "detect", "--input", str(recording), "--output", str(out), "--placement", "foot",
        "--gyro-column", "gyr_y_deg_s", "--gyro-units", "deg/s", "--invert",
        "--truth", str(truth),
    ]) == 0
    report = json.loads(capsys.readouterr().out)
    scorer = Scorer(0.1)
    _, events = detect_batch(FOOT, rec.t_s, rec.gyro_rad_s)
    scorer.add(inside, events)
    expected = scorer.summary()
    for kind in ("heel_strike", "toe_off"):
        got = report["events"][kind]
        assert got["reference"] == expected[kind]["reference"]
        assert got["recall"] == expected[kind]["recall"]
        assert got["precision"] == expected[kind]["precision"]
        assert got["median_error_ms"] == pytest.approx(expected[kind]["median_error_ms"], abs=0.5)
    lines = out.read_text().splitlines()
    assert lines[0] == "time_s,event" and len(lines) > 30


def test_the_evaluation_scores_the_detector_config_fes_sim_runs():
    """``python -m controller.detect.evaluate`` reads the shipped ``[detector]`` table
    itself (the trial config sits above the detector): the same settings a trial gets."""
    from controller.config import load_config
    from controller.detect.evaluate import shipped_config

    assert shipped_config() == load_config().detector
