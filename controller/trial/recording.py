"""A recorded walk for ``fes run --sensors replay:PATH``: read it, then play it.

Three kinds of file are read, recognised by their content:

- a CSV with a header, as ``fes detect`` reads it (a ``fes sim`` ``samples.csv`` is
  one): ``time_s`` and any of ``gyro_rad_s`` (sagittal, swing positive),
  ``heel_switch`` (0/1), ``heel_force_n``; an empty cell is a missing sample;
- a Voisard et al. 2023 foot IMU file (``<s>-<trial>_lf.txt``: first line
  ``Acquisition frequency: 100 Hz``), its sagittal ``Gyr_Y`` as the gyroscope, time from
  its packet counter (``controller.detect.datasets``);
- a PhysioNet gaitpdb file (19 numbers a row, no header: time, 8 left then 8 right
  insole forces, two totals): the left heel sensor ``L1`` as ``heel_force_n``.

The sample rate is the recording's own (the median time step); ``hw.replay`` plays it
in real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.detect.csvfiles import CsvError, read_columns, require_regular_file
from controller.detect.datasets import read_voisard_imu
from hw.replay import ReplaySource

#: Columns of a recording CSV that become sample fields.
SIGNALS = ("gyro_rad_s", "heel_switch", "heel_force_n")
_GAITPDB_COLUMNS = 19


@dataclass(frozen=True)
class Recording:
    """One recorded walk: times and whichever signals it has."""

    path: Path
    t_s: np.ndarray
    gyro_rad_s: np.ndarray | None
    heel_switch: np.ndarray | None
    heel_force_n: np.ndarray | None

    @property
    def rate_hz(self) -> float:
        """The recording's sample rate: one over its median time step, to a micro-hertz
        (so that 0.01 s steps in decimal text are 100 Hz, not 99.99999999999991)."""
        return round(1.0 / float(np.median(np.diff(self.t_s))), 6)

    @property
    def period_s(self) -> float:
        """The sample period of ``rate_hz``."""
        return 1.0 / self.rate_hz

    @property
    def duration_s(self) -> float:
        """From the first sample to one period past the last."""
        return float(self.t_s[-1] - self.t_s[0]) + self.period_s

    def source(self) -> ReplaySource:
        """A source that plays it in real time (``ValueError`` for times off its grid)."""
        return ReplaySource(self.t_s, self.period_s, self.gyro_rad_s, self.heel_switch,
                            self.heel_force_n)


def load_recording(path: Path) -> Recording:
    """Read ``path`` (any of the module's kinds); ``CsvError`` naming the file and what
    is wrong with it."""
    require_regular_file(path)
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise CsvError(f"{path}: cannot read: {err}") from None
    if first.startswith("Acquisition frequency"):
        try:
            t_s, gyro, _ = read_voisard_imu(path)
        except (ValueError, IndexError) as err:
            raise CsvError(f"{path}: not a Voisard IMU file: {err}") from None
        return _checked(Recording(path, t_s, gyro, None, None))
    fields = first.split()
    if len(fields) == _GAITPDB_COLUMNS and _all_numbers(fields):
        data = np.loadtxt(path, ndmin=2)
        return _checked(Recording(path, data[:, 0], None, None, data[:, 1]))
    header = [name.strip() for name in first.split(",")]
    present = [name for name in SIGNALS if name in header]
    if not present:
        raise CsvError(
            f"{path}: no sensor column; a recording needs time_s and at least one of "
            f"{', '.join(SIGNALS)} (the file has: {', '.join(header)})"
        )
    columns = read_columns(path, ["time_s", *present])
    return _checked(Recording(path, columns["time_s"], columns.get("gyro_rad_s"),
                              columns.get("heel_switch"), columns.get("heel_force_n")))


def _all_numbers(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _checked(recording: Recording) -> Recording:
    t_s = recording.t_s
    if t_s.size < 2 or not np.all(np.isfinite(t_s)) or not np.all(np.diff(t_s) > 0.0):
        raise CsvError(f"{recording.path}: the times must be finite and increasing, "
                       "with at least two samples")
    try:
        recording.source()
    except ValueError as err:
        raise CsvError(f"{recording.path}: {err}") from None
    return recording
