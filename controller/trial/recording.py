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

A CSV is read by ``fes detect``'s own code and rules (``controller.detect.samplerows``
and ``sampletimes``): empty lines are no rows, the empty rows that end the file are
dropped, a last line without a line end is left out with a note (``Recording.notes``),
a file without a sample row is refused, and a time that is missing or does not increase
is refused naming its line as an editor numbers it. Where a replay must differ, it
refuses what ``fes detect`` would only note, since a replay cannot be given another
reading: a ``time_s`` column that dates the samples at no walking rate (``fes detect``
notes the unit that fits and reads it with ``--time-unit``; a replay has no such option
and would run at that rate), a single sample (no rate to play it at), and a time off
the grid of the median step (a replay plays sample k at k periods; ``fes detect``
dates each sample by its own time).

The sample rate is the recording's own (the median time step); ``hw.replay`` plays it
in real time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.detect.csvfiles import CsvError, require_regular_file
from controller.detect.datasets import read_voisard_imu
from controller.detect.notes import Note
from controller.detect.period import median_period_s
from controller.detect.samplerows import read_samples
from controller.detect.sampletimes import TIME_UNITS, SampleClock, row_line
from hw.replay import OffGrid, ReplaySource

#: Columns of a recording CSV that become sample fields.
SIGNALS = ("gyro_rad_s", "heel_switch", "heel_force_n")
_GAITPDB_COLUMNS = 19
#: What a missing time column holds, as ``fes detect`` says it.
_TIME_MEANING = "the time of each sample in seconds, at which the replay plays it"
#: What to do about times that do not increase (``fes detect`` offers --rate-hz).
_NOT_INCREASING = ("a replay plays each sample at its time on the grid of the median "
                   "step: correct the time or delete the row")


@dataclass(frozen=True)
class Recording:
    """One recorded walk: times and whichever signals it has, and the notes on how it
    was read (a last row cut off), for the command to print."""

    path: Path
    t_s: np.ndarray
    gyro_rad_s: np.ndarray | None
    heel_switch: np.ndarray | None
    heel_force_n: np.ndarray | None
    notes: tuple[Note, ...] = ()

    @property
    def rate_hz(self) -> float:
        """The recording's sample rate: one over its median time step, to a micro-hertz
        (so that 0.01 s steps in decimal text are 100 Hz, not 99.99999999999991)."""
        return round(1.0 / median_period_s(self.t_s), 6)

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
        except CsvError:
            raise  # no samples: said as for a CSV
        except (ValueError, IndexError) as err:
            raise CsvError(f"{path}: not a Voisard IMU file: {err}") from None
        return _checked(Recording(path, t_s, gyro, None, None), lambda k: (
            f"packet {k + 1} (counted from 1, repeated packets left out)"))
    fields = first.split()
    if len(fields) == _GAITPDB_COLUMNS and _all_numbers(fields):
        data = np.loadtxt(path, ndmin=2)
        return _checked(Recording(path, data[:, 0], None, None, data[:, 1]),
                        lambda k: f"row {k + 1} of numbers")
    header = [name.strip() for name in first.split(",")]
    present = [name for name in SIGNALS if name in header]
    if not present:
        raise CsvError(
            f"{path}: no sensor column; a recording needs time_s and at least one of "
            f"{', '.join(SIGNALS)} (the file has: {', '.join(header)})"
        )
    columns, cut = read_samples(path, ["time_s", *present], fixed_rate=False,
                                meanings={"time_s": _TIME_MEANING})
    return _checked(Recording(path, columns["time_s"], columns.get("gyro_rad_s"),
                              columns.get("heel_switch"), columns.get("heel_force_n"),
                              (cut,) if cut is not None else ()), row_line(path))


def _all_numbers(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _checked(recording: Recording, where: Callable[[int], str]) -> Recording:
    """``recording`` if it can be replayed, its times checked as ``fes detect`` checks
    them (``where(k)`` names sample k in the file); else ``CsvError``."""
    path, t_s = recording.path, recording.t_s
    clock = SampleClock()
    clock.times(path, {"time_s": t_s}, t_s.size, where=where, advice=_NOT_INCREASING)
    unit = clock.unit_note(t_s, lambda other: (
        f"A replay reads time_s in seconds: write the times in seconds (x "
        f"{TIME_UNITS[other]:g} from {other})."))
    if unit is not None:
        raise CsvError(f"{path}: {unit.text}")
    if t_s.size < 2:
        raise CsvError(f"{path}: one sample ({where(0)}): a replay needs at least two, "
                       "their time step giving the rate it plays them at")
    try:
        recording.source()
    except OffGrid as err:
        raise CsvError(
            f"{path}: {where(err.index)}: its time {err.t_s:.6f} s lies {err.periods:.2f} "
            f"periods off the {err.rate_hz:g} Hz grid of the median step (a replay plays "
            "each sample on that grid): correct the time or delete the row") from None
    except ValueError as err:
        raise CsvError(f"{path}: {err}") from None
    return recording
