"""Deadline accounting of the loop: lateness, latency, misses and overruns per sample.

The loop owes one sample to every period of its grid: period ``s`` starts (its deadline
is) at ``s * period_s`` of trial time. For every sample served the loop calls this
monitor three times, and it stores what it learns in preallocated arrays (nothing is
allocated, logged or locked in the loop):

* ``woke``: how late after the deadline it owed the loop started the sample
  (**lateness**).
* ``stale``, just before the commands go to the watchdog: how late they are, when they
  would reach the stimulator more than ``max_overrun_s`` after the sample's deadline (a
  late start, a slow sample, or both); None otherwise. The loop then faults the watchdog first
  (``Watchdog.loop_overrun``): a command that late is stale, and outputs must go off.
* ``delivered``: the sample's commands have been handed to the watchdog and the
  stimulator. The time from waking (just before ``source.read()``) to here is the
  **sensor-to-command latency**. A sample whose work ends after the next period has
  begun is an **overrun**: it makes the next sample late.

Catch-up policy (never a burst of stale commands): when the loop wakes one or more whole
periods after the deadline it owed (a stall: another process, a page fault, a long
Python pause), the periods that have fully passed are **skipped**: they get no sample
and no command, and each one counts as a **miss**. The loop serves the period it is in
at once and then returns to the grid. It never runs the missed periods back to back,
which would send the stimulator a burst of commands computed for moments already past.
The lateness recorded for the sample that ends a stall is measured from the deadline it
owed, so it includes the skipped periods: a 5 ms stall at 1 kHz appears as 5 misses
and a sample about 5000 us late, not as a sample that was barely late.

On a virtual clock every deadline is met exactly and work takes no virtual time, so all
figures are exact zeros (a simulated trial stays byte-for-byte reproducible).

A clock that cannot tell how late the loop is returns NaN from ``wait_until``: one paced
by its source's stream (a board's samples, a replayed recording: a sample is due when it
arrives, ``controller.trial.live.BoardPacedClock``). Then lateness is not measured: its
rows are NaN (empty cells in ``timing.csv``), nothing is skipped, and the summary's
lateness and missed periods are null, with the clock's reason in ``not_measured``, not
zeros that would read as a loop always on time. Latency and overruns are still measured
from the sample's arrival: the host's own work.

The arrays live in shared memory and a shared counter is raised after the row it counts
is complete, so the log writer process (``controller.trial.writer``) may read the rows
published so far at any time, without a lock. A monitor of fewer rows than the trial's
samples keeps them as a ring (sample k at row k modulo its rows: a long live trial,
``controller.trial.window``); its figures then come from the counts the log writer
kept of every value (``figures``' ``counts``), not from its rows.

Lateness and latency are kept to the nanosecond (the clock's own resolution: a float
second of ``time.perf_counter`` carries digits below it that are only rounding), so
that their median and percentiles can be had exactly from counts of whole nanoseconds
(``controller.quantiles.SpilledCounts``) as well as from the values themselves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from controller.quantiles import SpilledCounts, median_and_percentiles
from controller.sharedmem import ring_rows, shared_zeros

#: The percentiles of ``summary.json`` ``timing`` besides the median.
PERCENTS = (90.0, 99.0, 99.9)


def to_ns(values_s: np.ndarray) -> np.ndarray:
    """Durations kept to the nanosecond (``DeadlineMonitor``), as whole nanoseconds."""
    return np.rint(np.asarray(values_s) * 1e9).astype(np.int64)


def ns_to_us(ns: np.ndarray) -> np.ndarray:
    """Whole nanoseconds as the microseconds ``percentiles_us`` takes of the seconds kept
    (the same floats: seconds ``ns / 1e9``, times 1e6)."""
    return (ns / 1e9) * 1e6


def counted_us(counts: SpilledCounts) -> dict[str, float | None]:
    """``percentiles_us`` of the durations counted (whole ns), to the bit."""
    if counts.size == 0:
        return {"median": None, "p90": None, "p99": None, "p99_9": None, "max": None}
    median, p90, p99, p99_9 = counts.median_and_percentiles(PERCENTS, ns_to_us)
    return {"median": median, "p90": p90, "p99": p99, "p99_9": p99_9,
            "max": float(ns_to_us(np.array([counts.max()]))[0])}


def percentiles_us(values_s: np.ndarray) -> dict[str, float | None]:
    """``{median, p90, p99, p99_9, max}`` of durations in seconds, in microseconds (None
    if empty): the figures ``python -m controller.bench`` prints."""
    if values_s.size == 0:
        return {"median": None, "p90": None, "p99": None, "p99_9": None, "max": None}
    us = values_s * 1e6
    median, p90, p99, p99_9 = median_and_percentiles(us, PERCENTS)
    return {"median": median, "p90": p90, "p99": p99, "p99_9": p99_9, "max": float(us.max())}


class DeadlineMonitor:
    """Lateness, latency, misses and overruns of up to ``capacity`` samples."""

    def __init__(
        self, capacity: int, period_s: float, max_overrun_s: float = math.inf
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be non-negative, got {capacity}")
        if not (math.isfinite(period_s) and period_s > 0.0):
            raise ValueError(f"period_s must be positive, got {period_s!r}")
        if not max_overrun_s > 0.0:
            raise ValueError(f"max_overrun_s must be positive, got {max_overrun_s!r}")
        self.period_s = period_s
        self.max_overrun_s = max_overrun_s
        self.count = 0
        self.misses = 0
        self.overruns = 0
        self._slot = 0
        self._timed = False  # a sample was timed (``woke``), not only accounted ``on_time``
        self._unmeasured = False  # a sample's lateness was not measured (NaN, ``woke``)
        self._owed_s = 0.0
        self._woke_s = 0.0
        self._first = (math.nan, math.nan)  # the first sample's lateness and latency, s
        self.rows_kept = capacity  # fewer than the trial's samples: a ring
        self._lateness_s = shared_zeros(capacity)
        self._latency_s = shared_zeros(capacity)
        self._skipped = shared_zeros(capacity, np.int64)
        self._published = shared_zeros(1, np.int64)

    @property
    def due_s(self) -> float:
        """Deadline of the next sample: the start of the first period not yet served."""
        return self._slot * self.period_s

    def woke(self, lateness_s: float) -> None:
        """The loop started a sample ``lateness_s`` after ``due_s``; skip missed periods.
        NaN: the clock cannot tell (the sample is due when it arrives); nothing skipped."""
        k = self.count
        row = k if k < self.rows_kept else k % self.rows_kept
        self._timed = True
        unmeasured = math.isnan(lateness_s)
        self._unmeasured |= unmeasured
        skipped = 0 if unmeasured else int(lateness_s // self.period_s)
        self._owed_s = self._slot * self.period_s
        self._woke_s = self._owed_s + (0.0 if unmeasured else lateness_s)
        # To the nanosecond (the module docstring).
        self._lateness_s[row] = lateness_s if unmeasured else round(lateness_s * 1e9) / 1e9
        self._skipped[row] = skipped
        self.misses += skipped
        self._slot += skipped + 1

    def stale(self, now_s: float) -> float | None:
        """How late commands sent at ``now_s`` would be, if beyond the bound; else None."""
        late_s = now_s - self._owed_s
        return late_s if late_s > self.max_overrun_s else None

    def delivered(self, now_s: float) -> None:
        """The commands of the sample started at the last ``woke`` are out at ``now_s``."""
        k = self.count
        row = k if k < self.rows_kept else k % self.rows_kept
        self._latency_s[row] = round((now_s - self._woke_s) * 1e9) / 1e9
        if k == 0:
            self._first = (self._lateness_s[0], self._latency_s[0])
        if now_s > self._slot * self.period_s:
            self.overruns += 1
        self.count = k + 1
        self._published[0] = k + 1

    def on_time(self, count: int) -> None:
        """``count`` more samples served exactly at their deadlines, as on a virtual
        clock (a compiled simulated loop accounts for its samples this way)."""
        self.count += count
        self._slot += count
        self._published[0] = self.count

    def prefault(self) -> None:
        """Touch every page of the arrays now, so that the loop never waits for the
        kernel to map one (a first touch costs microseconds, on a virtual machine tens)."""
        for array in (self._lateness_s, self._latency_s, self._skipped):
            array.fill(0)

    def published(self) -> int:
        """Samples accounted so far, as the log writer process sees it."""
        return int(self._published[0])

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Timing of samples ``start`` to ``stop``, and (``lateness_s``, ``latency_s``) the
        seconds kept (views, unless they wrap around a ring; a row never changes once
        counted, until a ring comes round)."""
        lateness_s = ring_rows(self._lateness_s, start, stop)
        latency_s = ring_rows(self._latency_s, start, stop)
        return {
            "lateness_us": lateness_s * 1e6,
            "latency_us": latency_s * 1e6,
            "skipped_periods": ring_rows(self._skipped, start, stop),
            "lateness_s": lateness_s,
            "latency_s": latency_s,
        }

    @property
    def lateness_measured(self) -> bool:
        """False once a sample's lateness was not measured (NaN from the clock)."""
        return not self._unmeasured

    def figures(
        self, clock: str, warm_up_s: float, not_measured: str | None = None,
        counts: tuple[SpilledCounts, SpilledCounts] | None = None,
    ) -> dict[str, Any]:
        """The ``timing`` block of ``summary.json``. When the clock did not measure
        lateness, lateness and missed periods are null and ``not_measured`` says why
        (``not_measured``, the clock's reason; None when they were measured).

        ``counts`` are the lateness and latency of every sample in whole nanoseconds,
        counted as they passed (a ring's rows are gone); without them the figures are
        those of the rows kept. Either way they are ``percentiles_us`` of the values."""
        n = self.count
        measured = not self._unmeasured
        if counts is None:
            if self._timed and n > self.rows_kept:
                raise ValueError("the monitor's rows are a ring: give the counts")
            lateness, latency = self._lateness_s[:n], self._latency_s[:n]
            if not self._timed:
                # Every sample was accounted on time (a virtual clock): the arrays hold
                # exact zeros, whose figures are those of one zero; reading a minute of
                # untouched pages (the kernel maps each on first read) and sorting them
                # took 3 ms.
                lateness, latency = lateness[: min(n, 1)], latency[: min(n, 1)]
            lateness_us = percentiles_us(lateness if measured else lateness[:0])
            latency_us = percentiles_us(latency)
        else:
            lateness_us = counted_us(counts[0]) if measured else percentiles_us(np.zeros(0))
            latency_us = counted_us(counts[1])
        first_late, first_latency = self._first if self._timed else (0.0, 0.0)
        owed = n + self.misses
        return {
            "clock": clock,
            "period_ms": self.period_s * 1e3,
            "samples": n,
            "misses": self.misses if measured else None,
            "missed_percent": (100.0 * self.misses / owed if owed else 0.0) if measured
            else None,
            "overruns": self.overruns,
            "lateness_us": lateness_us,
            "latency_us": latency_us,
            "first_sample": {
                "lateness_us": float(first_late * 1e6) if n and measured else None,
                "latency_us": float(first_latency * 1e6) if n else None,
            },
            "not_measured": None if measured else (
                not_measured or "lateness and missed periods: this clock cannot tell"),
            "warm_up_ms": warm_up_s * 1e3,
        }
