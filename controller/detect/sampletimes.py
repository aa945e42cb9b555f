"""When each sample of a recording was taken, as ``fes detect`` dates it.

Either at a fixed rate (sample k at k / ``rate_hz``) or by the recording's time column,
read in s, ms or us: every sample must have its time, and the times must increase from
row to row (``CsvError`` naming the line, as an editor numbers it). Two notes point
out a clock that does not fit: a time column that, read in its unit, dates the samples
at a rate no walking recording is taken at while another unit would date them at a
usual one (``unit_note``: a column in ms read as seconds steps 10 s apart at 100 Hz),
and a fixed rate that disagrees with the file's own ``time_s`` column (``rate_note``).
``fes run --sensors replay:PATH`` checks a recording's times by the same code
(``controller.trial.recording``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.csvcolumns import line_of_row
from controller.detect.csvfiles import CsvError
from controller.detect.notes import Note
from controller.detect.period import median_step_s

#: Seconds per unit of a time column.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
#: Sample rates a walking recording is taken at, at least and at most (Hz): a time
#: column that, read in its unit, dates the samples outside them is in another unit.
PLAUSIBLE_RATE_HZ = (4.0, 20_000.0)
#: A fixed rate this far (relative) from the file's own time steps is pointed out.
RATE_AGREEMENT = 0.05


def row_line(path: Path) -> Callable[[int], str]:
    """Names sample k (0-based) of the CSV recording at ``path``, read with a time
    column (empty lines are no samples), by the line its row starts on as an editor
    numbers it: ``line 7`` (the header is line 1; empty lines count)."""
    return lambda k: f"line {line_of_row(path, k)}"


@dataclass(frozen=True)
class SampleClock:
    """How a recording's samples are dated: at ``rate_hz`` if given (its time column,
    if any, is then only compared with it), else by the time ``column`` in ``unit``."""

    rate_hz: float | None = None
    column: str = "time_s"
    unit: str = "s"

    def in_seconds(self, values: np.ndarray) -> np.ndarray:
        """The time column's ``values`` in seconds."""
        factor = TIME_UNITS[self.unit]
        return values if factor == 1.0 else values * factor

    def times(self, path: Path, columns: dict[str, np.ndarray], n: int, *,
              where: Callable[[int], str] | None = None,
              advice: str | None = None) -> np.ndarray:
        """The time of each of the ``n`` samples in seconds; ``CsvError`` (naming
        ``path``) for a time column with a missing time or one that does not increase.
        ``where(k)`` names sample ``k`` (0-based) for the user; by default the line of
        the CSV file its row starts on (``row_line``). ``advice`` ends the
        message on times that do not increase (by default: ``--rate-hz``)."""
        if self.rate_hz is not None:
            return np.arange(n) / self.rate_hz
        name = self.column
        unit = {"s": "seconds"}.get(self.unit, self.unit)
        where = where or row_line(path)
        t_s = self.in_seconds(columns[name])
        if not np.all(np.isfinite(t_s)):
            bad = np.flatnonzero(~np.isfinite(t_s))
            raise CsvError(
                f"{path}: column {name!r} has empty or non-finite values in {bad.size} "
                f"row(s), the first on {where(int(bad[0]))}: every sample needs its time "
                "(leave its other cells empty for a missing sample)"
            )
        if n > 1 and not np.all(np.diff(t_s) > 0.0):
            row = int(np.flatnonzero(np.diff(t_s) <= 0.0)[0]) + 1  # 0-based, of the later one
            raw = columns[name]
            advice = advice or (
                "if the samples are evenly spaced and only their time stamps are rounded, "
                f"--rate-hz N reads them at that rate and ignores {name}")
            raise CsvError(
                f"{path}: column {name!r} must increase from row to row: {where(row)} has "
                f"{raw[row]:.10g} after {raw[row - 1]:.10g} on {where(row - 1)} (time in "
                f"{unit}; {advice})"
            )
        return t_s

    def unit_note(self, t_s: np.ndarray,
                  fix: Callable[[str], str] | None = None) -> Note | None:
        """A note when the time column, read in its unit, dates the samples ``t_s`` at a
        rate outside ``PLAUSIBLE_RATE_HZ`` and another unit would date them at a usual
        one (20 Hz to 5 kHz); None at a fixed rate. Its step is the median one (of an
        even count, the mean of the two middle ones: a 400 Hz recording stamped in whole
        ms steps 2, 3, 2, 3 ms, 2.5 ms). It ends with ``fix(unit)``, what to do to read
        the column in that unit (by default the option of ``fes detect``)."""
        if self.rate_hz is not None or t_s.size < 2:
            return None
        step_s = median_step_s(np.diff(t_s))
        low, high = PLAUSIBLE_RATE_HZ
        if step_s <= 0.0 or low <= 1.0 / step_s <= high:
            return None
        unit = self.unit
        raw_step = step_s / TIME_UNITS[unit]
        for other, factor in TIME_UNITS.items():
            rate_hz = 1.0 / (raw_step * factor)
            if other != unit and 20.0 <= rate_hz <= 5000.0:
                option = (fix(other) if fix is not None else "Drop --time-unit." if
                          other == "s" else f"Pass --time-unit {other}.")
                return Note("note", (
                    f"{self.column} steps {raw_step:.4g} {unit} from sample to sample "
                    f"(median), {1.0 / step_s:.4g} Hz read as {unit}: is it in {other} "
                    f"({rate_hz:.4g} Hz)? {option}"
                ))
        return None

    def rate_note(self, time_s: np.ndarray | None) -> Note | None:
        """A note when the fixed rate disagrees by more than ``RATE_AGREEMENT`` with the
        file's own ``time_s`` column (in seconds; ``time_s`` None: the file has none):
        the events would be dated at the wrong rate."""
        if self.rate_hz is None or time_s is None:
            return None
        steps = np.diff(time_s[np.isfinite(time_s)])
        steps = steps[steps > 0.0]
        if steps.size == 0:
            return None
        period_s = median_step_s(steps)
        if abs(period_s * self.rate_hz - 1.0) <= RATE_AGREEMENT:
            return None
        return Note("note", (
            f"--rate-hz {self.rate_hz:g} dates the samples {1000.0 / self.rate_hz:.4g} ms "
            f"apart, but the file's time_s column has them {1000.0 * period_s:.4g} ms apart "
            f"(median; {1.0 / period_s:.4g} Hz); time_s was ignored. Drop --rate-hz to use "
            "it, or check the rate."
        ))
