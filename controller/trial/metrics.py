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

from controller.detect.score import match_events
from controller.quantiles import median_and_percentiles

#: True events ``matched_errors`` matches at a time (at least; a piece ends only where
#: no detection can be matched across it).
MATCH_CHUNK = 4096


def matched_errors(true_s: np.ndarray, detected_s: np.ndarray, tolerance_s: float
                   ) -> np.ndarray:
    """``detected - true`` of the pairs ``match_events`` makes, in no particular order,
    matched a piece of at least ``MATCH_CHUNK`` true events at a time: the matching
    keeps a few Python objects per candidate pair (some 700 bytes a stride at once, 50
    MB at the end of a day's trial), a piece's only.

    The pairs are the same as matching all at once: a piece ends between two true events
    more than twice the tolerance apart, and takes the detections before the midpoint
    between them, which no true event of the next piece can reach (nor those after it
    one of this piece); pairs of different pieces never compete, and within a piece the
    detections keep their order (``match_events`` breaks equal gaps by it). Unsorted
    true times are matched at once."""
    true_s = np.asarray(true_s, dtype=np.float64)
    detected_s = np.asarray(detected_s, dtype=np.float64)
    if true_s.size <= MATCH_CHUNK or np.any(np.diff(true_s) < 0.0):
        return _pair_errors(true_s, detected_s, tolerance_s)
    order = np.argsort(detected_s, kind="stable")
    by_time = detected_s[order]
    apart = np.flatnonzero(np.diff(true_s) > 2.0 * tolerance_s) + 1  # may start a piece
    errors: list[np.ndarray] = []
    first, low_s = 0, -np.inf
    while first < true_s.size:
        at = int(np.searchsorted(apart, first + MATCH_CHUNK, side="left"))
        stop = int(apart[at]) if at < apart.size else true_s.size
        high_s = (true_s[stop - 1] + true_s[stop]) / 2.0 if stop < true_s.size else np.inf
        lo = int(np.searchsorted(by_time, low_s, side="left"))
        hi = int(np.searchsorted(by_time, high_s, side="left"))
        ours = np.sort(order[lo:hi])  # the piece's detections in their own order
        errors.append(_pair_errors(true_s[first:stop], detected_s[ours], tolerance_s))
        first, low_s = stop, high_s
    return np.concatenate(errors)


def _pair_errors(true_s: np.ndarray, detected_s: np.ndarray, tolerance_s: float
                 ) -> np.ndarray:
    pairs = match_events(true_s, detected_s, tolerance_s)
    if not pairs:
        return np.zeros(0)
    index = np.array(pairs, dtype=np.int64)
    return detected_s[index[:, 1]] - true_s[index[:, 0]]


def error_stats_ms(errors_s: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """``{median, p95}`` in ms: median signed error and p95 of the absolute error."""
    values = np.asarray(errors_s, dtype=float) * 1000.0
    if values.size == 0:
        return {"median": None, "p95": None}
    [median] = median_and_percentiles(values, ())
    _, p95 = median_and_percentiles(np.abs(values), 95)
    return {"median": median, "p95": p95}


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
    heel_strike_s = np.sort(heel_strike_s)
    next_strike = np.searchsorted(heel_strike_s, toe_off_s, side="right")
    complete = next_strike < heel_strike_s.size
    start = np.asarray(toe_off_s, dtype=np.float64)[complete]
    end = heel_strike_s[next_strike[complete]].astype(np.float64)
    margin = trim_fraction * (end - start)
    # ``t_s`` rises: the samples in [start + margin, end - margin] are one slice.
    firsts = np.searchsorted(t_s, start + margin, side="left")
    lasts = np.searchsorted(t_s, end - margin, side="right")
    scored = firsts < lasts
    firsts, lasts = firsts[scored], lasts[scored]
    if not firsts.size:
        return np.array([])
    # Every swing's minimum in one pass: ``reduceat`` over the interleaved bounds takes
    # each swing's slice at the even places (what lies between a swing's end and the
    # next one's start, at the odd places, is dropped); a NaN in a swing makes its
    # minimum NaN, and the swing is not scored.
    values = np.asarray(clearance_mm, dtype=np.float64)
    if lasts.max() >= values.size:  # a slice up to the end: ``reduceat`` needs an index
        values = np.append(values, np.nan)
    bounds = np.empty(2 * firsts.size, dtype=np.intp)
    bounds[0::2], bounds[1::2] = firsts, lasts
    minima = np.minimum.reduceat(values, bounds)[0::2]
    return minima[~np.isnan(minima)]


def values_before(t_s: np.ndarray, values: np.ndarray, events_s: np.ndarray) -> np.ndarray:
    """``values`` at the last sample before each event inside the recording.

    At a heel strike this is the foot still in the air: the landing posture.
    """
    if not t_s.size:
        return values[:0]
    index = np.searchsorted(t_s, events_s, side="left") - 1
    return values[index[(index >= 0) & (events_s <= t_s[-1])]]
