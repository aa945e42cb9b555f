"""Does a trial's heel force sensor load? ``fes detect``'s weak-heel warning for a trial.

``controller.detect.heelcolumn`` warns when a recording's heel force barely loads: its
99th percentile under ``WEAK_HEEL_FACTOR`` times the contact force (a flat or forefoot
landing, or a sensor that is not under the heel; 10 of the 612 gaitpdb feet, on which
a fixed 20 N contact force left 28.8 % of the swings without a heel off before toe off
and the detector ``unknown`` 26.6 % of the time; the shipped level that follows the heel
down to ``contact_floor_n`` 5.0 % and 4.0 %). A trial cannot wait for the whole
recording: this check takes the same figure over the first ``WINDOW_S`` seconds of readings (15-20
strides, walking or standing) and then keeps its verdict, so the status line and the
summary say it once the first strides show it.

It counts each reading into 1 N bins below the limit and one bin at or above it: one
add per sample, no growing buffer and no sort in the loop's thread, and the 99th
percentile to the newton when it is under the limit.

Stimulation is not withheld on a weak heel (docs/detection.md): the detector still finds
most heel strikes and heel offs on such a foot, and where the heel stays off it reports
``unknown``, which stimulates nothing; withholding would leave every swing without
stimulation instead of some.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from controller.detect.heel import HeelDetectorConfig, adaptive_floor_n
from controller.detect.heelcolumn import WEAK_HEEL_FACTOR, weak_heel_text

if TYPE_CHECKING:
    from controller.detect.config import DetectorConfig

#: Seconds of heel readings the check decides on.
WINDOW_S = 20.0
#: Verdicts, as the live status publishes them.
CHECKING, LOADS, WEAK = 0, 1, 2
VERDICTS = ("checking", "loads", "weak")
#: Where a trial's weak heel can be fixed: the contact force of its configuration.
TRIAL_REMEDY = "lower detector.heel.force.contact_force_n"


class WeakHeelCheck:
    """The weak-heel check over the first ``window_s`` seconds of a heel force sensor
    read at ``sample_rate_hz`` with contact at ``contact_force_n``, or at a level that
    follows the heel down to ``floor_n`` (None: fixed)."""

    def __init__(self, contact_force_n: float, sample_rate_hz: float,
                 window_s: float = WINDOW_S, floor_n: float | None = None) -> None:
        self.contact_force_n = contact_force_n
        self.floor_n = floor_n
        self.window_s = window_s
        self.limit_n = WEAK_HEEL_FACTOR * contact_force_n
        self._bins = np.zeros(math.ceil(self.limit_n) + 1, dtype=np.int64)
        self._needed = max(1, round(window_s * sample_rate_hz))
        self._count = 0
        self.verdict = CHECKING
        #: The force (N, to the newton above) under which 99 % of the window's readings
        #: lie, when under the limit; None otherwise and before the verdict. Fixed with
        #: the verdict: the live loop reads it every sample.
        self.p99_n: float | None = None

    def add(self, force_n: float) -> None:
        """Count one reading (a lost one, NaN, is not a reading); decide at the end of
        the window."""
        if self.verdict != CHECKING or not math.isfinite(force_n):
            return
        top = self._bins.size - 1
        self._bins[top if force_n >= self.limit_n else min(top - 1, int(max(force_n, 0.0)))] += 1
        self._count += 1
        if self._count >= self._needed:
            self.p99_n = self._p99_n()
            self.verdict = WEAK if self.p99_n is not None else LOADS

    def _p99_n(self) -> float | None:
        """The force (N, to the newton above) under which 99 % of the readings so far
        lie, when under the limit; None when it is not."""
        reached = np.flatnonzero(np.cumsum(self._bins) >= 0.99 * self._count)[0]
        return None if reached == self._bins.size - 1 else min(float(reached + 1), self.limit_n)

    def block(self) -> dict[str, Any]:
        """The check for a trial's summary: verdict, the figure, and what to do."""
        p99 = self.p99_n
        return {
            "verdict": VERDICTS[self.verdict],
            "window_s": self.window_s,
            "p99_n": p99 if self.verdict == WEAK else None,
            "message": weak_heel_text("the heel force", p99, self.contact_force_n,
                                      self.floor_n, TRIAL_REMEDY)
            if self.verdict == WEAK and p99 is not None else None,
        }


def for_config(config: HeelDetectorConfig, sample_rate_hz: float) -> WeakHeelCheck:
    """The check of a heel force sensor read with ``config``."""
    return WeakHeelCheck(config.contact_force_n, sample_rate_hz,
                         floor_n=adaptive_floor_n(config))


def for_detector(config: DetectorConfig, sample_rate_hz: float) -> WeakHeelCheck | None:
    """The check of a trial whose detector reads a heel force sensor (heel or fused);
    None when it reads none."""
    if config.sensor == "gyro" or config.heel_input != "force":
        return None
    return for_config(config.heel_config(), sample_rate_hz)


def fed(check: WeakHeelCheck, heel_force_n: Iterable[float]) -> WeakHeelCheck:
    """``check`` fed recorded heel force readings (a finished trial's column, a
    recording's) until it decides or they end."""
    for value in heel_force_n:
        if check.verdict != CHECKING:
            break
        check.add(float(value))
    return check
