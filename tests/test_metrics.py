"""Scoring functions: matching (``controller.detect.score``), onset errors, exact charge,
swing clearance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.detect.score import match_events
from controller.trial import metrics


def test_matching_is_one_to_one_and_closest_first():
    truth = np.array([1.0, 2.0, 3.0])
    found = np.array([1.03, 1.05, 2.2, 3.01, 5.0])
    pairs = match_events(truth, found, tolerance_s=0.1)
    assert pairs == [(0, 0), (2, 3)]


def test_error_stats_are_signed_median_and_absolute_p95():
    stats = metrics.error_stats_ms([-0.010, -0.010, 0.020])
    assert stats["median"] == pytest.approx(-10.0)
    assert stats["p95"] == pytest.approx(19.0)
    assert metrics.error_stats_ms([]) == {"median": None, "p95": None}


def test_onset_error_negative_when_stimulation_leads_toe_off():
    onsets = np.array([0.95, 2.02])
    toe_offs = np.array([1.0, 2.0, 3.0])
    errors, missed = metrics.onset_errors_s(onsets, toe_offs, window_s=0.3)
    assert errors == pytest.approx([-0.05, 0.02])
    assert missed == 1


def test_swing_minimum_uses_middle_of_swing_when_trimmed():
    t = np.arange(0.0, 2.0, 0.01)
    clearance = np.where((t > 0.5) & (t < 1.0), 20.0, 0.0)
    clearance[(t > 0.5) & (t < 0.52)] = -3.0  # toe scuffs right after toe off
    whole = metrics.swing_minima_mm(t, clearance, np.array([0.5]), np.array([0.0, 1.0]))
    middle = metrics.swing_minima_mm(
        t, clearance, np.array([0.5]), np.array([0.0, 1.0]), trim_fraction=0.15
    )
    assert whole.tolist() == [-3.0]
    assert middle.tolist() == [20.0]


def _dense_matches(true_s, detected_s, tolerance_s):
    """The definition: every pair within tolerance, closest first, each event once."""
    gaps = np.abs(true_s[:, None] - detected_s[None, :])
    candidates = np.argwhere(gaps <= tolerance_s)
    order = np.argsort(gaps[candidates[:, 0], candidates[:, 1]], kind="stable")
    used_true, used_det, pairs = set(), set(), []
    for i, j in candidates[order].tolist():
        if i not in used_true and j not in used_det:
            used_true.add(i)
            used_det.add(j)
            pairs.append((i, j))
    return sorted(pairs)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 400), max_size=30).map(lambda ks: np.array(ks) * 0.05),
    st.lists(st.integers(0, 400), max_size=30).map(lambda ks: np.array(ks) * 0.05 + 0.0125),
    st.sampled_from([0.0125, 0.05, 0.1, 0.2]),
)
def test_matching_by_search_pairs_as_comparing_every_pair(true_s, detected_s, tolerance_s):
    """Equal gaps, unsorted detections and gaps exactly at the tolerance included."""
    assert metrics.match_events(true_s, detected_s, tolerance_s) == _dense_matches(
        true_s, detected_s, tolerance_s
    )


def swing_minima_one_by_one(t_s, clearance_mm, toe_off_s, heel_strike_s, trim_fraction=0.0):
    """``metrics.swing_minima_mm`` as it was written first: one swing at a time."""
    minima = []
    heel_strike_s = np.sort(heel_strike_s)
    next_strike = np.searchsorted(heel_strike_s, toe_off_s, side="right")
    for start, k in zip(toe_off_s, next_strike, strict=True):
        if k >= heel_strike_s.size:
            continue
        end = heel_strike_s[k]
        margin = trim_fraction * (end - start)
        first = np.searchsorted(t_s, start + margin, side="left")
        last = np.searchsorted(t_s, end - margin, side="right")
        swing = clearance_mm[first:last]
        if swing.size and not np.isnan(swing).any():
            minima.append(float(swing.min()))
    return np.array(minima)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**32 - 1), st.integers(1, 400), st.integers(0, 12), st.integers(0, 12),
    st.sampled_from([0.0, 0.1, 0.25, 0.5]), st.booleans(),
)
def test_swing_minima_in_one_pass_as_one_by_one(seed, n, toe_offs, heel_strikes, trim, nans):
    rng = np.random.default_rng(seed)
    t_s = np.arange(n) * 0.01
    clearance = rng.normal(20.0, 10.0, n)
    if nans:
        clearance[rng.integers(0, n, 3)] = np.nan
    span = n * 0.01
    # Events anywhere, also before the first and after the last sample, in any order
    # (two toe offs before one heel strike: overlapping swings).
    toe_off_s = rng.uniform(-0.1 * span, 1.1 * span, toe_offs)
    heel_strike_s = rng.uniform(-0.1 * span, 1.1 * span, heel_strikes)
    got = metrics.swing_minima_mm(t_s, clearance, toe_off_s, heel_strike_s, trim)
    expected = swing_minima_one_by_one(t_s, clearance, toe_off_s, heel_strike_s, trim)
    assert got.dtype == np.float64 and got.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_matching_in_pieces_pairs_as_matching_at_once(monkeypatch, seed):
    # A day's matching is done a piece of true events at a time (memory); the errors are
    # those of match_events over everything: equal gaps (a detection halfway between two
    # true events, two detections either side of one), misses, extras, a tolerance
    # about as wide as the gaps it splits at.
    rng = np.random.default_rng(seed)
    tolerance_s = 0.1
    gaps = rng.choice([0.15, 0.2, 0.2000001, 0.25, 0.5, 1.0], size=400)
    true_s = np.cumsum(gaps)
    kept = rng.random(true_s.size) < 0.8
    offsets = rng.choice([-0.1, -0.05, 0.0, 0.05, 0.1, 0.1000001], size=int(kept.sum()))
    extra = rng.uniform(0.0, true_s[-1], size=40)
    found = rng.permutation(np.concatenate((true_s[kept] + offsets, extra,
                                            (true_s[:-1] + true_s[1:])[::7] / 2.0)))
    pairs = match_events(true_s, found, tolerance_s)
    whole = np.sort([found[j] - true_s[i] for i, j in pairs])
    monkeypatch.setattr(metrics, "MATCH_CHUNK", 16)
    pieces = np.sort(metrics.matched_errors(true_s, found, tolerance_s))
    np.testing.assert_array_equal(pieces, whole)
    assert whole.size > 200


def test_the_exact_charge_sum_does_not_depend_on_blocks_or_order():
    # A long trial's charge is summed as its rows pass, in blocks; its whole columns at
    # once. Both give the correctly rounded sum (math.fsum's), whatever the grouping:
    # numpy's pairwise sum of the same values depends on it. A NaN charge still shows.
    import math

    from controller.trial.scores import ExactSum, exact_sum

    rng = np.random.default_rng(1)
    values = np.concatenate((rng.uniform(0.0, 40.0, 5000), [1e-300, 5e-324, 1e16, -1e16]))
    whole = exact_sum(values)
    assert whole == math.fsum(values.tolist())
    pieces = ExactSum()
    for piece in np.array_split(rng.permutation(values), 37):
        pieces.add(piece)
    assert pieces.value() == whole
    pieces.add(np.array([np.nan]))
    assert math.isnan(pieces.value())
