"""What the summary takes from a trial's per-sample columns, from the whole columns or
from their rows as they pass.

The summary (``controller.trial.summary``) scores a few things per sample: the edges
of each channel's stimulation, its pulses and their charge, the share of time it was
on, the toe clearance in each swing, the ankle before each heel strike, the muscle at
each toe off, the forefoot impacts and foot slaps, and how many samples delivered
stimulation in each swing. ``WholeColumns`` computes them from the columns of the whole
trial, kept in memory (every trial but a long simulated one). ``StreamedColumns``
computes the same figures from the rows as the loop publishes them (``add``), keeping
only what is per event or per stride (a few numbers each), so a long simulated trial's
rows can be released once written (``controller.trial.window``). It needs the true
events before the loop (the simulator knows its gait ahead) and gives the same numbers,
bit for bit: the same comparisons pick the same samples, minima and counts do not
depend on the order, per-event arrays are kept whole in order, and the pulses' charge
is summed exactly (``ExactSum``) and per stride in pulse order, with no number kept
per pulse (``tests/test_trial_window.py`` compares the summaries of both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from controller.pulses import new_train, train_pulse_times, train_pulse_times_from
from controller.trial import metrics

#: The sensor columns whose lost samples (NaN: no reading) the summary counts; the force
#: is NaN on every sample of a source without a force sensor (absent, not lost).
LOST_COUNTED = ("gyro_rad_s", "heel_switch")


class ColumnScores(Protocol):
    """The per-sample figures a summary asks of a trial's columns."""

    samples: int

    def lost(self, name: str) -> int:
        """Samples whose ``name`` (one of ``LOST_COUNTED``) is NaN: that sensor's lost
        samples."""
        ...

    def has(self, name: str) -> bool:
        """Whether the trial has column ``name``."""
        ...

    def edges(self, on: str) -> tuple[np.ndarray, np.ndarray]:
        """Times at which column ``on`` switches on, and off (``metrics.rising_edges``,
        ``metrics.falling_edges``), for a trial with true events to score them against."""
        ...

    def trains(self, on: str) -> int:
        """How many times column ``on`` switched on (the size of ``edges``' first)."""
        ...

    def charge(self, prefix: str, heel_strike_s: np.ndarray) -> Charge:
        """The pulses of the channel whose columns start with ``prefix`` and their
        charge (uC per phase), in all and between consecutive ``heel_strike_s`` (the
        true ones before the end of the trial, in order)."""
        ...

    def mean(self, name: str) -> float:
        """Mean of the 0/1 column ``name`` (0.0 without samples)."""
        ...

    def total(self, name: str) -> float:
        """Sum of the 0/1 column ``name``."""
        ...

    def positive(self, name: str) -> np.ndarray:
        """The values of ``name`` above 0, in sample order."""
        ...

    def first_at_or_after(self, name: str, events_s: np.ndarray) -> np.ndarray:
        """``name`` at the first sample at or after each event that has one."""
        ...

    def last_before(self, name: str, events_s: np.ndarray) -> np.ndarray:
        """``metrics.values_before``: ``name`` at the last sample before each event
        inside the recording."""
        ...

    def swing_minima(self, name: str, toe_off_s: np.ndarray, heel_strike_s: np.ndarray,
                     trim_fraction: float) -> np.ndarray:
        """``metrics.swing_minima_mm`` of column ``name``."""
        ...

    def on_in_swings(self, on: str, toe_off_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        """Samples with ``on`` above 0 from each toe off (included) to its end (not)."""
        ...


class WholeColumns:
    """``ColumnScores`` of the columns of a whole trial (``time_s`` and the others)."""

    def __init__(self, columns: Mapping[str, np.ndarray], period_s: float) -> None:
        self._columns = columns
        self._period_s = period_s
        self.samples = int(columns["time_s"].size)

    def has(self, name: str) -> bool:
        return name in self._columns

    def lost(self, name: str) -> int:
        return _nans(self._columns[name])

    def edges(self, on: str) -> tuple[np.ndarray, np.ndarray]:
        t_s, flag = self._columns["time_s"], self._columns[on]
        return metrics.rising_edges(t_s, flag), metrics.falling_edges(t_s, flag)

    def trains(self, on: str) -> int:
        return int(metrics.rising_edges(self._columns["time_s"], self._columns[on]).size)

    def charge(self, prefix: str, heel_strike_s: np.ndarray) -> Charge:
        cols = self._columns
        times, index = train_pulse_times(cols["time_s"], cols[prefix + "stim_on"],
                                         cols[prefix + "frequency_hz"], self._period_s)
        delivered = ~_of_last_row(index, self.samples)
        times, index = times[delivered], index[delivered]
        charge = _charge(cols, prefix, index)
        edges = np.asarray(heel_strike_s, dtype=np.float64)
        bins, at_last = _stride_bins(times, edges)
        per_stride = _per_stride(bins, charge, edges.size - 1)
        if at_last.any():
            per_stride[-1] += charge[at_last].sum()
        return Charge(int(times.size), exact_sum(charge),
                      float(charge.max()) if charge.size else 0.0, per_stride)

    def mean(self, name: str) -> float:
        column = self._columns[name]
        return float(column.mean()) if column.size else 0.0

    def total(self, name: str) -> float:
        return float(self._columns[name].sum())

    def positive(self, name: str) -> np.ndarray:
        values = self._columns[name]
        return values[values > 0.0]

    def first_at_or_after(self, name: str, events_s: np.ndarray) -> np.ndarray:
        t_s = self._columns["time_s"]
        rows = np.searchsorted(t_s, events_s)
        return self._columns[name][rows[rows < t_s.size]]

    def last_before(self, name: str, events_s: np.ndarray) -> np.ndarray:
        return metrics.values_before(self._columns["time_s"], self._columns[name], events_s)

    def swing_minima(self, name: str, toe_off_s: np.ndarray, heel_strike_s: np.ndarray,
                     trim_fraction: float) -> np.ndarray:
        return metrics.swing_minima_mm(self._columns["time_s"], self._columns[name],
                                       toe_off_s, heel_strike_s, trim_fraction=trim_fraction)

    def on_in_swings(self, on: str, toe_off_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        t_s = self._columns["time_s"]
        delivering = np.concatenate(([0], np.cumsum(self._columns[on] > 0)))
        return (delivering[np.searchsorted(t_s, ends_s, side="left")]
                - delivering[np.searchsorted(t_s, toe_off_s, side="left")])


def _nans(values: np.ndarray) -> int:
    """How many of ``values`` are NaN."""
    return int(np.count_nonzero(np.isnan(values)))


@dataclass(frozen=True)
class Charge:
    """A channel's pulses, their charge in all (the exact sum, rounded once: the same
    whatever order the pulses were added in), the largest single phase (0 without
    pulses) and the charge between consecutive true heel strikes (``charge_uc_*`` of
    ``summary.json``)."""

    pulses: int
    total_uc: float
    phase_max_uc: float
    per_stride_uc: np.ndarray


#: ``exact_sum`` adds mantissas of one exponent this many at a time in int64 (each
#: below 2**53: 512 of them stay below 2**62).
_MANTISSAS_AT_ONCE = 512


class ExactSum:
    """The exact sum of the floats added so far, as an integer count of 2**-1126 (the
    smallest subnormal's bits and then some), rounded to a float once, when read: the
    same float whatever the order and grouping of the additions (``math.fsum``'s
    result), so a trial's charge scored as its rows pass equals the charge of its whole
    columns, bit for bit, without keeping a number per pulse."""

    _SHIFT = 1126

    def __init__(self) -> None:
        self._units = 0
        self._other = 0.0  # NaN or an infinity among the values: the sum is that too

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return
        finite = np.isfinite(values)
        if not finite.all():
            self._other += float(values[~finite].sum())
            values = values[finite]
        mantissa, exponent = np.frexp(values)
        whole = (mantissa * 2.0**53).astype(np.int64)  # exact: 53 bits
        power = exponent.astype(np.int64) - 53 + self._SHIFT  # value = whole * 2**(power - SHIFT)
        for p in np.unique(power).tolist():
            of_p = whole[power == p]
            total = sum(int(of_p[i : i + _MANTISSAS_AT_ONCE].sum())
                        for i in range(0, of_p.size, _MANTISSAS_AT_ONCE))
            self._units += total << p  # p >= 0: the smallest subnormal is 2**0 units

    def value(self) -> float:
        return float(Fraction(self._units, 1 << self._SHIFT)) + self._other


def exact_sum(values: np.ndarray) -> float:
    """``ExactSum`` of ``values``."""
    total = ExactSum()
    total.add(values)
    return total.value()


def _stride_bins(times_s: np.ndarray, edges_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stride of each pulse time: j for ``edges_s[j] <= t < edges_s[j + 1]``, -1
    before the first edge, ``edges_s.size - 1`` from the last on; and which times are
    exactly the last edge (``np.histogram``'s last bin takes its right edge)."""
    bins = np.searchsorted(edges_s, times_s, side="right") - 1
    at_last = (times_s == edges_s[-1]) if edges_s.size > 1 else np.zeros(times_s.size, bool)
    return bins, at_last


def _per_stride(bins: np.ndarray, charge: np.ndarray, strides: int) -> np.ndarray:
    """Charge per stride 0 .. ``strides - 1`` (pulses of other bins left out), added in
    pulse order."""
    if strides <= 0:
        return np.zeros(0)
    inside = (bins >= 0) & (bins < strides)
    return np.bincount(bins[inside], weights=charge[inside], minlength=strides)


def _of_last_row(index: np.ndarray, rows: int) -> np.ndarray:
    """Which of the pulses emitted at rows ``index`` (of ``rows``) belong to the last
    row's command. A trial's outputs go off at its last sample (the watchdog's STOP_ALL
    right after that row's command; the simulated limb applies a command from its next
    step, and there is none), so that command never holds for its period: its pulses are
    not counted as delivered."""
    return index == rows - 1


def _charge(columns: Mapping[str, np.ndarray], prefix: str, index: np.ndarray) -> np.ndarray:
    """Charge per phase (uC) of the pulses emitted at rows ``index``."""
    return columns[prefix + "amplitude_ma"][index] * columns[prefix + "pulse_width_us"][index] / 1e3


class _Swings:
    """Minimum of a column over the samples in ``[low, high]`` of each swing (NaN once
    a sample in it is NaN), and whether any sample fell in it."""

    def __init__(self, toe_off_s: np.ndarray, heel_strike_s: np.ndarray,
                 trim_fraction: float) -> None:
        # As ``metrics.swing_minima_mm`` bounds them, for every toe off with a next
        # heel strike among the events known ahead.
        heel_strike_s = np.sort(heel_strike_s)
        toe_off_s = np.sort(toe_off_s)  # windows in time order
        following = np.searchsorted(heel_strike_s, toe_off_s, side="right")
        complete = following < heel_strike_s.size
        start = np.asarray(toe_off_s, dtype=np.float64)[complete]
        end = heel_strike_s[following[complete]].astype(np.float64)
        margin = trim_fraction * (end - start)
        self.key = (start, end)
        self.low, self.high = start + margin, end - margin
        self.minima = np.full(start.size, np.inf)
        self.seen = np.zeros(start.size, dtype=bool)
        self._next = 0  # the first swing whose window may still get samples

    def add(self, t_s: np.ndarray, values: np.ndarray) -> None:
        if not t_s.size:
            return
        last = t_s[-1]
        i = self._next
        while i < self.low.size and self.low[i] <= last:
            first = np.searchsorted(t_s, self.low[i], side="left")
            stop = np.searchsorted(t_s, self.high[i], side="right")
            if first < stop:
                self.minima[i] = np.minimum(self.minima[i], np.minimum.reduce(values[first:stop]))
                self.seen[i] = True
            i += 1
        # Swings whose window ends within these rows are complete.
        while self._next < self.high.size and self.high[self._next] < last:
            self._next += 1

    def of(self, toe_off_s: np.ndarray, heel_strike_s: np.ndarray) -> np.ndarray:
        heel_strike_s = np.sort(heel_strike_s)
        following = np.searchsorted(heel_strike_s, toe_off_s, side="right")
        complete = following < heel_strike_s.size
        start = np.asarray(toe_off_s, dtype=np.float64)[complete]
        end = heel_strike_s[following[complete]].astype(np.float64)
        at = np.searchsorted(self.key[0], start)
        known = self.key[0][np.minimum(at, self.key[0].size - 1)] if self.key[0].size else start
        if start.size and (at.max() >= self.key[0].size or not np.array_equal(known, start)
                           or not np.array_equal(self.key[1][at], end)):
            raise ValueError("swings unknown before the trial")
        minima = self.minima[at][self.seen[at]]
        return minima[~np.isnan(minima)]


class _AtEvents:
    """A column at the first sample at or after, and at the last sample before, each of
    ``events_s`` (sorted), from rows added in order."""

    def __init__(self, events_s: np.ndarray) -> None:
        self.events_s = np.sort(np.asarray(events_s, dtype=np.float64))
        self.after = np.full(self.events_s.size, np.nan)
        self.after_found = np.zeros(self.events_s.size, dtype=bool)
        self.before = np.full(self.events_s.size, np.nan)
        self.before_found = np.zeros(self.events_s.size, dtype=bool)
        self._from = 0  # the first event after the rows added so far
        self._tail: float | None = None  # the last value added

    def add(self, t_s: np.ndarray, values: np.ndarray) -> None:
        if not t_s.size:
            return
        events = self.events_s
        a = self._from
        b = int(np.searchsorted(events, t_s[-1], side="right"))
        c = max(a, int(np.searchsorted(events, t_s[0], side="right")))
        # Events up to the last of these rows (and after the rows before): their first
        # sample at or after is one of these.
        rows = np.searchsorted(t_s, events[a:b], side="left")
        self.after[a:b] = values[rows]
        self.after_found[a:b] = True
        # Last sample before: the rows before's last for events up to the first of
        # these rows; one of these for the events after it.
        if self._tail is not None:
            self.before[a:c] = self._tail
            self.before_found[a:c] = True
        self.before[c:b] = values[np.searchsorted(t_s, events[c:b], side="left") - 1]
        self.before_found[c:b] = True
        self._from = b
        self._tail = float(values[-1])

    def _at(self, events_s: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.events_s, events_s)
        if events_s.size and (at.max() >= self.events_s.size
                              or not np.array_equal(self.events_s[at], events_s)):
            raise ValueError("events unknown before the trial")
        return at

    def first_at_or_after(self, events_s: np.ndarray) -> np.ndarray:
        at = self._at(events_s)
        return self.after[at][self.after_found[at]]

    def last_before(self, events_s: np.ndarray, last_s: float | None) -> np.ndarray:
        at = self._at(events_s)
        if last_s is None:
            return self.before[:0]
        keep = self.before_found[at] & (events_s <= last_s)
        return self.before[at][keep]


class StreamedColumns:
    """``ColumnScores`` of the rows added so far (``add``, in order), for the true
    ``toe_off_s`` and ``heel_strike_s`` known before the trial, a clearance trim of
    ``trim_fraction``, stimulation channels by column prefix ``prefixes`` (the peroneal
    one, ``""``, first) and the truth columns ``truth`` the trial has.

    ``edge_times`` False keeps the count of each channel's trains but not the times of
    their edges: a trial without true events (a live trial on a real board) has nothing
    to score them against, and they were the one thing its log writer held per train
    (16 bytes a train, some 50 kB an hour of walking, held until the trial's end)."""

    def __init__(
        self,
        period_s: float,
        toe_off_s: Sequence[float],
        heel_strike_s: Sequence[float],
        trim_fraction: float,
        prefixes: Sequence[str],
        truth: Sequence[str],
        edge_times: bool = True,
    ) -> None:
        self.samples = 0
        self._period_s = period_s
        self._edge_times = edge_times
        self._trim_fraction = trim_fraction
        self._truth = tuple(truth)
        self._rises = dict.fromkeys(prefixes, 0)
        self._names = {"time_s", *truth}
        toe_offs = np.asarray(toe_off_s, dtype=np.float64)
        heel_strikes = np.asarray(heel_strike_s, dtype=np.float64)
        self._last_s: float | None = None
        # Per channel: rising and falling edge times, whether the last row added was on.
        self._edges: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[bool]]] = {
            p: ([], [], [False]) for p in prefixes}
        self._trains = {p: new_train() for p in prefixes}
        # Per channel: pulses, their exact total, the largest phase, the charge per
        # stride between the heel strikes known ahead, and the charge of pulses exactly
        # at a heel strike (by its index: the stride a summary ending there gives it).
        self._heel_strikes = np.sort(heel_strikes)
        self._pulses = {p: _StreamedCharge(self._heel_strikes) for p in prefixes}
        for p in prefixes:
            self._names |= {p + c for c in ("stim_on", "amplitude_ma", "pulse_width_us",
                                            "frequency_hz")}
        self._sums: dict[str, float] = {}
        self._lost = dict.fromkeys(LOST_COUNTED, 0)
        self._positive: dict[str, list[np.ndarray]] = {"forefoot_impact_rad_s": []}
        self._at = {name: _AtEvents(toe_offs if name == "ta_activation" else heel_strikes)
                    for name in ("ta_activation", "ankle_angle_deg")}
        self._swings = {trim: _Swings(toe_offs, heel_strikes, trim)
                        for trim in {trim_fraction, 0.0}}
        self._swing_on = _SwingCounts(toe_offs, heel_strikes)

    def add(self, rows: Mapping[str, np.ndarray]) -> None:
        """The next rows, one array per column (views are read here, not kept)."""
        t_s = rows["time_s"]
        if not t_s.size:
            return
        for prefix, (rising, falling, last) in self._edges.items():
            on = rows[prefix + "stim_on"] > 0.5
            before = np.concatenate((last, on[:-1]))
            rises = on & ~before
            self._rises[prefix] += int(np.count_nonzero(rises))
            if self._edge_times:
                _keep(rising, t_s[rises])
                _keep(falling, t_s[~on & before])
            last[0] = bool(on[-1])
            times, index = train_pulse_times_from(self._trains[prefix], t_s,
                                                  rows[prefix + "stim_on"],
                                                  rows[prefix + "frequency_hz"], self._period_s)
            self._pulses[prefix].add(times, _charge(rows, prefix, index),
                                     _of_last_row(index, t_s.size))
        for name in rows:
            if name.endswith("stim_on") or name == "foot_slap":
                # Exact: sums of 0s and 1s (far below 2**53) in any order.
                self._sums[name] = self._sums.get(name, 0.0) + float(rows[name].sum())
        for name in self._lost:
            self._lost[name] += _nans(rows[name])
        for name, kept in self._positive.items():
            if name in rows:
                values = rows[name]
                _keep(kept, values[values > 0.0].copy())
        for name, at in self._at.items():
            if name in rows:
                at.add(t_s, rows[name])
        if "toe_clearance_mm" in rows:
            for swings in self._swings.values():
                swings.add(t_s, rows["toe_clearance_mm"])
        self._swing_on.add(t_s, rows["stim_on"])
        self.samples += int(t_s.size)
        self._last_s = float(t_s[-1])

    def warm_up(self) -> None:
        """Add made-up rows to a throwaway copy of these scores (the same channels,
        truth columns and trim; a made-up swing), taking every path of ``add``: the
        compiled pulse times loaded (or compiled), numpy's first calls made. These
        scores are not changed. The log writer does it before its first rows
        (``controller.trial.writer``)."""
        rows = 8
        t_s = np.arange(rows) * self._period_s
        spare = StreamedColumns(self._period_s, [t_s[1]], [t_s[0], t_s[6]],
                                self._trim_fraction, list(self._edges), self._truth,
                                self._edge_times)
        on = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
        made_up: dict[str, np.ndarray] = {name: np.linspace(-1.0, 1.0, rows) for name in
                   {*self._names, *LOST_COUNTED, *self._positive, *self._at,
                    "toe_clearance_mm", "foot_slap"}}
        made_up["time_s"] = t_s
        made_up["gyro_rad_s"][2] = np.nan
        for prefix in self._edges:
            made_up[prefix + "stim_on"] = on
            made_up[prefix + "frequency_hz"] = np.full(rows, 40.0)
        spare.add(made_up)

    def has(self, name: str) -> bool:
        return name in self._names

    def lost(self, name: str) -> int:
        return self._lost[name]

    def edges(self, on: str) -> tuple[np.ndarray, np.ndarray]:
        if not self._edge_times:
            raise ValueError("the trains' edge times were not kept (edge_times False): "
                             "there are no true events to score them against")
        rising, falling, _ = self._edges[on.removesuffix("stim_on")]
        return _joined(rising), _joined(falling)

    def trains(self, on: str) -> int:
        return self._rises[on.removesuffix("stim_on")]

    def charge(self, prefix: str, heel_strike_s: np.ndarray) -> Charge:
        return self._pulses[prefix].figures(np.asarray(heel_strike_s, dtype=np.float64))

    def mean(self, name: str) -> float:
        # numpy's mean: the (exact) sum divided by the count, as a float64.
        return float(np.float64(self._sums.get(name, 0.0)) / self.samples) if self.samples \
            else 0.0

    def total(self, name: str) -> float:
        return self._sums.get(name, 0.0)

    def positive(self, name: str) -> np.ndarray:
        return _joined(self._positive[name])

    def first_at_or_after(self, name: str, events_s: np.ndarray) -> np.ndarray:
        return self._at[name].first_at_or_after(np.asarray(events_s, dtype=np.float64))

    def last_before(self, name: str, events_s: np.ndarray) -> np.ndarray:
        return self._at[name].last_before(np.asarray(events_s, dtype=np.float64),
                                          self._last_s)

    def swing_minima(self, name: str, toe_off_s: np.ndarray, heel_strike_s: np.ndarray,
                     trim_fraction: float) -> np.ndarray:
        return self._swings[trim_fraction].of(np.asarray(toe_off_s, dtype=np.float64),
                                              np.asarray(heel_strike_s, dtype=np.float64))

    def on_in_swings(self, on: str, toe_off_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        return self._swing_on.of(np.asarray(toe_off_s, dtype=np.float64), ends_s)


class _StreamedCharge:
    """``Charge`` of a channel's pulses added as they pass, against the heel strikes
    known ahead: a few numbers and one per stride, not two per pulse (16 bytes a pulse,
    1.6 MB an hour of a 1 kHz trial, and the joins' copies)."""

    def __init__(self, heel_strike_s: np.ndarray) -> None:
        self._edges = heel_strike_s
        self.pulses = 0
        self._total = ExactSum()
        self._max = 0.0
        self._per_stride = np.zeros(max(0, heel_strike_s.size - 1))
        self._at_edge: dict[int, float] = {}  # pulses exactly at a heel strike (rare)
        # The pulses of the last row added, counted once rows after it come (the trial's
        # last row delivers none: ``_of_last_row``).
        self._held = (np.empty(0), np.empty(0))

    def add(self, times_s: np.ndarray, charge: np.ndarray, of_last_row: np.ndarray) -> None:
        """The pulses of the next rows (in time order), those of their last row held
        back (``of_last_row``) until more rows come."""
        held_s, held_charge = self._held
        self._held = (times_s[of_last_row], charge[of_last_row])
        times_s = np.concatenate((held_s, times_s[~of_last_row]))
        charge = np.concatenate((held_charge, charge[~of_last_row]))
        if not times_s.size:
            return
        self.pulses += int(times_s.size)
        self._total.add(charge)
        self._max = max(self._max, float(charge.max()))
        edges = self._edges
        if edges.size < 2:
            return
        bins = np.searchsorted(edges, times_s, side="right") - 1
        # 0.0 + x is x: bins added a block at a time are the sums in pulse order.
        self._per_stride += _per_stride(bins, charge, self._per_stride.size)
        for at in np.flatnonzero((bins >= 0) & (times_s == edges[np.maximum(bins, 0)])):
            self._at_edge[int(bins[at])] = self._at_edge.get(int(bins[at]), 0.0) + float(
                charge[at])

    def figures(self, heel_strike_s: np.ndarray) -> Charge:
        strides = max(0, heel_strike_s.size - 1)
        if heel_strike_s.size > self._edges.size or not np.array_equal(
                self._edges[: heel_strike_s.size], heel_strike_s):
            raise ValueError("heel strikes unknown before the trial")
        per_stride = self._per_stride[:strides].copy()
        if strides and strides in self._at_edge:  # histogram's last bin takes its edge
            per_stride[-1] += self._at_edge[strides]
        return Charge(self.pulses, self._total.value(), self._max, per_stride)


class _SwingCounts:
    """Samples with the peroneal channel on from each toe off (included) to the next
    heel strike after it (not included; the end of the rows if none)."""

    def __init__(self, toe_off_s: np.ndarray, heel_strike_s: np.ndarray) -> None:
        heel_strike_s = np.sort(heel_strike_s)
        self.start = np.sort(toe_off_s)
        following = np.searchsorted(heel_strike_s, self.start, side="right")
        self.end = np.append(heel_strike_s, np.inf)[following]
        self.counts = np.zeros(self.start.size, dtype=np.int64)

    def add(self, t_s: np.ndarray, on: np.ndarray) -> None:
        if not t_s.size:
            return
        # The swings these rows overlap: begun by their last, not ended by their first.
        first = int(np.searchsorted(self.end, t_s[0], side="right"))
        stop = int(np.searchsorted(self.start, t_s[-1], side="right"))
        if first >= stop:
            return
        delivering = np.concatenate(([0], np.cumsum(on > 0)))
        self.counts[first:stop] += (
            delivering[np.searchsorted(t_s, self.end[first:stop], side="left")]
            - delivering[np.searchsorted(t_s, self.start[first:stop], side="left")])

    def of(self, toe_off_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.start, toe_off_s)
        if toe_off_s.size and (at.max() >= self.start.size
                               or not np.array_equal(self.start[at], toe_off_s)):
            raise ValueError("toe offs unknown before the trial")
        # A swing's end among the events of the trial is the one known ahead, or (its
        # heel strike came after the last row) the end of the rows: the same samples.
        return self.counts[at]


#: Pieces a list of ``_keep`` holds before they are joined into one.
KEEP_PIECES = 256


def _keep(pieces: list[np.ndarray], piece: np.ndarray) -> None:
    """Append ``piece`` unless it is empty; join the pieces once there are
    ``KEEP_PIECES`` (rows added a few at a time, as a paced loop's writer adds them
    every 50 ms, would otherwise keep an array object per addition: 40 MB an hour)."""
    if piece.size:
        pieces.append(piece)
        if len(pieces) >= KEEP_PIECES:
            _joined(pieces)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces as one array (and kept as one)."""
    if len(pieces) != 1:
        joined = np.concatenate(pieces) if pieces else np.zeros(0)
        pieces[:] = [joined]
    return pieces[0]
