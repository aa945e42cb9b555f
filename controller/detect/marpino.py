"""Reader for the shank recordings of the Walking-dataset of GitHub user Marpino.

The repository has no licence: the project uses it for evaluation only, from a folder
the user names (``python -m controller.detect.evaluate --marpino DIR``), and never ships
any of it or anything derived from it. ``DIR`` is its ``Dataset/Young`` folder (or any
folder of its ``.xlsx`` files): each file is one walker walking 5 m straight, from
standing to standing, with seven IMUs at 100 Hz (its README: ``_1`` right foot, ``_2``
right shank, ``_3`` right thigh, ``_4`` left thigh, ``_5`` left shank, ``_6`` left foot,
``_7`` back) and two pressure sensors on each foot IMU (``Ext1`` toe, ``Ext2`` heel).

Signals. The README scales the gyroscope as ``raw / 100`` deg/s and rotates the right
leg's sensors by ``[0 0 1; 0 1 0; -1 0 0]`` and the left leg's by ``[0 0 -1; 0 -1 0;
-1 0 0]``; the sagittal axis is the rotated x, i.e. ``+Gyro_read_z`` on the right leg
and ``-Gyro_read_z`` on the left, positive in swing on both (checked by eye: a large
positive peak in every swing, negative in stance on the shank). The rows of a file are
one sample of every sensor (their time stamps agree within 10-30 ms); time is the
shank's own ``Time_`` column (ms, 10 ms steps).

Reference events from the pressure sensors of the same leg's foot. The two sensors are
force-sensitive resistors with an offset and a gain of their own, which also drift (one
toe sensor reads 150-200 in swing, another 0; standing levels range from 0 to 2500), so
each has its own threshold: ``PRESSURE_FRACTION`` of the way from its unloaded level
(the 5th percentile of the recording, reached in every swing) to its loaded level (the
99th percentile). The foot is in contact while either sensor is above its threshold;
gaps in contact shorter than ``MIN_SWING_S`` (a sensor dipping while the walker stands)
and then contacts shorter than ``MIN_CONTACT_S`` (a sensor flickering in swing; a stance
lasts 0.4 s or more) are merged into their neighbours. The two sensors see only the heel
and the toes, so a walker standing on the midfoot reads as no contact: a gap in which
the foot's own gyroscope never turns faster than ``SWING_FOOT_RAD_S`` (1 rad/s; real
swings reach 3-8 rad/s) is no swing and is filled first. Heel strike is the first sample
of a contact, toe off the first sample after it. A gap longer than ``MAX_SWING_S`` holds
more than a swing (the walker stood lightly on the midfoot before the first step): its
two events are dropped and the gap is left out of scoring. A sensor whose loaded and
unloaded levels differ by less than ``MIN_RANGE`` does not follow the gait (it is broken
or not under the foot): a leg whose heel or toe sensor is like that is left out, and
named.

The scored window is the whole recording; ``steady`` leaves out each foot's first and
last step (its first and last swing, toe off to heel strike, widened by 100 ms), the
steps the issue's shank target excludes: they start from and end in standing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.detect.datasets import Recording, contact_events, end_swings
from controller.detect.score import ScoringWindow
from controller.events import Event
from controller.progress import progress

#: Where between a pressure sensor's unloaded and loaded level its contact threshold lies.
PRESSURE_FRACTION = 0.2
#: Contacts shorter than this are merged into their neighbours (a sensor flickering).
MIN_CONTACT_S = 0.15
#: Gaps in contact shorter than this are no swing (a sensor dipping while standing).
MIN_SWING_S = 0.15
#: A gap in contact longer than this is standing lightly before a step, not a swing.
MAX_SWING_S = 1.0
#: A gap in contact in which the foot's gyroscope never exceeds this is no swing.
SWING_FOOT_RAD_S = 1.0
#: A pressure sensor whose loaded and unloaded levels differ less than this (raw units)
#: does not follow the gait.
MIN_RANGE = 500.0
_GYRO_SCALE = np.pi / 180.0 / 100.0  # raw units -> rad/s
#: The column of the sagittal axis, before the leg's sign.
SAGITTAL_AXIS = "Gyro_read_z"
#: Side, shank sensor, foot sensor, sign of Gyro_read_z that makes the sagittal axis.
_LEGS = (("right", 2, 1, 1.0), ("left", 5, 6, -1.0))


@dataclass(frozen=True)
class Leg:
    """One leg of one walker: both placements' sagittal gyro and the pressure."""

    t_s: np.ndarray
    shank_rad_s: np.ndarray
    foot_rad_s: np.ndarray
    toe: np.ndarray
    heel: np.ndarray
    #: Each placement's gyro axes as read (``Gyro_read_x/y/z``, rad/s; ``z`` is the
    #: sagittal one), for the axis check.
    shank_axes: dict[str, np.ndarray]
    foot_axes: dict[str, np.ndarray]


def _read_xlsx(path: Path) -> tuple[list[str], np.ndarray]:
    """Header and values (NaN where a cell is empty) of the first sheet."""
    import openpyxl  # optional: the `eval` extra

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [str(name).strip() for name in next(rows)]
        values = [
            [np.nan if v is None or str(v).strip() == "" else float(str(v)) for v in row]
            for row in rows
        ]
    finally:
        book.close()
    return header, np.array(values, dtype=float)


def read_legs(path: Path) -> dict[str, Leg]:
    """Both legs of one recording."""
    header, data = _read_xlsx(path)

    def column(name: str) -> np.ndarray:
        if name not in header:
            raise ValueError(f"{path}: no column {name!r}")
        return data[:, header.index(name)]

    def axes(sensor: int) -> dict[str, np.ndarray]:
        """The sensor's gyro axes that the file has (the sagittal one it must have)."""
        names = [name for name in (f"Gyro_read_{a}" for a in "xyz")
                 if name == SAGITTAL_AXIS or f"{name}_{sensor}" in header]
        return {name: _GYRO_SCALE * column(f"{name}_{sensor}") for name in names}

    legs = {}
    for side, shank, foot, sign in _LEGS:
        t_ms = column(f"Time_{shank}")
        shank_axes, foot_axes = axes(shank), axes(foot)
        legs[side] = Leg(
            (t_ms - t_ms[0]) / 1000.0,
            sign * shank_axes[SAGITTAL_AXIS],
            sign * foot_axes[SAGITTAL_AXIS],
            column(f"Ext1_{foot}"),
            column(f"Ext2_{foot}"),
            shank_axes,
            foot_axes,
        )
    return legs


def sensor_levels(pressure: np.ndarray) -> tuple[float, float]:
    """Unloaded and loaded level of one pressure sensor."""
    finite = pressure[np.isfinite(pressure)]
    return float(np.percentile(finite, 5)), float(np.percentile(finite, 99))


def pressure_contact(toe: np.ndarray, heel: np.ndarray, fraction: float) -> np.ndarray:
    """Whether the foot is in contact at each sample (either sensor above threshold)."""
    contact = np.zeros(toe.size, dtype=bool)
    for pressure in (toe, heel):
        low, high = sensor_levels(pressure)
        contact |= pressure > low + fraction * (high - low)
    return contact


def broken_sensors(leg: Leg) -> list[str]:
    """The pressure sensors of ``leg`` that do not follow the gait."""
    broken = []
    for name, pressure in (("toe", leg.toe), ("heel", leg.heel)):
        low, high = sensor_levels(pressure)
        if high - low < MIN_RANGE:
            broken.append(name)
    return broken


def _fill_still_gaps(contact: np.ndarray, foot_rad_s: np.ndarray) -> np.ndarray:
    """``contact`` with every gap in which the foot never turned faster than
    ``SWING_FOOT_RAD_S`` filled: no foot swings without rotating."""
    contact = contact.copy()
    edges = np.flatnonzero(np.diff(contact.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [contact.size]))
    for a, b in itertools.pairwise(bounds):
        if not contact[a] and np.nanmax(np.abs(foot_rad_s[a:b])) < SWING_FOOT_RAD_S:
            contact[a:b] = True
    return contact


def reference_events(leg: Leg, fraction: float = PRESSURE_FRACTION) -> list[tuple[float, Event]]:
    """Heel strike and toe off from the pressure sensors (see the module docstring)."""
    contact = _fill_still_gaps(pressure_contact(leg.toe, leg.heel, fraction), leg.foot_rad_s)
    return contact_events(leg.t_s, contact, MIN_CONTACT_S, MIN_SWING_S)


@dataclass(frozen=True)
class Loaded:
    """The recordings of a folder, and the legs left out with the reason."""

    shank: list[Recording]
    foot: list[Recording]
    left_out: list[str]


def load_marpino(folder: Path, fraction: float = PRESSURE_FRACTION) -> Loaded:
    """Every leg of every ``*.xlsx`` in ``folder``: a shank and a foot recording each."""
    shank: list[Recording] = []
    foot: list[Recording] = []
    left_out: list[str] = []
    paths = sorted(folder.glob("*.xlsx"))
    with progress(len(paths), "reading Marpino workbooks", "file") as shown:  # ~3 s each
        legs = []
        for path in paths:
            legs.append((path.stem, read_legs(path)))
            shown.advance()
    for walker, by_side in legs:
        for side, leg in by_side.items():
            broken = broken_sensors(leg)
            if broken:
                left_out.append(f"{walker} {side}: {' and '.join(broken)} sensor flat")
                continue
            reference, unknown = _drop_long_swings(reference_events(leg, fraction))
            swings = _swings(reference)
            if len(swings) < 3:
                left_out.append(f"{walker} {side}: fewer than 3 swings in the pressure")
                continue
            t0, t1 = float(leg.t_s[0]), float(leg.t_s[-1])
            whole = ScoringWindow(t0, t1, tuple(unknown))
            steady = ScoringWindow(t0, t1, (*unknown, *end_swings(swings, [(t0, t1)])))
            for placement, gyro, axes, out in (
                ("shank", leg.shank_rad_s, leg.shank_axes, shank),
                ("foot", leg.foot_rad_s, leg.foot_axes, foot),
            ):
                out.append(
                    Recording(
                        f"marpino {walker} {side} {placement}", walker, leg.t_s, gyro, None,
                        reference, whole, whole, steady, axes, SAGITTAL_AXIS,
                    )
                )
    return Loaded(shank, foot, left_out)


def _swings(reference: list[tuple[float, Event]]) -> np.ndarray:
    """(toe off, next heel strike) pairs."""
    pairs = []
    pending = None
    for t, kind in reference:
        if kind == Event.TOE_OFF:
            pending = t
        elif pending is not None:
            pairs.append((pending, t))
            pending = None
    return np.array(pairs).reshape(-1, 2)


def _drop_long_swings(
    reference: list[tuple[float, Event]],
) -> tuple[list[tuple[float, Event]], list[tuple[float, float]]]:
    """The reference without the gaps longer than ``MAX_SWING_S``, and those gaps (with
    a 100 ms margin), to be left out of scoring."""
    unknown = [
        (toe_off - 0.1, heel_strike + 0.1)
        for toe_off, heel_strike in _swings(reference)
        if heel_strike - toe_off > MAX_SWING_S
    ]
    kept = [
        (t, kind) for t, kind in reference if not any(a <= t <= b for a, b in unknown)
    ]
    return kept, unknown
