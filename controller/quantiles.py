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

``SpilledCounts`` gives the same figures of integers that come in blocks and are not
kept: a long live trial's lateness and latency in nanoseconds, which its log writer
counts for the summary. Exact counts of every distinct value (as it did until 7 Dec
2026) grew with the trial and with how noisy the machine was (0.67 MB after 484 s of
``fes run``, 16 bytes per new nanosecond value); the summary prints them to the
nanosecond (``summary.json``: microseconds to 3 decimals), the resolution of the values
themselves, so no coarser count gives its figures. Counts per bucket in memory and the
values in a spill file on disk, read back for the few ranks the figures are made of,
do: memory bounded by ``MEMORY_BOUND_BYTES`` whatever the trial, 8 bytes a value on
disk until the figures are found.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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
    return _median_and_percentiles_of(n, ordered.__getitem__, percents)


#: Bits of a value's bucket below its leading bit: a bucket is at most 1/128 of its
#: values wide (each value below 256 has its own).
SUB_BITS = 7
_SUB = 1 << SUB_BITS
#: Buckets on either side of zero: every int64 magnitude has one (7,296).
HALF_BUCKETS = (64 - SUB_BITS) * _SUB
#: Values read back from the spill file at a time.
READ_VALUES = 1 << 15
#: The most a pass over the spill file keeps for each rank sought: counts of a range of
#: that many values, that many values of a range, or counts of that many sub-ranges.
KEEP_VALUES = 1 << 12
#: The most ``SpilledCounts`` holds, whatever it was given (``tests/test_quantiles.py``
#: feeds it 10**7 distinct values): its two arrays of ``HALF_BUCKETS`` counts (114 KiB)
#: and, for a moment, what counting ``READ_VALUES`` of the values given allocates;
#: while it seeks ranks, a block of ``READ_VALUES`` read back (256 KiB), its masks and
#: selections, and ``KEEP_VALUES`` numbers per rank sought (32 KiB each; the summary
#: seeks at most 8).
MEMORY_BOUND_BYTES = 2 << 20


class SpilledCounts:
    """Every integer value added (a loop's lateness or latency in nanoseconds), for
    ``median_and_percentiles`` of all of them to the bit, in memory bounded by
    ``MEMORY_BOUND_BYTES`` however many values came and however spread they are.

    Exact percentiles need the values at a few ranks, which are known only once every
    value has come, and no structure of bounded size can give every rank of an
    unbounded stream exactly. So the values go to a spill file as they come (8 bytes
    each, a file without a name in ``spill_dir``, gone when closed), and memory holds
    their counts per bucket (log-linear: values below 256 one each, above them 128 buckets
    per power of two) and the largest value. A figure's ranks are then found in their
    buckets, and the values at those ranks read back from the file: one pass keeps the
    values of a bucket narrower than ``KEEP_VALUES``, or holding fewer, else counts of
    ``KEEP_VALUES`` sub-ranges for another pass (a median of 50 us lies in a bucket 256
    ns wide: one pass; a rank in a bucket above 1 ms and crowded takes two or three).

    ``settle`` finds the ranks of given figures and closes the file; what it found is
    kept (and pickled: the log writer hands its counts to the trial's process)."""

    def __init__(self, spill_dir: Path | str | None = None) -> None:
        self.spill_dir = spill_dir
        self._above = np.zeros(HALF_BUCKETS, dtype=np.int64)  # values >= 0, by bucket
        self._below = np.zeros(HALF_BUCKETS, dtype=np.int64)  # values < 0, by bucket of ~v
        self._n = 0
        self._max: int | None = None
        self._spill: BinaryIO | None = None
        self._settled: dict[int, int] = {}  # rank -> value, found before the file closed
        self._closed = False

    def add(self, values: np.ndarray) -> None:
        """Count ``values`` (integers) and write them to the spill file, ``READ_VALUES``
        at a time (so that what counting them allocates is bounded too)."""
        if self._closed:
            raise ValueError("values added after the counts were settled")
        values = np.asarray(values)
        if values.size:
            self._settled = {}  # the ranks found so far hold other values now
        for start in range(0, values.size, READ_VALUES):
            self._add(np.ascontiguousarray(values[start : start + READ_VALUES],
                                           dtype=np.int64))

    def _add(self, values: np.ndarray) -> None:
        negative = values < 0
        if negative.any():
            self._below += np.bincount(_buckets(~values[negative]), minlength=HALF_BUCKETS)
        self._above += np.bincount(_buckets(values[~negative]), minlength=HALF_BUCKETS)
        top = int(values.max())
        self._max = top if self._max is None else max(self._max, top)
        self._n += values.size
        if self._spill is None:
            # Open until ``close`` (a file without a name: nothing is left if the
            # process dies).
            self._spill = tempfile.TemporaryFile(dir=self.spill_dir)  # noqa: SIM115
        self._spill.write(values.astype("<i8", copy=False).tobytes())

    @property
    def size(self) -> int:
        """Values counted."""
        return self._n

    def max(self) -> int:
        """The largest value counted (values counted: not empty)."""
        if self._max is None:
            raise ValueError("no values")
        return self._max

    def median_and_percentiles(self, percents: Sequence[float],
                               to_float: Callable[[np.ndarray], np.ndarray]) -> list[float]:
        """``median_and_percentiles(to_float(v))`` over every value ``v`` counted (not
        none), to the bit: ``to_float`` maps values to the floats the caller would have
        kept (non-decreasing, finite, no -0.0: a sorted array of them is the sorted
        floats, and numpy's figures of finite values without -0.0 are those of the
        formula of ``_percentile_of``, whatever the size: ``tests/test_quantiles.py``)."""
        values = self._values_at(_ranks(self._n, percents))

        def at(rank: int) -> float:
            return float(to_float(np.array([values[rank]], dtype=np.int64))[0])

        return _median_and_percentiles_of(self._n, at, percents)

    def settle(self, percents: Sequence[float]) -> None:
        """Find the values of the median's and ``percents``' ranks, then close the spill
        file: figures of other percents cannot be had afterwards."""
        if self._n:
            self._values_at(_ranks(self._n, percents))
        self.close()

    def close(self) -> None:
        """Close (and so delete) the spill file; no more values may be added."""
        self._closed = True
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps: all but the spill file (``settle`` first)."""
        state = self.__dict__.copy()
        state["_spill"] = None
        state["_closed"] = True
        return state

    def _values_at(self, ranks: set[int]) -> dict[int, int]:
        """The value of each rank of ``ranks`` (0 the smallest), from the counts and the
        spill file."""
        if not self._n:
            raise ValueError("no values")
        wanted = sorted(ranks - self._settled.keys())
        if wanted:
            if self._spill is None:
                raise ValueError(f"ranks {wanted} were not settled before the spill "
                                 "file closed")
            self._settled |= _seek(self._spill, self._n, self._ranges(wanted))
        return {rank: self._settled[rank] for rank in ranks}

    def _ranges(self, ranks: list[int]) -> dict[int, _Range]:
        """Each rank's bucket, as a range of values."""
        counts = np.concatenate((self._below[::-1], self._above))
        ends = np.cumsum(counts)
        found = {}
        for rank in ranks:
            key = int(np.searchsorted(ends, rank, side="right"))
            count = int(counts[key])
            if key >= HALF_BUCKETS:
                first, last = _bucket_bounds(key - HALF_BUCKETS)
            else:  # a bucket of ~v: v from ~last to ~first
                low, high = _bucket_bounds(HALF_BUCKETS - 1 - key)
                first, last = ~high, ~low
            found[rank] = _Range(first, last, int(ends[key]) - count, count)
        return found


@dataclass(frozen=True, slots=True)
class _Range:
    """Values ``first`` to ``last`` (both included), ``count`` of them, ``below`` values
    smaller."""

    first: int
    last: int
    below: int
    count: int


def _buckets(magnitudes: np.ndarray) -> np.ndarray:
    """The bucket of each value (int64, not negative): ``shift * _SUB + (value >>
    shift)``, where ``shift`` keeps the value's ``SUB_BITS + 1`` leading bits (0 below
    ``2 * _SUB``: each such value is its own bucket)."""
    shift = np.frexp(magnitudes.astype(np.float64))[1].astype(np.int64)
    shift -= 1 + SUB_BITS
    np.maximum(shift, 0, out=shift)
    top = magnitudes >> shift
    # A value above 2**53 may round up to the next power of two as a float: one bit less.
    over = (top < _SUB) & (shift > 0)
    if over.any():
        shift[over] -= 1
        top = magnitudes >> shift
    shift *= _SUB
    top += shift
    return top


def _bucket_bounds(bucket: int) -> tuple[int, int]:
    """The first and the last value of ``bucket`` (``_buckets``)."""
    shift = max(bucket // _SUB - 1, 0)
    top = bucket - shift * _SUB
    return top << shift, ((top + 1) << shift) - 1


def _seek(spill: BinaryIO, n: int, ranges: dict[int, _Range]) -> dict[int, int]:
    """The value of each rank of ``ranges`` (rank -> its range), from passes over the
    ``n`` values of ``spill``; each pass narrows a range to ``KEEP_VALUES`` sub-ranges
    until it is narrow enough, or holds few enough values, to be kept whole."""
    found: dict[int, int] = {}
    while ranges:
        passes = {r: _Pass(r) for r in set(ranges.values())}
        spill.seek(0)
        read = 0
        while data := spill.read(READ_VALUES * 8):
            if len(data) % 8:
                raise ValueError("the spill file ends within a value")
            chunk = np.frombuffer(data, dtype="<i8")
            read += chunk.size
            for each in passes.values():
                each.take(chunk)
        if read != n:
            raise ValueError(f"the spill file holds {read} values, {n} were counted")
        narrower: dict[int, _Range] = {}
        for rank, where in ranges.items():
            value = passes[where].value_or_range(rank)
            if isinstance(value, _Range):
                narrower[rank] = value
            else:
                found[rank] = value
        ranges = narrower
    return found


class _Pass:
    """What one pass over the spill file keeps of one range: the count of each of its
    values (``KEEP_VALUES`` or fewer of them), its values (as many or fewer), or counts
    of ``KEEP_VALUES`` sub-ranges (otherwise)."""

    def __init__(self, where: _Range) -> None:
        self.where = where
        width = where.last - where.first + 1
        self.step = 1 if width <= KEEP_VALUES else -(-width // KEEP_VALUES)
        self.kept: list[np.ndarray] | None = (
            [] if self.step > 1 and where.count <= KEEP_VALUES else None)
        self.counts = np.zeros(-(-width // self.step), dtype=np.int64)

    def take(self, chunk: np.ndarray) -> None:
        where = self.where
        inside = chunk[(chunk >= where.first) & (chunk <= where.last)]
        if not inside.size:
            return
        if self.kept is not None:
            self.kept.append(inside)
            return
        # As unsigned: a range may be wider than the int64 values above its first.
        offsets = inside.view(np.uint64) - np.uint64(where.first % 2**64)
        self.counts += np.bincount(offsets // np.uint64(self.step),
                                   minlength=self.counts.size)

    def value_or_range(self, rank: int) -> int | _Range:
        """The value of ``rank``, or the narrower range it is in."""
        where = self.where
        within = rank - where.below
        if self.kept is not None:
            values = np.sort(np.concatenate(self.kept))
            if values.size != where.count:
                raise ValueError("the spill file does not hold the values counted")
            return int(values[within])
        if int(self.counts.sum()) != where.count:
            raise ValueError("the spill file does not hold the values counted")
        ends = np.cumsum(self.counts)
        sub = int(np.searchsorted(ends, within, side="right"))
        first = where.first + sub * self.step
        if self.step == 1:
            return first
        count = int(self.counts[sub])
        return _Range(first, min(first + self.step - 1, where.last),
                      where.below + int(ends[sub]) - count, count)


def _ranks(n: int, percents: Sequence[float]) -> set[int]:
    """The ranks (0 the smallest) whose values the median and ``percents`` of ``n``
    sorted values are made of: those their formulas ask for."""
    asked: set[int] = set()

    def at(rank: int) -> float:
        asked.add(rank)
        return 0.0

    _median_and_percentiles_of(n, at, percents)
    return asked


def _median_and_percentiles_of(n: int, at: Callable[[int], float],
                               percents: Sequence[float]) -> list[float]:
    """The median and ``percents`` of ``n`` sorted values (not none), the value of rank r
    ``at(r)``: the formulas of ``median_and_percentiles``."""
    if not n:
        raise ValueError("no values")
    half = n // 2
    # numpy's mean of the middle value(s) adds them to its sum's start, 0.0: a middle
    # -0.0 gives 0.0.
    median = 0.0 + at(half) if n % 2 else (0.0 + at(half - 1) + at(half)) / 2.0
    return [median, *(_percentile_of(n, at, q) for q in percents)]


def _percentile_of(n: int, at: Callable[[int], float], q: float) -> float:
    """numpy's "linear" percentile ``q`` of ``n`` sorted finite values, the value of rank
    r ``at(r)``."""
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
