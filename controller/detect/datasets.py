"""Readers for the public walking recordings the detectors are measured on.

* Voisard et al. 2023 (IPOL, "A reference data set for the study of healthy subject
  gait with inertial measurement units"): Xsens MTw IMUs on the dorsum of both feet,
  100 Hz, files ``<s>-<trial>_lf.txt`` / ``_rf.txt`` and ``<s>-<trial>.json`` with
  ``LeftFootEvents`` / ``RightFootEvents`` = [toe off, heel strike] sample indices per
  swing, ``TrialBoundaries`` and ``UTurnBoundaries``. The index counts samples from the
  file's first ``PacketCounter``, so time is (counter - first counter) / rate: packets
  lost on the radio link are gaps in time, as they would be live. ``Gyr_Y`` is the
  sagittal axis, positive in swing on both feet.
* PhysioNet gaitpdb (Hausdorff, Yogev et al.; Goldberger et al. 2000): 100 Hz,
  ``t, L1..L8, R1..R8, total_L, total_R`` vertical force in N from 8 insole sensors per
  foot; L1 / R1 is the heel sensor. There are no annotations: the reference is contact
  from the total force of the foot, above 20 N, with contacts and gaps shorter than
  ``FORCE_REFERENCE_MIN_RUN_S`` ignored (the total hovers near 20 N while standing on
  one foot in turns, and brushes it in swing).

Each reader returns ``Recording`` objects: the signals, the reference events and the
window in which they are scored.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.detect.csvfiles import CsvError
from controller.detect.samplerows import no_samples
from controller.detect.score import ScoringWindow
from controller.events import Event
from controller.progress import progress

#: Contact threshold of the force reference, as in the dataset's own description.
FORCE_REFERENCE_N = 20.0
#: Contact or no-contact runs shorter than this are not events of the force reference.
FORCE_REFERENCE_MIN_RUN_S = 0.06
#: A gaitpdb walk's file name: subject and walk number, e.g. ``GaCo01_01.txt``.
GAITPDB_WALKS = "*_[0-9][0-9].txt"
#: The Xsens packet counter counts modulo this (16 bits).
PACKET_COUNTER_WRAP = 65536
_VOISARD_SIDES = (("lf", "LeftFootEvents", "left"), ("rf", "RightFootEvents", "right"))


@dataclass(frozen=True)
class Recording:
    """One foot of one walk: signals, reference events and the scored windows.

    ``window`` is the whole labelled trial; ``straight`` leaves out the turns; ``steady``
    also leaves out the first and last step of each straight walk (starting and
    stopping), keeping steady walking only.
    """

    name: str
    walker: str  # who walks: leave-one-walker-out holds out all of a walker's recordings
    t_s: np.ndarray
    gyro_rad_s: np.ndarray | None
    heel_force_n: np.ndarray | None
    reference: list[tuple[float, Event]]
    window: ScoringWindow
    straight: ScoringWindow
    steady: ScoringWindow
    #: The gyro axes the recording has (name -> rad/s; the axis check needs all three);
    #: ``sagittal_axis`` names the sagittal one among them.
    gyro_axes: dict[str, np.ndarray] | None = None
    sagittal_axis: str | None = None
    #: The file the signals were read from (Voisard: the foot's IMU file).
    source: Path | None = None


def _voisard_rate_hz(path: Path, first_line: str) -> float:
    match = re.search(r"([0-9.]+)\s*Hz", first_line)
    if match is None:
        raise ValueError(f"{path}: first line does not give the acquisition frequency")
    return float(match.group(1))


def read_voisard_gyro(
    path: Path, prefixes: tuple[str, ...] = ("Gyr_",)
) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Time (s, from the packet counter), every gyro column the file has (``Gyr_X``...,
    rad/s; ``Gyr_Y`` is the sagittal axis; with ``prefixes`` ``("Acc_", "Gyr_")`` the
    accelerometer's too) and sample rate (Hz) of one foot file.
    ``CsvError`` (``no samples``, as for a CSV) for a file with its two header lines and
    nothing below them."""
    with path.open(encoding="utf-8") as handle:
        rate_hz = _voisard_rate_hz(path, handle.readline())
        header = handle.readline().split()
        counter, gyro = xsens_gyro_rows(
            path, handle, header, "its two header lines have no sample row below them",
            prefixes,
        )
    return (counter - counter[0]) / rate_hz, gyro, rate_hz


@dataclass(frozen=True)
class FootImu:
    """A foot sensor's six axes as recorded (its own frame, Xsens ``X, Y, Z``): what an
    offline reference (``controller.detect.footref``) needs, which must find the
    sensor's orientation on the foot itself."""

    t_s: np.ndarray
    acc_m_s2: np.ndarray  # (n, 3): Acc_X, Acc_Y, Acc_Z
    gyr_rad_s: np.ndarray  # (n, 3): Gyr_X, Gyr_Y, Gyr_Z
    rate_hz: float
    side: str  # "left" or "right"

    @classmethod
    def from_columns(
        cls, t_s: np.ndarray, columns: dict[str, np.ndarray], rate_hz: float, side: str
    ) -> FootImu:
        """From Xsens columns named ``Acc_X``... and ``Gyr_X``...."""
        def axes(prefix: str) -> np.ndarray:
            return np.column_stack([columns[f"{prefix}{a}"] for a in "XYZ"])

        return cls(t_s, axes("Acc_"), axes("Gyr_"), rate_hz, side)


def read_voisard_foot(path: Path, side: str) -> FootImu:
    """All six axes of one Voisard foot file (``read_voisard_gyro``'s time base)."""
    t_s, columns, rate_hz = read_voisard_gyro(path, ("Acc_", "Gyr_"))
    return FootImu.from_columns(t_s, columns, rate_hz, side)


def xsens_gyro_rows(
    path: Path, rows: Iterable[str], header: list[str], empty: str,
    prefixes: tuple[str, ...] = ("Gyr_",),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The packet counter and every gyro column (``Gyr_X``..., rad/s; with ``prefixes``
    ``("Acc_", "Gyr_")`` also the accelerometer's, m/s^2) of the
    tab-separated ``rows`` of an Xsens MT Manager export whose column names are
    ``header``. The counter is unwrapped (it is 16 bits: 65535 is followed by 0) and a
    repeated packet is read once. ``CsvError`` (``no samples``: ``empty`` says what
    the file has instead) when there is no row. Columns other than these are not read:
    an export may leave some empty (``SampleTimeFine`` of the Awinda exports)."""
    names = [name for name in header if name.startswith(prefixes)]
    columns = [header.index("PacketCounter"), *(header.index(name) for name in names)]
    with warnings.catch_warnings():  # numpy's "input contained no data": said below
        warnings.simplefilter("ignore", UserWarning)
        data = np.loadtxt(rows, delimiter="\t", usecols=columns, ndmin=2)
    if data.size == 0:
        raise CsvError(no_samples(path, empty))
    steps = np.diff(data[:, 0])
    steps[steps < -PACKET_COUNTER_WRAP / 2] += PACKET_COUNTER_WRAP
    counter = data[0, 0] + np.concatenate(([0.0], np.cumsum(steps)))
    keep = np.concatenate(([True], steps > 0))  # repeated packets
    return counter[keep], {name: data[keep, i + 1] for i, name in enumerate(names)}


def read_voisard_imu(
    path: Path, axis: str = "Gyr_Y"
) -> tuple[np.ndarray, np.ndarray, float]:
    """Time (s, from the packet counter), gyro (rad/s; ``Gyr_Y`` is the sagittal axis) and
    sample rate (Hz) of one foot file."""
    t_s, gyro, rate_hz = read_voisard_gyro(path)
    return t_s, _gyro_column(path, gyro, axis), rate_hz


def _gyro_column(path: Path, gyro: dict[str, np.ndarray], axis: str) -> np.ndarray:
    if axis not in gyro:
        raise ValueError(f"{path}: no column {axis!r}; gyro columns: {', '.join(gyro)}")
    return gyro[axis]


def voisard_gyro_axes(folder: Path) -> set[str]:
    """The gyro columns (``Gyr_X``...) every foot file in ``folder`` has."""
    axes: set[str] | None = None
    for path in folder.glob("*_?f.txt"):
        with path.open(encoding="utf-8") as handle:
            handle.readline()
            found = {name for name in handle.readline().split() if name.startswith("Gyr_")}
        axes = found if axes is None else axes & found
    return axes or set()


def load_voisard(folder: Path, axis: str = "Gyr_Y") -> list[Recording]:
    """Every foot of every ``<s>-<trial>.json`` in ``folder`` that has its IMU file, with
    the gyro ``axis`` (the sagittal ``Gyr_Y``; another, to test the mounting check)."""
    recordings = []
    metas = sorted(folder.glob("*.json"), key=lambda p: [int(x) for x in p.stem.split("-")])
    with progress(len(metas), "reading Voisard trials", "trial") as shown:
        for meta_path in metas:
            recordings += _voisard_trial(folder, meta_path, axis)
            shown.advance()
    return recordings


def _voisard_trial(folder: Path, meta_path: Path, axis: str) -> list[Recording]:
    """The recordings (a foot each) of the Voisard trial described by ``meta_path``."""
    recordings = []
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    for suffix, key, side in _VOISARD_SIDES:
        imu = folder / f"{meta_path.stem}_{suffix}.txt"
        if not imu.is_file():
            continue
        t_s, axes, rate_hz = read_voisard_gyro(imu)
        gyro = _gyro_column(imu, axes, axis)
        swings = np.array(meta[key], dtype=float).reshape(-1, 2) / rate_hz
        reference = []
        for toe_off, heel_strike in swings:
            reference.append((float(toe_off), Event.TOE_OFF))
            reference.append((float(heel_strike), Event.HEEL_STRIKE))
        start, end = (i / rate_hz for i in meta["TrialBoundaries"])
        turn = (meta["UTurnBoundaries"][0] / rate_hz, meta["UTurnBoundaries"][1] / rate_hz)
        recordings.append(
            Recording(
                f"voisard {meta_path.stem} {side}",
                f"voisard {meta_path.stem.split('-')[0]}",
                t_s,
                gyro,
                None,
                reference,
                ScoringWindow(start, end),
                ScoringWindow(start, end, (turn,)),
                ScoringWindow(
                    start, end, (turn, *end_swings(swings, [(start, turn[0]), (turn[1], end)]))
                ),
                axes,
                "Gyr_Y",
                imu,
            )
        )
    return recordings


def end_swings(
    swings: np.ndarray, walks: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The first and last swing (toe off, heel strike) inside each of the ``walks`` (start,
    end), each widened by the matching tolerance so that their detections are left out
    with them."""
    margin = 0.1
    stretches = []
    for lo, hi in walks:
        inside = swings[(swings[:, 0] >= lo) & (swings[:, 1] <= hi)]
        for toe_off, heel_strike in inside[[0, -1]] if len(inside) else ():
            stretches.append((float(toe_off) - margin, float(heel_strike) + margin))
    return stretches


def _drop_short_runs(flag: np.ndarray, min_false: int, min_true: int) -> np.ndarray:
    """``flag`` with every run of False shorter than ``min_false`` samples, then every run
    of True shorter than ``min_true``, merged into its neighbours."""
    flag = flag.copy()
    for value, min_samples in ((False, min_false), (True, min_true)):
        edges = np.flatnonzero(np.diff(flag.astype(np.int8))) + 1
        bounds = np.concatenate(([0], edges, [flag.size]))
        for a, b in itertools.pairwise(bounds):
            if flag[a] == value and b - a < min_samples and a > 0 and b < flag.size:
                flag[a:b] = not value
    return flag


def contact_events(
    t_s: np.ndarray, contact: np.ndarray, min_contact_s: float, min_gap_s: float
) -> list[tuple[float, Event]]:
    """Heel strike at the first sample of each contact, toe off at the first sample after
    it, once gaps shorter than ``min_gap_s`` and then contacts shorter than
    ``min_contact_s`` are merged into their neighbours."""
    period_s = float(np.median(np.diff(t_s)))
    contact = _drop_short_runs(
        contact, round(min_gap_s / period_s), round(min_contact_s / period_s)
    )
    change = np.flatnonzero(np.diff(contact.astype(np.int8))) + 1
    return [
        (float(t_s[i]), Event.HEEL_STRIKE if contact[i] else Event.TOE_OFF) for i in change
    ]


def force_reference(t_s: np.ndarray, total_n: np.ndarray) -> list[tuple[float, Event]]:
    """Heel strike and toe off from a foot's total force (see the module docstring)."""
    return contact_events(
        t_s, total_n > FORCE_REFERENCE_N, FORCE_REFERENCE_MIN_RUN_S, FORCE_REFERENCE_MIN_RUN_S
    )


def load_gaitpdb(folder: Path) -> list[Recording]:
    """Both feet of every gaitpdb walk (``*_NN.txt``) in ``folder``; a walker is a
    subject (``GaPt03``), whose walks (``_01`` usual, ``_02``..., ``_10`` dual task) are
    held out together."""
    recordings = []
    for path in sorted(folder.glob(GAITPDB_WALKS)):
        data = np.loadtxt(path, ndmin=2)
        t_s = data[:, 0]
        for side, heel_col, total_col in (("left", 1, 17), ("right", 9, 18)):
            reference = force_reference(t_s, data[:, total_col])
            whole = ScoringWindow(float(t_s[0]), float(t_s[-1]))
            recordings.append(
                Recording(
                    f"gaitpdb {path.stem} {side}", f"gaitpdb {path.stem.split('_')[0]}",
                    t_s, None,
                    data[:, heel_col],
                    reference, whole, whole, whole,
                )
            )
    return recordings
