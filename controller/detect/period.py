"""The sample period of a recording: the median of its time steps.

``np.median`` gives the same number, but its first call in a process imports
``numpy.ma`` (masked arrays, to test whether its argument is one): about 8 ms of CPU
in a ``fes detect`` that takes under half a second end to end, for an array that never
is one (``tests/test_startup.py`` checks that ``fes detect`` leaves ``numpy.ma``
unloaded). This computes it as ``np.median`` does, to the bit: ``np.partition`` around
the middle, and for an even count the two middle steps summed and halved; NaN if any
step is NaN.
"""

from __future__ import annotations

import math

import numpy as np


def median_period_s(t_s: np.ndarray) -> float:
    """The median of ``np.diff(t_s)`` (NaN for fewer than two samples or a NaN step)."""
    return median_step_s(np.diff(np.asarray(t_s, dtype=np.float64)))


def median_step_s(steps: np.ndarray) -> float:
    """The median of time ``steps`` as ``np.median`` gives it (NaN for none or a NaN
    step): for steps already picked out of a recording's (``fes detect`` compares the
    positive ones of a ``time_s`` column with ``--rate-hz``)."""
    n = steps.size
    if n == 0 or np.isnan(steps).any():
        return math.nan
    half = n // 2
    if n % 2 == 1:
        return float(np.partition(steps, half)[half])
    middle = np.partition(steps, (half - 1, half))
    return float((middle[half - 1] + middle[half]) / 2.0)
