"""Reader for the Xsens recordings of the Moving Reality study: walkers after a stroke.

Ensink, Hofstad, Theunissen and Keijsers 2024 (Sensors 24:710, "Assessment of foot
strike angle and forward propulsion with wearable sensors in people with stroke"):
twelve people with stroke walking on an instrumented treadmill (GRAIL), five trials
each (``1Reg`` regular walking, ``FBIC`` / ``FBPO`` / ``2FB`` with visual feedback on
foot strike angle, push-off or both, ``2Reg`` regular again), with Xsens MTw Awinda
IMUs on both feet, both shanks and the lower back. Repository
``SintMaartenskliniek/MovingReality`` (MIT licence); the project reads it from a folder
the user names (``python -m controller.detect.evaluate --movingreality DIR``, ``DIR``
its ``data`` folder) and ships none of it.

Layout: ``1019_ppNN/Xsens/exportedNNN/`` holds one MT Manager export per sensor
(``MT_<station>_<trial>-000_<sensor id>.txt``: lines starting ``//``, then a
tab-separated header: ``PacketCounter``, ``SampleTimeFine`` (left empty), ...,
``Gyr_X/Y/Z`` in rad/s, ...) and ``sensorspec.json`` (some folders:
``sensorspec.json.txt``) naming each placement's file by the end of its name;
``1019_ppNN/corresponding_files.txt`` maps the trial names to the export folders, with
the authors' remarks (``# Xsens data; recording error``).

Sample rate: the exports do not give it; 100 Hz is what the authors' own reader assumes
for these Awinda exports (``data_preprocessor`` of their gait tool, whose sensorspec
files carry no ``sample_frequency``). Sagittal axis: ``Gyr_Y``, the axis the authors
read as the shank's angular velocity (``shank_kinematics_xsens`` in
``MovingReality_functions.py``), the sign as recorded: the detector's mounting check
decides it, as ``fes detect`` does. The foot sensors are read for the norm of their
three axes (which needs neither an axis nor a sign): what the reference-free figures
(``controller.detect.unreferenced``) compare the swings with; and for all six axes, for
the foot detector and for an offline reference (``controller.detect.footref``). The
foot's sagittal axis is not given by the authors: ``foot_sagittal_axis`` decides it
from the data, with the project's axis check, once for the whole folder (one mounting
protocol), and each foot's axis check then says where it does not hold.

There is **no reference** here: the study's gold standard (Vicon markers and the
treadmill's force plates, ``1019_ppNN/Vicon/*.c3d``) is listed in the repository but
absent from the snapshot the project could fetch; so the recordings have no reference
events (``Recording.reference`` is empty) and are scored without one.

Left out, and named: a trial the authors mark as a recording error, an export folder
without a sensorspec file, and a leg whose shank or foot file is not in the folder.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.detect.axis import check_axes
from controller.detect.datasets import PACKET_COUNTER_WRAP, FootImu, Recording, xsens_gyro_rows
from controller.detect.score import ScoringWindow
from controller.progress import progress

#: Sample rate of the exports (see the module docstring).
RATE_HZ = 100.0
#: The export folders of a copy of the data, relative to the folder given.
EXPORTS = "1019_pp*/Xsens/exported*"
#: What ``DIR`` must hold, for the refusal of another folder.
HOLDS = ("the Moving Reality data (the data folder of SintMaartenskliniek/MovingReality: "
         "1019_ppNN/Xsens/exportedNNN/sensorspec.json and MT_*.txt)")
#: The gyro axis read as sagittal on the shank.
SAGITTAL_AXIS = "Gyr_Y"
#: The gyro columns of every sensor, in the order of ``FootImu.gyr_rad_s``.
GYRO_AXES = ("Gyr_X", "Gyr_Y", "Gyr_Z")
#: Where a detector may be worn here.
PLACEMENTS = ("shank", "foot")
#: The authors' remark on a trial whose IMU recording failed.
_RECORDING_ERROR = re.compile(r"recording error", re.IGNORECASE)
_SIDES = ("left", "right")


@dataclass(frozen=True)
class Leg:
    """One leg of one trial: its shank recording and its foot's angular speed."""

    shank: Recording
    #: The norm of the foot sensor's three gyro axes (rad/s), at the shank's times.
    foot_norm_rad_s: np.ndarray
    trial: str  # the export folder and the authors' trial name, e.g. "exported000 1Reg"
    side: str  # "left" or "right"
    #: The foot sensor's six axes on its own samples (times on the shank's clock), for
    #: an offline reference (``controller.detect.footref``).
    foot: FootImu | None = None


@dataclass(frozen=True)
class Loaded:
    """The legs of a folder, and what was left out with the reason."""

    legs: list[Leg]
    left_out: list[str]


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be read as the Moving Reality data (None: it can)."""
    if not folder.is_dir():
        return f"{folder}: no such folder; give the folder of {HOLDS}"
    if next(folder.glob(f"{EXPORTS}/sensorspec.json*"), None) is None:
        return f"{folder}: no {EXPORTS}/sensorspec.json in it; give the folder of {HOLDS}"
    return None


def read_export(
    path: Path, prefixes: tuple[str, ...] = ("Gyr_",)
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Packet counter (unwrapped) and gyro columns (rad/s; with ``prefixes`` ``("Acc_",
    "Gyr_")`` the accelerometer's too) of one MT Manager export."""
    with path.open(encoding="utf-8") as handle:
        line = handle.readline()
        while line.startswith("//"):
            line = handle.readline()
        return xsens_gyro_rows(path, handle, line.split("\t"),
                               "its header has no sample row below it", prefixes)


def trial_names(participant: Path) -> dict[str, str]:
    """Export folder -> the line of ``corresponding_files.txt`` naming it (trial name and
    the authors' remark), or {} where the participant has no such file."""
    path = participant / "corresponding_files.txt"
    if not path.is_file():
        return {}
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*1019_MR\d+_(\w+?)\d*\.c3d'?\]?\s*=\s*(exported\d+)(.*)", line)
        if match is not None:
            names[match.group(2)] = f"{match.group(1)} {match.group(3).strip()}".strip()
    return names


def _sensor_file(export: Path, spec: dict[str, str], placement: str) -> Path | None:
    """The file ``spec`` names for ``placement`` (by the end of its name), if present."""
    ending = spec.get(placement)
    if ending is None:
        return None
    return next((p for p in sorted(export.glob("MT_*.txt")) if p.name.endswith(ending)), None)


def _on_clock(counter: np.ndarray, first: float) -> np.ndarray:
    """Seconds from the packet ``first`` (unwrapped counters of one station)."""
    offset = (counter[0] - first + PACKET_COUNTER_WRAP / 2) % PACKET_COUNTER_WRAP
    return (counter - counter[0] + offset - PACKET_COUNTER_WRAP / 2) / RATE_HZ


def read_leg(export: Path, spec: dict[str, str], side: str, walker: str,
             trial: str) -> Leg | str:
    """One leg of one export folder, or why it is left out."""
    shank_path = _sensor_file(export, spec, f"{side}shank")
    foot_path = _sensor_file(export, spec, f"{side}foot")
    if shank_path is None or foot_path is None:
        missing = "shank" if shank_path is None else "foot"
        return f"{walker} {trial} {side}: its {missing} file is not in {export}"
    counter, axes = read_export(shank_path)
    t_s = _on_clock(counter, counter[0])
    foot_counter, foot_columns = read_export(foot_path, ("Acc_", "Gyr_"))
    foot_gyro = [foot_columns[name] for name in foot_columns if name.startswith("Gyr_")]
    foot_norm = np.linalg.norm(np.vstack(foot_gyro), axis=0)
    whole = ScoringWindow(float(t_s[0]), float(t_s[-1]))
    shank = Recording(
        f"movingreality {walker} {trial} {side} shank", f"movingreality {walker}", t_s,
        axes[SAGITTAL_AXIS], None, [], whole, whole, whole, axes, SAGITTAL_AXIS,
    )
    foot_t_s = _on_clock(foot_counter, counter[0])
    foot = (FootImu.from_columns(foot_t_s, foot_columns, RATE_HZ, side)
            if all(f"{k}_{a}" in foot_columns for k in ("Acc", "Gyr") for a in "XYZ") else None)
    return Leg(shank, np.interp(t_s, foot_t_s, foot_norm), trial, side, foot)


def load_movingreality(folder: Path) -> Loaded:
    """Both legs of every trial under ``folder`` (see the module docstring)."""
    legs: list[Leg] = []
    left_out: list[str] = []
    exports = sorted(p for p in folder.glob(EXPORTS) if p.is_dir())
    with progress(len(exports), "reading Moving Reality trials", "trial") as shown:
        for export in exports:
            participant = export.parent.parent
            walker = participant.name.removeprefix("1019_")
            trial = f"{export.name} {trial_names(participant).get(export.name, '')}".strip()
            spec_path = next(export.glob("sensorspec.json*"), None)
            if _RECORDING_ERROR.search(trial):
                left_out.append(f"{walker} {trial}: the authors' remark")
            elif spec_path is None:
                left_out.append(f"{walker} {trial}: no sensorspec.json in {export}")
            else:
                spec = json.loads(spec_path.read_text(encoding="utf-8"))
                for side in _SIDES:
                    leg = read_leg(export, spec, side, walker, trial.split("#")[0].strip())
                    if isinstance(leg, str):
                        left_out.append(leg)
                    else:
                        legs.append(leg)
            shown.advance()
    return Loaded(legs, left_out)


def foot_sagittal_axis(legs: Sequence[Leg]) -> tuple[str | None, Counter[str]]:
    """The foot sensors' sagittal axis, decided from the data: on each foot the axis the
    project's axis check finds turning most while moving (``check_axes``, as
    ``controller.detect.footref.sensor_frame`` takes it), and the axis most feet name; a
    foot that never moves names none. Returns it (None: no foot moves) and the count of
    each axis named."""
    named = Counter[str]()
    for leg in legs:
        if leg.foot is not None:
            turns = check_axes(leg.foot.t_s, leg.foot.gyr_rad_s.T, 0, GYRO_AXES)
            if turns.moving_s > 0:
                named[GYRO_AXES[turns.turns_most]] += 1
    return (named.most_common(1)[0][0] if named else None), named


def worn_sensor(leg: Leg, placement: str, foot_axis: str | None
                ) -> tuple[Recording, np.ndarray] | None:
    """The recording a detector worn at ``placement`` reads on ``leg`` (the foot's with
    ``foot_axis`` as its sagittal column, its sign as recorded) and the foot's angular
    speed (norm of its three gyro axes) at that recording's times; None where the foot
    has no six axes or no axis was decided."""
    if placement == "shank":
        return leg.shank, leg.foot_norm_rad_s
    if leg.foot is None or foot_axis is None:
        return None
    foot = leg.foot
    axes = dict(zip(GYRO_AXES, foot.gyr_rad_s.T, strict=True))
    whole = ScoringWindow(float(foot.t_s[0]), float(foot.t_s[-1]))
    name = leg.shank.name.removesuffix(" shank") + " foot"
    rec = Recording(name, leg.shank.walker, foot.t_s, axes[foot_axis], None, [], whole,
                    whole, whole, axes, foot_axis)
    return rec, np.linalg.norm(foot.gyr_rad_s, axis=1)
