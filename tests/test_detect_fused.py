"""The fused detector: the best of both sensors, and each one the fallback of the other."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.detect_signals import Signals, estimated, nearest_errors, simulated_walk, with_column

from controller.detect.detector import detect_batch, fused_setup
from controller.detect.fused import FusionConfig
from controller.detect.gyro import SHANK
from controller.detect.heel import HEEL_SWITCH
from controller.events import Event, Phase

RATE_HZ = 500.0
FAIL_AT_S = 15.0
#: The gyroscope's events are used once its mounting check has seen three strides (both
#: copies, 4-6 s of walking).
CHECKED_S = 8.0
#: A shank gyroscope dates heel strike at its first minimum after the swing, which on real
#: shanks comes 25 to 62 ms after the heel's impact (quartiles, Marpino walkers, contact
#: from the foot IMU; their pressure insoles see contact 65 ms after the impact:
#: python -m controller.bench.shank); the simulated shank's comes 27-46 ms after its
#: contact. Without the heel, the gyroscope's heel strikes must come within the real
#: window after the true ones: no earlier (a heel strike before contact would end the
#: train's extension early), no later.
GYRO_HEEL_STRIKE_S = (0.025, 0.0625)
SETUP = fused_setup(SHANK, HEEL_SWITCH, "switch", FusionConfig())


@pytest.fixture(scope="module")
def walk() -> Signals:
    return simulated_walk("moderate", 40.0, 11, RATE_HZ)


def detect(signals: Signals):
    return detect_batch(SETUP, signals.t_s, signals.gyro_rad_s, signals.heel_switch)


def after(times: np.ndarray, t0: float) -> np.ndarray:
    return times[times >= t0]


def after_known(events, t0: float):
    """The events that became known from ``t0`` on."""
    return [e for e in events if e.t_known_s >= t0]


def assert_each_once(events, truth: np.ndarray, kind: Event,
                     tolerance_s: float | tuple[float, float]) -> None:
    """Every true event of ``kind`` in ``truth`` found once within the tolerance: +- a
    time, or a (earliest, latest) window of the error."""
    found = estimated(events, kind)
    found = found[(found > truth[0] - 0.3) & (found < truth[-1] + 0.3)]
    assert found.size == truth.size, (kind, found, truth)
    errors = nearest_errors(found, truth)
    low, high = tolerance_s if isinstance(tolerance_s, tuple) else (-tolerance_s, tolerance_s)
    assert np.all((errors >= low) & (errors <= high)), (kind, errors)


def test_both_healthy_takes_heel_strike_from_the_heel_and_toe_off_from_the_gyro(walk):
    phases, events = detect(walk)
    t_lock = walk.t_s[np.flatnonzero(phases != Phase.UNKNOWN)[0]]
    assert t_lock < 0.5
    hs = after(walk.true_times(Event.HEEL_STRIKE), t_lock)
    to = after(walk.true_times(Event.TOE_OFF), CHECKED_S)
    assert_each_once(events, hs, Event.HEEL_STRIKE, 0.002 + 1.0 / RATE_HZ)
    assert_each_once(after_known(events, CHECKED_S), to, Event.TOE_OFF, 0.020)
    assert Phase.UNKNOWN not in phases[walk.t_s >= t_lock]
    assert all(e.t_est_s <= e.t_known_s + 1e-12 for e in events)


@pytest.mark.parametrize("fault", ["nan", "stuck"])
def test_gyro_dies_heel_carries_on(walk, fault):
    gyro = walk.gyro_rad_s.copy()
    gyro[walk.t_s >= FAIL_AT_S] = np.nan if fault == "nan" else 0.0
    phases, events = detect(with_column(walk, "gyro_rad_s", gyro))
    hs = after(walk.true_times(Event.HEEL_STRIKE), FAIL_AT_S)
    to = after(walk.true_times(Event.TOE_OFF), FAIL_AT_S)
    assert_each_once(events, hs, Event.HEEL_STRIKE, 0.002 + 1.0 / RATE_HZ)
    # Toe off now comes from the heel's estimate: less exact, never lost.
    assert_each_once(events, to, Event.TOE_OFF, 0.080)
    assert Phase.UNKNOWN not in phases[walk.t_s >= 1.0]
    # Stride by stride, the phase still goes through swing.
    assert np.count_nonzero(np.diff((phases == Phase.SWING).astype(int)) == 1) >= (
        walk.true_times(Event.TOE_OFF).size - 1
    )


@pytest.mark.parametrize(("fault", "lost_strides"), [("stuck_closed", 2), ("stuck_open", 0)])
def test_heel_switch_dies_gyro_carries_on(walk, fault, lost_strides):
    switch = walk.heel_switch.copy()
    switch[walk.t_s >= FAIL_AT_S] = 1.0 if fault == "stuck_closed" else 0.0
    phases, events = detect(with_column(walk, "heel_switch", switch))
    hs = after(walk.true_times(Event.HEEL_STRIKE), FAIL_AT_S)
    to = after(walk.true_times(Event.TOE_OFF), FAIL_AT_S)
    # A switch stuck closed looks like standing until the gyro has seen two strides.
    assert_each_once(events, hs[lost_strides:], Event.HEEL_STRIKE, GYRO_HEEL_STRIKE_S)
    assert_each_once(events, to[lost_strides:], Event.TOE_OFF, 0.020)
    assert Phase.UNKNOWN not in phases[walk.t_s >= 1.0]


def test_both_dead_is_unknown(walk):
    dead = with_column(walk, "gyro_rad_s", np.where(walk.t_s >= FAIL_AT_S, np.nan,
                                                    walk.gyro_rad_s))
    dead = with_column(dead, "heel_switch", np.where(walk.t_s >= FAIL_AT_S, np.nan,
                                                     walk.heel_switch))
    phases, events = detect(dead)
    limit = FAIL_AT_S + HEEL_SWITCH.unknown_after_missing_ms / 1000.0
    assert np.all(phases[walk.t_s > limit + 0.01] == Phase.UNKNOWN)
    assert all(e.t_known_s < limit + 0.01 for e in events)
