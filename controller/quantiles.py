"""``np.median`` and ``np.percentile`` (its default "linear" method) of a short array, to
the bit, from one sort.

A trial's summary takes the median and a percentile of a dozen short arrays (timing
errors of a few hundred events, the clearance of each swing). Each numpy call costs 40-100
us of dispatch, checks and partitioning whatever the size: 1.5 ms of every simulated
trial, more than scoring its events. Here the array is sorted once and the figures are
computed from the sorted values with numpy's own arithmetic (IEEE doubles in Python
give the same results as numpy's float64 scalars):

* the median: the middle value, or the two middle values summed and halved (a sum
  that starts from 0.0, as numpy's mean does);
* percentile ``q``: the virtual index ``(n - 1) * (q / 100)``, its floor ``i`` and the
  fraction ``g`` above it, then ``a + (b - a) * g`` between the sorted values ``a`` and
  ``b`` at ``i`` and ``i + 1``, or ``b - (b - a) * (1 - g)`` when ``g >= 0.5``; past the
  last index ``a`` and ``b`` are the last value and ``i`` is -1, as in numpy.

Arrays with NaN or infinite values or a -0.0, and long ones (where numpy's partition beats a
sort), go to numpy itself. ``tests/test_quantiles.py`` compares both over random and
tied arrays of every short size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

#: Longer arrays go to numpy (a partition around a few indexes beats a whole sort).
SORTED_UP_TO = 4096


def median_and_percentiles(values: np.ndarray, percents: float | Sequence[float]) -> list[float]:
    """``[np.median(values), *np.percentile(values, percents)]`` as floats (values not
    empty; ``percents`` one number, several or none, as the caller would pass them to numpy:
    on the arrays numpy is left with, it is called that way)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    if n == 0:
        raise ValueError("no values")
    if (n > SORTED_UP_TO or not math.isfinite(float(np.add.reduce(values)))
            or np.signbit(values[values == 0.0]).any()):
        # A NaN or an infinity makes the sum non-finite (and so may a huge finite sum:
        # numpy then decides, as it always did). -0.0 and 0.0 are equal to a sort and to
        # numpy's partition, which may leave either where the other puts the other.
        several = np.percentile(values, percents if isinstance(percents, float | int)
                                else list(percents))
        return [float(np.median(values)), *(float(p) for p in np.atleast_1d(several))]
    if isinstance(percents, float | int):
        percents = (percents,)
    ordered: list[float] = np.sort(values).tolist()
    half = n // 2
    # numpy's mean of the middle value(s) adds them to its sum's start, 0.0: a middle
    # -0.0 gives 0.0.
    median = 0.0 + ordered[half] if n % 2 else (0.0 + ordered[half - 1] + ordered[half]) / 2.0
    return [median, *(_percentile(ordered, q) for q in percents)]


def _percentile(ordered: list[float], q: float) -> float:
    """numpy's "linear" percentile ``q`` of the sorted finite ``ordered``."""
    n = len(ordered)
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:  # numpy takes the last value twice, 1 + virtual above index -1
        below, a, b = -1, ordered[-1], ordered[-1]
    elif virtual < 0.0:
        below, a, b = 0, ordered[0], ordered[0]
    else:
        below = math.floor(virtual)
        a, b = ordered[below], ordered[below + 1]
    gamma = virtual - below
    step = b - a
    if gamma >= 0.5:
        return b - step * (1 - gamma)
    return a + step * gamma


class ValueCounts:
    """How often each integer value came (a loop's lateness or latency in nanoseconds),
    for ``median_and_percentiles`` of every value added without keeping them: memory
    for the distinct values (at most their spread in ns), not for the samples.

    Values are added in blocks (``add``); they are merged into the sorted distinct values
    and their counts once ``MERGE_VALUES`` are waiting (or when asked for figures)."""

    MERGE_VALUES = 2**16

    def __init__(self) -> None:
        self.values = np.zeros(0, dtype=np.int64)  # distinct, sorted
        self.counts = np.zeros(0, dtype=np.int64)
        self._waiting: list[np.ndarray] = []
        self._waiting_size = 0

    def add(self, values: np.ndarray) -> None:
        """Count ``values`` (integers; copied)."""
        if values.size:
            self._waiting.append(np.array(values, dtype=np.int64))
            self._waiting_size += values.size
            if self._waiting_size >= self.MERGE_VALUES:
                self._merge()

    def _merge(self) -> None:
        if not self._waiting:
            return
        new, counts = np.unique(np.concatenate(self._waiting), return_counts=True)
        self._waiting, self._waiting_size = [], 0
        at = np.searchsorted(self.values, new)
        known = at < self.values.size
        known[known] = self.values[at[known]] == new[known]
        np.add.at(self.counts, at[known], counts[known])
        fresh = ~known
        self.values = np.insert(self.values, at[fresh], new[fresh])
        self.counts = np.insert(self.counts, at[fresh], counts[fresh])

    @property
    def size(self) -> int:
        """Values counted."""
        self._merge()
        return int(self.counts.sum())

    def max(self) -> int:
        """The largest value counted (values counted: not empty)."""
        self._merge()
        return int(self.values[-1])

    def median_and_percentiles(self, percents: Sequence[float],
                               to_float: Callable[[np.ndarray], np.ndarray]) -> list[float]:
        """``median_and_percentiles(to_float(v))`` over every value ``v`` counted (not
        none), to the bit, from the counts: ``to_float`` maps values to the floats the
        caller would have kept (non-decreasing, finite, no -0.0: a sorted array of
        them is the sorted floats, and numpy's figures of finite values without -0.0
        are those of the formula of ``_percentile``, whatever the size:
        ``tests/test_quantiles.py``)."""
        self._merge()
        if not self.counts.size:
            raise ValueError("no values")
        floats = to_float(self.values)
        ends = np.cumsum(self.counts)  # rank r is value i for the first end above r
        n = int(ends[-1])

        def at(rank: int) -> float:
            return float(floats[int(np.searchsorted(ends, rank, side="right"))])

        half = n // 2
        median = 0.0 + at(half) if n % 2 else (0.0 + at(half - 1) + at(half)) / 2.0
        return [median, *(_percentile_of(n, at, q) for q in percents)]


def _percentile_of(n: int, at: Callable[[int], float], q: float) -> float:
    """``_percentile`` of ``n`` sorted values, value of rank r ``at(r)``."""
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        below, a, b = -1, at(n - 1), at(n - 1)
    elif virtual < 0.0:
        below, a, b = 0, at(0), at(0)
    else:
        below = math.floor(virtual)
        a, b = at(below), at(below + 1)
    gamma = virtual - below
    step = b - a
    if gamma >= 0.5:
        return b - step * (1 - gamma)
    return a + step * gamma
