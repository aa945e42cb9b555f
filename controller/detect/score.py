"""Scoring detected gait events against reference events: recall, precision, timing.

Events of one kind are matched one to one within a tolerance, closest pairs first
(``match_events``). A recording can restrict scoring to a time
window and exclude stretches inside it (the U-turn of a walk-and-turn trial): reference
events there are not counted as missed, detections there are not counted as false, and a
detection matched to a reference event outside the scored time is not counted at all.
Counts and errors add up over recordings, so a whole dataset gets one pooled score.

Timing errors are detected minus reference (negative = early), in ms. Each event kind
gets the median signed error (the bias), the median and 95th percentile of the absolute
error, the detection latency (the time from the estimated event to the sample at which
it was reported), median and 95th percentile, and the latest announcement: the longest
time from a reference event to the sample at which its match was reported (error plus
latency). Tallies add up (``pooled``), so per-walker tallies give a pooled score and,
with ``bias_spread_ms``, how much the bias moves from walker to walker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.events import EVENT_NAMES, DetectedEvent, Event

#: The events that time stimulation, scored by default.
SCORED_EVENTS = (Event.HEEL_STRIKE, Event.TOE_OFF)


def match_events(
    true_s: np.ndarray, detected_s: np.ndarray, tolerance_s: float
) -> list[tuple[int, int]]:
    """One-to-one pairs (true index, detected index) within ``tolerance_s``.

    Pairs are taken closest first, so a detection is credited to the true event it is
    nearest to and never to two events (equal gaps: the lower true index first, then
    the lower detected index). Candidates are found by binary search in the sorted
    detections, so a day of strides costs no more than its events.
    """
    true_s = np.asarray(true_s, dtype=float)
    detected_s = np.asarray(detected_s, dtype=float)
    if true_s.size == 0 or detected_s.size == 0:
        return []
    by_time = np.argsort(detected_s, kind="stable")
    sorted_s = detected_s[by_time]
    # Searched a microsecond wider, then checked exactly: the same pairs as comparing
    # every true event with every detection.
    starts = np.searchsorted(sorted_s, true_s - (tolerance_s + 1e-6), side="left")
    stops = np.searchsorted(sorted_s, true_s + (tolerance_s + 1e-6), side="right")
    rows: list[int] = []
    cols: list[int] = []
    # Python floats: the same IEEE doubles as NumPy's scalars, a tenth of the cost each.
    true_list, detected_list, order_list = true_s.tolist(), detected_s.tolist(), by_time.tolist()
    for i, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        for j in sorted(order_list[start:stop]):
            if abs(true_list[i] - detected_list[j]) <= tolerance_s:
                rows.append(i)
                cols.append(j)
    if not rows:
        return []
    candidates = np.array([rows, cols]).T
    gaps = np.abs(true_s[candidates[:, 0]] - detected_s[candidates[:, 1]])
    order = np.argsort(gaps, kind="stable")
    used_true: set[int] = set()
    used_det: set[int] = set()
    pairs = []
    for i, j in candidates[order].tolist():
        if i not in used_true and j not in used_det:
            used_true.add(i)
            used_det.add(j)
            pairs.append((i, j))
    return sorted(pairs)


@dataclass(frozen=True)
class ScoringWindow:
    """The time that counts: ``[start_s, end_s]`` minus the ``excluded`` stretches."""

    start_s: float = -np.inf
    end_s: float = np.inf
    excluded: tuple[tuple[float, float], ...] = ()

    def contains(self, t_s: np.ndarray) -> np.ndarray:
        """Mask of the times that are scored."""
        t = np.asarray(t_s, dtype=float)
        inside = (t >= self.start_s) & (t <= self.end_s)
        for start, end in self.excluded:
            inside &= ~((t >= start) & (t <= end))
        return inside


@dataclass
class EventTally:
    """Running counts and errors of one event kind, over one or more recordings."""

    reference: int = 0
    detected: int = 0
    matched: int = 0
    errors_s: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)

    def __add__(self, other: EventTally) -> EventTally:
        return EventTally(
            self.reference + other.reference,
            self.detected + other.detected,
            self.matched + other.matched,
            self.errors_s + other.errors_s,
            self.latencies_s + other.latencies_s,
        )

    def add(
        self,
        reference_s: np.ndarray,
        detected: Sequence[DetectedEvent],
        tolerance_s: float,
        window: ScoringWindow,
    ) -> None:
        """Score one recording's events of this kind."""
        estimated = np.array([d.t_est_s for d in detected])
        latency = np.array([d.latency_s for d in detected])
        ref_in = window.contains(reference_s)
        det_in = window.contains(estimated)
        pairs = match_events(reference_s, estimated, tolerance_s)
        matched_det = np.zeros(estimated.size, dtype=bool)
        for i, j in pairs:
            matched_det[j] = True
            if ref_in[i]:
                self.matched += 1
                self.detected += 1
                self.errors_s.append(float(estimated[j] - reference_s[i]))
                self.latencies_s.append(float(latency[j]))
        self.reference += int(ref_in.sum())
        self.detected += int((det_in & ~matched_det).sum())

    def summary(self) -> dict[str, float | int | None]:
        """Recall, precision and timing in ms (None where there is nothing to measure)."""
        errors = np.array(self.errors_s) * 1000.0
        latencies = np.array(self.latencies_s) * 1000.0

        def stat(values: np.ndarray, q: float | None = None) -> float | None:
            if values.size == 0:
                return None
            return round(float(np.median(values) if q is None else np.percentile(values, q)), 3)

        return {
            "reference": self.reference,
            "detected": self.detected,
            "matched": self.matched,
            "recall": round(self.matched / self.reference, 4) if self.reference else None,
            "precision": round(self.matched / self.detected, 4) if self.detected else None,
            "median_error_ms": stat(errors),
            "median_abs_error_ms": stat(np.abs(errors)),
            "p95_abs_error_ms": stat(np.abs(errors), 95),
            "median_latency_ms": stat(latencies),
            "p95_latency_ms": stat(latencies, 95),
            "max_announced_after_ms": stat(errors + latencies, 100),
        }


class Scorer:
    """Tallies of each scored event kind, fed recording by recording."""

    def __init__(self, tolerance_s: float, kinds: Iterable[Event] = SCORED_EVENTS) -> None:
        if not tolerance_s > 0.0:
            raise ValueError(f"tolerance must be positive, got {tolerance_s} s")
        self.tolerance_s = tolerance_s
        self.tallies = {kind: EventTally() for kind in kinds}

    def add(
        self,
        reference: Sequence[tuple[float, Event]],
        detected: Sequence[DetectedEvent],
        window: ScoringWindow | None = None,
    ) -> None:
        """Score one recording: reference events as (time, kind), detected events."""
        window = window or ScoringWindow()
        for kind, tally in self.tallies.items():
            ref = np.array([t for t, e in reference if e == kind])
            tally.add(ref, [d for d in detected if d.event == kind], self.tolerance_s, window)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per event name, the figures of ``EventTally.summary``."""
        return {EVENT_NAMES[kind]: tally.summary() for kind, tally in self.tallies.items()}


def pooled(scorers: Iterable[Scorer]) -> Scorer:
    """One scorer holding the tallies of all ``scorers`` (same tolerance and kinds)."""
    scorers = list(scorers)
    if not scorers:
        raise ValueError("nothing to pool")
    out = Scorer(scorers[0].tolerance_s, scorers[0].tallies)
    for scorer in scorers:
        for kind, tally in scorer.tallies.items():
            out.tallies[kind] = out.tallies[kind] + tally
    return out


def bias_spread_ms(scorers: Iterable[Scorer]) -> dict[str, float | None]:
    """Per event name, the largest minus the smallest median signed error among
    ``scorers`` (one per walker), walkers without a matched event left out."""
    biases: dict[str, list[float]] = {}
    for scorer in scorers:
        for name, summary in scorer.summary().items():
            bias = summary["median_error_ms"]
            biases.setdefault(name, [])
            if bias is not None:
                biases[name].append(float(bias))
    return {name: round(max(b) - min(b), 3) if b else None for name, b in biases.items()}
