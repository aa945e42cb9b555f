"""A recorded walk played back in real time as the loop's ``SensorSource``.

openEMSstim has no sensors, so a bench trial against it needs a sensor source: this one
plays a recording (read by the caller, e.g. from a ``fes detect`` CSV) at the pace it
was recorded, as a worn sensor would deliver it. Samples sit on the recording's fixed
grid ``k * period``; a grid point the recording has no sample for (a packet lost on the
radio link of an IMU) is played as a dropout (NaN gyroscope and heel switch), as it
would arrive live; an empty cell is that sensor's sample lost (NaN), never a reading
(an empty heel switch cell is not "no contact").
``read`` blocks until the sample's time has come (the first ``read`` starts the clock),
so the loop is paced by the source, exactly as by a board's stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from controller.ports import Sample


class OffGrid(ValueError):
    """A recording's sample ``index`` (0-based) whose time lies ``periods`` periods off
    the grid (more than a fifth): the caller, which knows the file, names its line."""

    def __init__(self, index: int, t_s: float, periods: float, rate_hz: float) -> None:
        super().__init__(f"sample {index} at {t_s:.6f} s lies {periods:.2f} periods off the "
                         f"{rate_hz:g} Hz grid")
        self.index, self.t_s, self.periods, self.rate_hz = index, t_s, periods, rate_hz


class ReplaySource:
    """Plays ``gyro_rad_s`` / ``heel_switch`` / ``heel_force_n`` recorded at ``t_s``.

    ``t_s`` increases; each sample is put on the grid point nearest to it (a recording
    whose times stray from its grid by more than a fifth of a period is refused:
    ``OffGrid``). An
    absent column is ``None``: the gyroscope reads NaN, the heel switch 0 (a unit
    without a switch, as a board without one reports no contact), the force NaN. A NaN
    in a column (an empty cell) plays as NaN: a lost sample of that sensor.
    """

    def __init__(
        self,
        t_s: np.ndarray,
        period_s: float,
        gyro_rad_s: np.ndarray | None = None,
        heel_switch: np.ndarray | None = None,
        heel_force_n: np.ndarray | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        t_s = np.asarray(t_s, dtype=float)
        if not (math.isfinite(period_s) and period_s > 0.0) or t_s.size == 0:
            raise ValueError("a recording needs samples and a positive period")
        if not (np.all(np.isfinite(t_s)) and np.all(np.diff(t_s) > 0.0)):
            raise ValueError("the recording's times must be finite and increasing")
        grid = np.rint((t_s - t_s[0]) / period_s).astype(np.int64)
        stray = np.abs((t_s - t_s[0]) / period_s - grid)
        if stray.max() > 0.2:
            k = int(np.argmax(stray))
            raise OffGrid(k, float(t_s[k]), float(stray[k]), 1.0 / period_s)
        n = int(grid[-1]) + 1
        self._gyro = np.full(n, np.nan)
        # Grid points without a sample are lost whole; without a column, no contact.
        self._switch = np.full(n, np.nan) if heel_switch is not None else np.zeros(n)
        self._force = np.full(n, np.nan)
        if gyro_rad_s is not None:
            self._gyro[grid] = gyro_rad_s
        if heel_switch is not None:
            self._switch[grid] = heel_switch
        if heel_force_n is not None:
            self._force[grid] = heel_force_n
        self._period_s = period_s
        self._clock = clock
        self._sleep = sleep
        self._next = 0
        self._start_s: float | None = None
        self.dropouts = int(n - np.unique(grid).size)

    @property
    def sample_period_s(self) -> float:
        return self._period_s

    def __len__(self) -> int:
        return self._gyro.size

    @property
    def started_monotonic_s(self) -> float | None:
        """``time.monotonic()`` at which sample 0 was due (None before the first read):
        sample k was due ``k * sample_period_s`` later."""
        return self._start_s

    def read(self) -> Sample | None:
        """The next sample, once its time has come; None after the last one."""
        k = self._next
        if k >= self._gyro.size:
            return None
        if self._start_s is None:
            self._start_s = self._clock()
        due = self._start_s + k * self._period_s
        while (left := due - self._clock()) > 0.0:
            self._sleep(left)
        self._next = k + 1
        return Sample(k * self._period_s, float(self._gyro[k]), float(self._switch[k]),
                      float(self._force[k]))

    def close(self) -> None:
        """Nothing to release; later reads return None."""
        self._next = self._gyro.size
