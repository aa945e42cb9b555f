"""The gait event schedule: stride times follow the cadence, events come in order."""

from __future__ import annotations

import numpy as np
import pytest

from sim.gait import (
    HEEL_OFF,
    HEEL_STRIKE,
    MID_SWING,
    NEXT_HEEL_STRIKE,
    TOE_OFF,
    build_schedule,
)
from sim.patient import load_patient


def schedule(name: str, duration_s: float = 120.0, seed: int = 11):
    return build_schedule(load_patient(name), duration_s, np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["healthy", "severe"])
def test_stride_times_follow_the_cadence(name):
    profile = load_patient(name)
    strides = schedule(name).strides
    durations = strides[:, NEXT_HEEL_STRIKE] - strides[:, HEEL_STRIKE]
    mean_s = 120.0 / profile.cadence_steps_per_min
    assert durations.mean() == pytest.approx(mean_s, rel=0.02)
    cv = durations.std() / durations.mean()
    assert cv == pytest.approx(profile.stride_time_cv, rel=0.35)
    swing = (strides[:, NEXT_HEEL_STRIKE] - strides[:, TOE_OFF]) / durations
    assert swing == pytest.approx(profile.swing_fraction)


def test_events_are_ordered_within_and_across_strides():
    strides = schedule("moderate").strides
    order = strides[:, [HEEL_STRIKE, HEEL_OFF, TOE_OFF, MID_SWING, NEXT_HEEL_STRIKE]]
    assert np.all(np.diff(order, axis=1) > 0.0)
    assert np.array_equal(strides[1:, HEEL_STRIKE], strides[:-1, NEXT_HEEL_STRIKE])
    mid = 0.5 * (strides[:, TOE_OFF] + strides[:, NEXT_HEEL_STRIKE])
    assert strides[:, MID_SWING] == pytest.approx(mid)


def test_true_events_cover_the_trial_in_order():
    sched = schedule("healthy", duration_s=20.0)
    events = sched.events()
    times = [t for t, _ in events]
    assert times == sorted(times)
    assert times[0] >= 0.0 and times[-1] < 20.0
    names = [e for _, e in events]
    cycle = ["heel_strike", "heel_off", "toe_off", "mid_swing"]
    start = names.index("heel_strike")
    for i, name in enumerate(names[start:]):
        assert name == cycle[i % 4]
    assert names.count("heel_strike") >= 17  # 20 s at 110 steps/min is about 18 strides


def test_gait_phase_of_sample_times():
    sched = schedule("healthy", duration_s=10.0)
    strides = sched.strides
    t = np.array([strides[2, HEEL_STRIKE], strides[2, TOE_OFF], strides[3, HEEL_STRIKE] - 1e-9])
    index, phase = sched.phase(t)
    assert list(index) == [2, 2, 2]
    assert phase[0] == 0.0
    assert phase[1] == pytest.approx(1.0 - load_patient("healthy").swing_fraction)
    assert phase[2] == pytest.approx(1.0)


def test_same_seed_same_schedule_other_seed_other_schedule():
    a, b, c = schedule("mild", seed=5), schedule("mild", seed=5), schedule("mild", seed=6)
    assert np.array_equal(a.strides, b.strides)
    assert not np.array_equal(a.strides, c.strides)
