"""The gait event schedule: stride times follow the cadence, events come in order, and
the walking course (standing, speed changes, turns) does what the profile asks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.gait import (
    HEEL_OFF,
    HEEL_STRIKE,
    MID_SWING,
    NEXT_HEEL_STRIKE,
    PAUSE_RAMP_S,
    SPEED,
    STANCE_S,
    TOE_OFF,
    TURN_END,
    TURN_PEAK_YAW,
    TURN_START,
    build_schedule,
    stance_clock,
    yaw_rate,
)
from sim.patient import load_patient

#: A walk with stops, speed changes and turns, derived from the moderate profile.
COURSE = {
    "bout_mean_strides": 12.0,
    "standing_mean_s": 4.0,
    "bout_speed_sd_m_s": 0.15,
    "turn_interval_mean_strides": 7.0,
}


def schedule(name: str, duration_s: float = 120.0, seed: int = 11, **course: float):
    profile = load_patient(name).model_copy(update=course)
    return build_schedule(profile, duration_s, seed)


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


@pytest.mark.parametrize("course", [{}, COURSE], ids=["continuous", "course"])
def test_events_are_ordered_within_and_across_strides(course):
    strides = schedule("moderate", **course).strides
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
    a, b, c = (schedule("mild", seed=s, **COURSE) for s in (5, 5, 6))
    assert np.array_equal(a.strides, b.strides)
    assert not np.array_equal(a.strides, c.strides)


def test_a_short_walk_is_a_prefix_of_a_long_one_also_with_a_course():
    short, long = schedule("mild", 40.0, **COURSE), schedule("mild", 200.0, **COURSE)
    assert short.events() == [e for e in long.events() if e[0] < 40.0]


def test_the_walker_stands_between_bouts_for_about_the_asked_time():
    sched = schedule("moderate", duration_s=300.0, **COURSE)
    standing = sched.standing()
    assert len(standing) >= 8
    lengths = np.array([b - a for a, b in standing])
    assert lengths.min() >= 0.5 * COURSE["standing_mean_s"] - 1e-9
    assert lengths.max() <= 1.5 * COURSE["standing_mean_s"] + 1e-9
    strides = sched.strides
    for start, end in standing:
        # No event while standing: the stance clock stops at the standing posture.
        assert not any(start < t < end for t, _ in sched.events())
        row = np.searchsorted(strides[:, HEEL_STRIKE], start) - 1
        phases = [stance_clock(strides, row, t) for t in np.linspace(start, end, 20)]
        assert {round(p, 12) for p, _ in phases} == {round(phases[0][0], 12)}
        assert all(rate == 0.0 for _, rate in phases)
        # The stopping and the starting stride are slower than their bouts.
        straight = strides[row - 2: row + 2, TURN_PEAK_YAW] == 0.0
        if straight.all():
            assert strides[row, SPEED] < strides[row + 1, SPEED]
            assert strides[row - 1, SPEED] < strides[row - 2, SPEED]


def test_stance_clock_is_continuous_through_a_stop():
    sched = schedule("moderate", duration_s=120.0, **COURSE)
    strides = sched.strides
    start, _end = sched.standing()[0]
    row = np.searchsorted(strides[:, HEEL_STRIKE], start) - 1
    t = np.arange(strides[row, HEEL_STRIKE], strides[row, TOE_OFF], 1e-4)
    phase = np.array([stance_clock(strides, row, x)[0] for x in t])
    assert phase[0] == pytest.approx(0.0) and phase[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(phase) >= -1e-12)
    assert np.abs(np.diff(phase)).max() < 2e-4 / strides[row, STANCE_S]


def test_turns_slow_the_strides_and_turn_the_body_by_the_turn_angle():
    profile = load_patient("moderate").model_copy(update=COURSE)
    sched = build_schedule(profile, 300.0, 11)
    strides = sched.strides
    turning = strides[:, TURN_PEAK_YAW] != 0.0
    assert 25 <= turning.sum() <= 60  # a turn of 2 strides about every 7 strides
    assert strides[turning, SPEED].mean() < 0.8 * strides[~turning, SPEED].mean()
    # Integrating the yaw rate over each turn gives the turn angle.
    for begin in np.unique(strides[turning, TURN_START]):
        row = int(np.flatnonzero(strides[:, TURN_START] == begin)[0])
        t = np.linspace(begin, strides[row, TURN_END], 4001)[:-1]
        rows = np.searchsorted(strides[:, HEEL_STRIKE], t, side="right") - 1
        yaw = np.array([yaw_rate(strides, int(r), x) for r, x in zip(rows, t, strict=True)])
        turned = abs(yaw.sum() * (t[1] - t[0]))
        assert turned == pytest.approx(math.radians(profile.turn_angle_deg), rel=1e-3)
    # Both directions occur, the inner leg stepping slower than the outer one.
    left, right = strides[:, TURN_PEAK_YAW] > 0.0, strides[:, TURN_PEAK_YAW] < 0.0
    assert left.any() and right.any()
    assert strides[left, SPEED].mean() < strides[right, SPEED].mean()


def test_bout_speeds_scatter_and_shorten_faster_strides():
    sched = schedule("moderate", duration_s=600.0, **COURSE)
    strides = sched.strides
    speed = strides[:, SPEED]
    durations = strides[:, NEXT_HEEL_STRIKE] - strides[:, HEEL_STRIKE]
    straight = (strides[:, TURN_PEAK_YAW] == 0.0) & (strides[:, PAUSE_RAMP_S] == 0.0)
    assert speed[straight].std() > 0.05
    assert np.corrcoef(speed[straight], durations[straight])[0, 1] < -0.3
