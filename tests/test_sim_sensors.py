"""Sensor signals: the gyro has its swing peak in swing, the heel switch follows contact."""

from __future__ import annotations

import numpy as np
import pytest

from sim.gait import HEEL_OFF, HEEL_STRIKE, MID_SWING, NEXT_HEEL_STRIKE, TOE_OFF, build_schedule
from sim.patient import load_patient
from sim.sensors import gyro_template, heel_force, heel_switch, sensor_params


@pytest.fixture(params=["healthy", "severe"])
def walk(request):
    profile = load_patient(request.param)
    sched = build_schedule(profile, 30.0, np.random.default_rng(3))
    return profile, sched.strides, sensor_params(profile)


def trace(strides, row, params, t):
    return np.array([gyro_template(strides, row, float(x), params) for x in t])


def test_gyro_swing_peak_lies_between_toe_off_and_heel_strike(walk):
    profile, strides, params = walk
    for row in range(1, strides.shape[0] - 1):
        r = strides[row]
        t = np.arange(r[HEEL_STRIKE], r[NEXT_HEEL_STRIKE], 1e-3)
        w = trace(strides, row, params, t)
        peak = t[np.argmax(w)]
        assert r[TOE_OFF] < peak < r[NEXT_HEEL_STRIKE]
        assert abs(peak - r[MID_SWING]) < 0.02
        assert w.max() == pytest.approx(profile.gyro_swing_peak_rad_s, rel=0.05)


def test_gyro_minima_at_toe_off_and_just_after_heel_strike(walk):
    _, strides, params = walk
    for row in range(1, strides.shape[0] - 2):
        r = strides[row]
        t = np.arange(r[TOE_OFF] - 0.15, r[MID_SWING], 1e-3)
        w = trace(strides, row, params, t)
        assert w.min() < 0.0
        assert abs(t[np.argmin(w)] - r[TOE_OFF]) < 0.03
        nxt = strides[row + 1]
        t = np.arange(nxt[HEEL_STRIKE], nxt[HEEL_STRIKE] + 0.15, 1e-3)
        w = trace(strides, row + 1, params, t)
        assert w.min() < 0.0
        assert 0.0 < t[np.argmin(w)] - nxt[HEEL_STRIKE] < 0.1


def test_gyro_is_small_and_positive_in_mid_stance(walk):
    profile, strides, params = walk
    r = strides[2]
    mid = r[HEEL_STRIKE] + 0.5 * (r[TOE_OFF] - r[HEEL_STRIKE])
    value = gyro_template(strides, 2, mid, params)
    assert 0.0 < value < 0.5 * profile.gyro_swing_peak_rad_s


def test_heel_switch_and_force_follow_heel_contact(walk):
    profile, strides, params = walk
    r = strides[3]
    inside = np.linspace(r[HEEL_STRIKE], r[HEEL_OFF], 50, endpoint=False)
    outside = np.linspace(r[HEEL_OFF], r[NEXT_HEEL_STRIKE], 50, endpoint=False)
    assert all(heel_switch(strides, 3, t) == 1 for t in inside)
    assert all(heel_switch(strides, 3, t) == 0 for t in outside)
    assert all(heel_force(strides, 3, t, params) == 0.0 for t in outside)
    peak = max(heel_force(strides, 3, t, params) for t in inside)
    assert peak == pytest.approx(profile.heel_load_fraction_bw * profile.body_mass_kg * 9.81)
