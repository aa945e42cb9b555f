"""``controller.detect.gyrocolumn``: the gyro column of a recording checked over the whole
file before ``fes detect`` runs the detector: its axis (another read instead, with a
warning), its units (a note) and its sign (inverted, with a warning). On two Voisard
walkers with all three axes (tests/data/voisard_axes); tests/test_detect_axis.py and
tests/test_detect_mounting.py run the same checks through the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.commands.detect import GYRO_UNIT_NAMES
from controller.detect import gyrocolumn
from controller.detect.config import load_detector_config
from controller.detect.datasets import load_voisard
from controller.detect.detector import detect_batch
from controller.detect.gyrocolumn import checked_sign, gyro_rad_s, units_note


@pytest.fixture(scope="module")
def foot() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The first foot of tests/data/voisard_axes (trial 1 of two Voisard walkers, with
    all three gyro axes): its times and its Gyr_X, Gyr_Y and Gyr_Z as a recording's
    columns."""
    first = load_voisard(Path(__file__).parent / "data" / "voisard_axes")[0]
    assert first.gyro_axes is not None
    return first.t_s, dict(first.gyro_axes)


def test_the_command_offers_the_units_the_column_is_read_in():
    assert tuple(gyrocolumn.RAD_S_PER_UNIT) == GYRO_UNIT_NAMES


def test_a_column_that_is_not_the_sagittal_axis_is_replaced_by_the_one_that_is(foot):
    t_s, columns = foot
    column, gyro, notes = gyro_rad_s(t_s, columns, "Gyr_X", "rad/s", invert=False)
    assert column == "Gyr_Y" and np.array_equal(gyro, columns["Gyr_Y"])
    [note] = notes
    assert note.kind == "warning"
    assert note.text.startswith("gyroscope axis Gyr_X is not the sagittal one: while moving, "
                                "Gyr_Y turns ")
    assert note.text.endswith("read Gyr_Y instead. Pass --gyro-column Gyr_Y to read it "
                              "directly.")
    assert gyro_rad_s(t_s, columns, "Gyr_Y", "rad/s", invert=False)[2] == []


def test_a_column_in_deg_s_is_read_in_rad_s_and_inverted_as_asked(foot):
    t_s, columns = foot
    in_deg_s = {name: np.degrees(values) for name, values in columns.items()}
    column, gyro, notes = gyro_rad_s(t_s, in_deg_s, "Gyr_Y", "deg/s", invert=True)
    assert column == "Gyr_Y" and notes == []
    assert np.allclose(gyro, -columns["Gyr_Y"])


def test_without_the_other_two_axes_the_column_is_read_as_it_is(foot):
    t_s, columns = foot
    column, gyro, notes = gyro_rad_s(t_s, {"Gyr_X": columns["Gyr_X"]}, "Gyr_X", "rad/s",
                                     invert=False)
    assert column == "Gyr_X" and np.array_equal(gyro, columns["Gyr_X"]) and notes == []


def test_when_no_axis_stands_out_the_column_is_read_as_it_is_and_the_user_told(foot):
    t_s, columns = foot
    swing = columns["Gyr_Y"]
    still = {name: swing * 0.01 for name in columns}  # the sensor barely moves
    column, _, [note] = gyro_rad_s(t_s, still, "Gyr_Y", "rad/s", invert=False)
    assert column == "Gyr_Y" and note.kind == "note"
    assert note.text == ("too little movement to check that Gyr_Y is the sagittal axis "
                         "(0.0 s; the check needs 2 s, or one axis turning clearly more than "
                         "the others); read as it is.")
    # the declared axis turns half as much as either other, and they turn alike
    two_alike = {"Gyr_X": swing, "Gyr_Y": swing * 0.5, "Gyr_Z": -swing}
    column, _, [note] = gyro_rad_s(t_s, two_alike, "Gyr_Y", "rad/s", invert=False)
    assert column == "Gyr_Y" and note.kind == "warning"
    assert note.text.endswith("and neither other axis stands out as sagittal; read Gyr_Y as "
                              "it is (check how the sensor was worn).")


FASTEST, SLOWEST = gyrocolumn.MOST_RAD_S, gyrocolumn.LEAST_SWING_RAD_S


@pytest.mark.parametrize(("fastest", "units", "said"), [
    (FASTEST * 1.01, "rad/s", "reaches 35.35 rad/s (99th percentile), beyond what a "
     "gyroscope reads (about 35 rad/s): is it in deg/s? Pass --gyro-units deg/s."),
    (FASTEST, "rad/s", None),
    (SLOWEST * 0.99, "deg/s", "read as deg/s turns at most 0.198 rad/s (99th percentile), "
     "slower than a walking shank swings: is it in rad/s? Drop --gyro-units deg/s."),
    (SLOWEST, "deg/s", None),
])
def test_a_column_beyond_any_gyroscope_or_below_any_swing_is_pointed_out(fastest, units,
                                                                         said):
    gyro = np.append(np.resize([fastest, -fastest], 1000), np.nan)  # |gyro| = fastest
    note = units_note("gyro", gyro, units)
    assert (note.text if note else None) == (f"gyro {said}" if said else None)


def test_a_flipped_sign_is_inverted_and_every_stride_then_reported(foot):
    t_s, columns = foot
    config = load_detector_config(overrides={"detector": {"placement": "foot"}})
    flipped = -columns["Gyr_Y"]
    checked, gyro, note = checked_sign(config, t_s, flipped, "Gyr_Y", inverted=False)
    assert np.array_equal(gyro, columns["Gyr_Y"])
    assert note is not None and note.kind == "warning" and note.text == (
        "Gyr_Y has its sign flipped (swing is negative: a sensor worn upside down or on the "
        "other leg); inverted it. Pass --invert to read it the right way round.")
    _, after_check = detect_batch(checked.setup(), t_s, gyro)
    _, as_in_a_trial = detect_batch(config.setup(), t_s, gyro)
    assert len(after_check) > len(as_in_a_trial)  # the strides a trial holds back
    _, _, note = checked_sign(config, t_s, flipped, "Gyr_Y", inverted=True)
    assert note is not None and "Drop --invert to read it" in note.text
    _, right, note = checked_sign(config, t_s, columns["Gyr_Y"], "Gyr_Y", inverted=False)
    assert note is None and np.array_equal(right, columns["Gyr_Y"])


def test_too_few_strides_to_check_the_sign_are_read_as_they_are(foot):
    t_s, columns = foot
    config = load_detector_config(overrides={"detector": {"placement": "foot"}})
    short = slice(0, 150)  # 1.5 s
    _, gyro, note = checked_sign(config, t_s[short], columns["Gyr_Y"][short], "Gyr_Y",
                                 inverted=False)
    assert np.array_equal(gyro, columns["Gyr_Y"][short])
    assert note == ("note", "too few strides to check the sign of Gyr_Y (the check needs 3 "
                    "each way round); read as it is.")
