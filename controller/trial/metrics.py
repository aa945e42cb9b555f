"""Scores of a trial against the ground truth: detection, stimulation timing, charge,
toe clearance.

Pure functions of arrays, so they serve live trials, simulated trials and offline
recordings alike. Timing errors are signed, detected minus true (positive = late); a
``{median, p95}`` block gives the median of the signed error (the bias) and the 95th
percentile of its absolute value (the spread a user has to live with).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def error_stats_ms(errors_s: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """``{median, p95}`` in ms: median signed error and p95 of the absolute error."""
    values = np.asarray(errors_s, dtype=float) * 1000.0
    if values.size == 0:
        return {"median": None, "p95": None}
    return {
        "median": float(np.median(values)),
        "p95": float(np.percentile(np.abs(values), 95)),
    }


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
    for i, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        for j in sorted(by_time[start:stop].tolist()):
            if abs(true_s[i] - detected_s[j]) <= tolerance_s:
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


def rising_edges(t_s: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Times at which ``flag`` switches from 0 to 1 (the first sample counts if on)."""
    on = flag > 0.5
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    return t_s[starts]


def falling_edges(t_s: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Times of the first sample at which ``flag`` is 0 again after being 1."""
    on = flag > 0.5
    ends = np.flatnonzero(on[:-1] & ~on[1:]) + 1
    return t_s[ends]


def onset_errors_s(
    onsets_s: np.ndarray, toe_off_s: np.ndarray, window_s: float
) -> tuple[np.ndarray, int]:
    """Signed onset error for each true toe off with an onset within ``window_s``.

    Returns the errors (onset minus toe off) and the number of toe offs that had no
    stimulation onset near them.
    """
    pairs = match_events(toe_off_s, onsets_s, window_s)
    errors = np.array([onsets_s[j] - toe_off_s[i] for i, j in pairs])
    return errors, int(toe_off_s.size - len(pairs))


def swing_minima_mm(
    t_s: np.ndarray,
    clearance_mm: np.ndarray,
    toe_off_s: np.ndarray,
    heel_strike_s: np.ndarray,
    trim_fraction: float = 0.0,
) -> np.ndarray:
    """Minimum toe clearance of every complete true swing (toe off to next heel strike).

    ``trim_fraction`` leaves out that fraction of the swing at each end: at toe off and
    heel strike the foot touches the ground by definition, so the minimum toe clearance
    of gait analysis (Winter 1992) is taken over the middle of swing. A swing with a
    missing (NaN) clearance sample is not scored: its minimum is unknown.
    """
    minima = []
    heel_strike_s = np.sort(heel_strike_s)
    next_strike = np.searchsorted(heel_strike_s, toe_off_s, side="right")
    for start, following in zip(toe_off_s.tolist(), next_strike.tolist(), strict=True):
        if following >= heel_strike_s.size:
            continue
        end = float(heel_strike_s[following])
        margin = trim_fraction * (end - start)
        # ``t_s`` rises: the samples in [start + margin, end - margin] are one slice.
        first = int(np.searchsorted(t_s, start + margin, side="left"))
        last = int(np.searchsorted(t_s, end - margin, side="right"))
        swing = clearance_mm[first:last]
        if swing.size and not np.isnan(swing).any():
            minima.append(float(swing.min()))
    return np.array(minima)


def values_before(t_s: np.ndarray, values: np.ndarray, events_s: np.ndarray) -> np.ndarray:
    """``values`` at the last sample before each event inside the recording.

    At a heel strike this is the foot still in the air: the landing posture.
    """
    if not t_s.size:
        return values[:0]
    index = np.searchsorted(t_s, events_s, side="left") - 1
    return values[index[(index >= 0) & (events_s <= t_s[-1])]]
