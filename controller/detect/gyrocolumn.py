"""The gyroscope column of a recording, checked over the whole file before detection.

``fes detect`` reads one column as the sagittal angular velocity, and three things
about it can be wrong without the detector noticing:

- **the axis** (``controller.detect.axis``): where the column is named with an axis
  letter (``Gyr_Y``, ``gyro_x_rad_s``) and the file has the other two axes, the axis
  that turns most while moving is checked to be this one; if another passes as
  sagittal it is read instead, with a warning (``gyro_rad_s``);
- **the units**: a column that, read in the units said, turns faster than any IMU
  reads or slower than a walking shank is pointed out (``units_note``);
- **the sign** (the mounting check, ``controller.detect.gyro``): a column found flipped
  (swing negative) is inverted with a warning (``checked_sign``); since the whole file
  has then been checked, the trial's own check of the first strides is not repeated,
  so every stride is reported.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, cast

import numpy as np

from controller.detect.axis import CHECKING, MOVING_S, SAGITTAL, check_axes
from controller.detect.detector import gyro_mounting
from controller.detect.notes import Note

if TYPE_CHECKING:
    from controller.detect.config import DetectorConfig

#: rad/s per unit of a gyro column.
RAD_S_PER_UNIT = {"rad/s": 1.0, "deg/s": math.pi / 180.0}
#: No gyroscope of a wearable IMU reads beyond about 2000 deg/s (35 rad/s), and a walking
#: shank or foot turns at 2-15 rad/s at its fastest: a column beyond this is not rad/s.
MOST_RAD_S = 35.0
#: A walking shank's swing turns it at over 1 rad/s: a column read as deg/s that never
#: turns faster than this (in rad/s) was most likely written in rad/s.
LEAST_SWING_RAD_S = 0.2
#: An axis letter standing alone in a column name (``Gyr_Y``, ``gyro_x_rad_s``).
_AXIS_LETTER = re.compile(r"(?<![A-Za-z])[xyzXYZ](?![A-Za-z])")


def axis_columns(column: str) -> tuple[tuple[str, str, str], int] | None:
    """The three gyro columns named like ``column`` with another axis letter, and which
    of them ``column`` is: ``Gyr_Y`` -> (``Gyr_X``, ``Gyr_Y``, ``Gyr_Z``), 1;
    ``gyro_z_rad_s`` -> (``gyro_x_rad_s``, ...), 2. None when the name has not exactly
    one x, y or z standing alone (not inside a word), as ``gyro_rad_s``."""
    found = list(_AXIS_LETTER.finditer(column))
    if len(found) != 1:
        return None
    letter = found[0]
    letters = "xyz" if letter.group().islower() else "XYZ"
    head, tail = column[: letter.start()], column[letter.end():]
    a, b, c = (f"{head}{axis}{tail}" for axis in letters)
    return (a, b, c), letters.index(letter.group())


def gyro_rad_s(
    t_s: np.ndarray, columns: dict[str, np.ndarray], column: str, units: str, invert: bool,
) -> tuple[str, np.ndarray, list[Note]]:
    """The gyro column to detect on, in rad/s (the signs flipped if ``invert``): the
    sagittal axis if ``column`` is found not to be it (the axis check, where
    ``columns`` holds the other two axes), with what to tell the user."""
    scale = RAD_S_PER_UNIT[units]
    notes = []
    axes = axis_columns(column)
    if axes is not None and all(name in columns for name in axes[0]):
        column, axis_note = _checked_axis(t_s, columns, axes, scale)
        if axis_note is not None:
            notes.append(axis_note)
    gyro = columns[column] * (-scale if invert else scale)
    units_said = units_note(column, gyro, units)
    if units_said is not None:
        notes.append(units_said)
    return column, gyro, notes


def _checked_axis(
    t_s: np.ndarray, columns: dict[str, np.ndarray],
    axes: tuple[tuple[str, str, str], int], scale: float,
) -> tuple[str, Note | None]:
    """Run the axis check over the whole file: the declared column, if it is not the
    sagittal axis, is replaced by the one that is, if one passes. Returns the column to
    detect on and what to tell the user (None: nothing)."""
    names, declared = axes
    found = check_axes(t_s, np.vstack([columns[n] for n in names]) * scale, declared, names)
    column = names[declared]
    if found.verdict == SAGITTAL:
        return column, None
    if found.verdict == CHECKING:
        return column, Note("note", (
            f"too little movement to check that {column} is the sagittal axis "
            f"({found.moving_s:.1f} s; the check needs {MOVING_S:g} s, or one axis turning "
            "clearly more than the others); read as it is."
        ))
    better = found.sagittal_found
    if better is None:
        return column, Note("warning", (
            f"{found.why()}, and neither other axis stands out as sagittal; read {column} "
            "as it is (check how the sensor was worn)."
        ))
    return better, Note("warning", (
        f"{found.why()}; read {better} instead. Pass --gyro-column {better} to read it "
        "directly."
    ))


def units_note(column: str, gyro: np.ndarray, units: str) -> Note | None:
    """A note when the gyro column (in rad/s, read from ``units``) turns faster than
    any IMU can read or slower than a walking shank: it is most likely in the other
    units."""
    finite = np.abs(gyro[np.isfinite(gyro)])
    if finite.size == 0:
        return None
    k = int(0.99 * (finite.size - 1))  # the 99th percentile, without np.percentile,
    fast = float(np.partition(finite, k)[k])  # whose first call imports numpy.ma (0.1 s)
    if units == "rad/s" and fast > MOST_RAD_S:
        return Note("note", (
            f"{column} reaches {fast:.4g} rad/s (99th percentile), beyond what a gyroscope "
            f"reads (about {MOST_RAD_S:g} rad/s): is it in deg/s? Pass --gyro-units deg/s."
        ))
    if units == "deg/s" and fast < LEAST_SWING_RAD_S:
        return Note("note", (
            f"{column} read as deg/s turns at most {fast:.3g} rad/s (99th percentile), "
            "slower than a walking shank swings: is it in rad/s? Drop --gyro-units deg/s."
        ))
    return None


def checked_sign(
    config: DetectorConfig, t_s: np.ndarray, gyro: np.ndarray, column: str, inverted: bool,
) -> tuple[DetectorConfig, np.ndarray, Note | None]:
    """Run the mounting check of ``config``'s placement over the whole file: a flipped
    ``gyro`` is inverted (``inverted``: it was inverted as asked). Returns the config to
    detect with (the file's check replaces the trial's check of the first strides, so
    every stride is reported), the gyro column, and what to tell the user once the
    events are written (None: nothing). ``ValueError`` as ``detect_batch``."""
    placement = config.gyro_config()
    if placement.mount_check_strides == 0:
        return config, gyro, None
    block = gyro_mounting(placement, t_s, gyro)
    verdict = block["verdict"]
    right, flipped = cast(list[int], block["strides"])
    note = None
    if verdict == "flipped":
        note = Note("warning", (
            f"{column} has its sign flipped (swing is negative: a sensor worn upside down or "
            f"on the other leg); inverted it. {'Drop --invert' if inverted else 'Pass --invert'}"
            " to read it the right way round."
        ))
        gyro = -gyro
    elif verdict == "checking" and max(right, flipped) >= placement.mount_check_strides:
        note = Note("note", (
            f"the strides found either way round do not tell the sign of {column} ({right} "
            f"as recorded, {flipped} flipped: a leg that swings little, or an irregular "
            "walk); read as it is."
        ))
    elif verdict == "checking":
        note = Note("note", (
            f"too few strides to check the sign of {column} (the check needs "
            f"{placement.mount_check_strides} each way round); read as it is."
        ))
    unchecked = placement.model_copy(update={"mount_check_strides": 0})
    gyros = config.gyro.model_copy(update={config.placement: unchecked})
    return config.model_copy(update={"gyro": gyros}), gyro, note
