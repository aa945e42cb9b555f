"""Tests of the shank-gyroscope gait-phase detector on synthetic, seeded signals.

A stride of the synthetic shank signal has the shape of a real shank (Aminian et al.
2002; Catalfamo et al. 2010; the Marpino walkers, docs/detection.md): a large positive
peak in swing, a dip just after heel strike, a negative plateau through stance (the shank
turns backward over the planted foot) deepening into the toe-off dip; for a healthy
walker, relative to the swing peak, heel-strike dip -0.4, plateau -0.2, toe-off dip
-0.55. The true heel strike is the minimum of the noise-free heel-strike dip and the true
toe off the point where the noise-free signal, rising from its toe-off dip, crosses 0.8
of it: where the shank configuration dates them, so these tests pin the state machine,
and tests/test_detect_real_data.py and the evaluation pin the accuracy against
reference events. The mounting check is off here (it holds events back for three
strides); tests/test_detect_mounting.py tests it.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.shank_walks import CONFIG, PATHOLOGICAL, bump, walk
from pydantic import ValidationError

from controller.detect.detector import GyroDetector, detect_batch, gyro_setup
from controller.detect.gyro import (
    GyroDetectorConfig,
    gyro_step,
    make_params,
    new_state,
)
from controller.events import DetectedEvent, Event, Phase
from controller.validation import describe_errors

RATES_HZ = (100.0, 250.0, 1000.0)


def standing(rate_hz: float, duration_s: float, seed: int, clonus_rad_s: float) -> np.ndarray:
    """Time base and gyro of standing still with noise and a 6 Hz clonus."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration_s, 1.0 / rate_hz)
    gyro = clonus_rad_s * np.sin(2.0 * np.pi * 6.0 * t + 0.3) + 0.05 * rng.standard_normal(t.size)
    return np.stack([t, gyro])


def detect_gyro(
    t_s: np.ndarray, gyro_rad_s: np.ndarray, config: GyroDetectorConfig
) -> tuple[np.ndarray, list[DetectedEvent]]:
    """The batch gyroscope detector."""
    return detect_batch(gyro_setup(config), t_s, gyro_rad_s)


def times(events: list[DetectedEvent], kind: Event) -> np.ndarray:
    return np.array([e.t_est_s for e in events if e.event == kind])


def assert_matched(estimated: np.ndarray, true: np.ndarray, tolerance_s: float) -> None:
    """Each true event detected exactly once within the tolerance, nothing else."""
    assert estimated.size == true.size, (estimated, true)
    errors = np.abs(estimated - true)
    assert errors.max() <= tolerance_s + 1e-9, errors.max()


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_walk_every_event_once_within_20_ms(rate_hz: float, seed: int) -> None:
    w = walk(rate_hz, 25, seed)
    phases, events = detect_gyro(w.t_s, w.gyro_rad_s, CONFIG)
    assert_matched(times(events, Event.TOE_OFF), w.toe_off_s, 0.020)
    assert_matched(times(events, Event.HEEL_STRIKE), w.heel_strike_s, 0.020)
    assert_matched(times(events, Event.MID_SWING), w.mid_swing_s, 0.020)
    # One stride = TOE_OFF, MID_SWING, HEEL_STRIKE in this order; known after they happen.
    kinds = [e.event for e in events]
    assert kinds == [Event.TOE_OFF, Event.MID_SWING, Event.HEEL_STRIKE] * 25
    assert all(0.0 <= e.latency_s < 0.2 for e in events)
    # Locked on while standing before the first step, stance again at the end.
    assert phases[int(0.5 * rate_hz)] == Phase.STANCE
    assert phases[-1] == Phase.STANCE


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_phases_follow_the_stride(rate_hz: float) -> None:
    w = walk(rate_hz, 10, 7)
    phases, events = detect_gyro(w.t_s, w.gyro_rad_s, CONFIG)
    for e in events:
        i = int(np.searchsorted(w.t_s, e.t_known_s))
        expected = {
            Event.TOE_OFF: Phase.SWING,
            Event.MID_SWING: Phase.SWING,
            Event.HEEL_STRIKE: Phase.LOADING,
        }
        assert phases[i] == expected[e.event]
        assert phases[i - 1] != phases[i] or e.event == Event.MID_SWING
    # Half way between two events the phase is the obvious one.
    for to, hs in zip(w.toe_off_s, w.heel_strike_s, strict=True):
        assert phases[int(np.searchsorted(w.t_s, to - 0.02))] == Phase.PRE_SWING
        assert phases[int(np.searchsorted(w.t_s, (to + hs) / 2))] == Phase.SWING
        assert phases[int(np.searchsorted(w.t_s, hs + 0.3))] == Phase.STANCE
    assert Phase.UNKNOWN not in phases[int(0.5 * rate_hz) :]


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("seed", [1, 2])
def test_pathological_low_amplitude_gait_detected(rate_hz: float, seed: int) -> None:
    w = walk(rate_hz, 25, seed, gait=PATHOLOGICAL)
    _, events = detect_gyro(w.t_s, w.gyro_rad_s, CONFIG)
    # Shallow dips make the minimum flatter: a little more timing slack than healthy gait.
    assert_matched(times(events, Event.TOE_OFF), w.toe_off_s, 0.030)
    assert_matched(times(events, Event.HEEL_STRIKE), w.heel_strike_s, 0.030)
    assert_matched(times(events, Event.MID_SWING), w.mid_swing_s, 0.040)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_starting_mid_walk_locks_on_within_a_stride(rate_hz: float) -> None:
    w = walk(rate_hz, 12, 4, stand_before_s=0.0)
    start = int(0.3 * rate_hz)  # begin in the middle of the first swing
    phases, events = detect_gyro(w.t_s[start:], w.gyro_rad_s[start:], CONFIG)
    assert phases[0] == Phase.UNKNOWN
    assert_matched(times(events, Event.TOE_OFF), w.toe_off_s[1:], 0.020)
    assert_matched(times(events, Event.HEEL_STRIKE), w.heel_strike_s[1:], 0.020)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("clonus_rad_s", [0.0, 0.8])
def test_standing_and_clonus_give_no_swing(rate_hz: float, clonus_rad_s: float) -> None:
    t, gyro = standing(rate_hz, 20.0, 5, clonus_rad_s)
    phases, events = detect_gyro(t, gyro, CONFIG)
    assert events == []
    assert Phase.SWING not in phases
    assert phases[-1] == Phase.STANCE
    # A clonus can open at most one pre-swing (its first dip), never a train of them.
    starts = np.count_nonzero(np.diff((phases == Phase.PRE_SWING).astype(int)) == 1)
    assert starts <= 1


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_missing_data_gives_unknown_then_recovers(rate_hz: float) -> None:
    w = walk(rate_hz, 12, 6)
    gyro = w.gyro_rad_s.copy()
    gap_start_s = w.toe_off_s[4] + 0.1  # in mid swing: the detector was in SWING
    gap_end_s = gap_start_s + 0.5
    gap = (w.t_s >= gap_start_s) & (w.t_s < gap_end_s)
    gyro[gap] = np.nan
    phases, events = detect_gyro(w.t_s, gyro, CONFIG)
    limit_s = CONFIG.unknown_after_missing_ms / 1000.0
    last_good_s = w.t_s[np.flatnonzero(gap)[0] - 1]
    held = gap & (w.t_s - last_good_s <= limit_s - 1e-9)
    lost = gap & (w.t_s - last_good_s > limit_s + 1e-9)
    assert np.all(phases[held] == Phase.SWING)
    assert np.all(phases[lost] == Phase.UNKNOWN)
    assert phases[np.flatnonzero(gap)[-1] + 1] == Phase.UNKNOWN
    # Only the heel strike inside the gap is lost; the detector locks on again in the
    # stance after the gap, in time for the next toe off.
    assert_matched(times(events, Event.TOE_OFF), w.toe_off_s, 0.020)
    kept = (w.heel_strike_s < gap_start_s) | (w.heel_strike_s >= gap_end_s)
    assert_matched(times(events, Event.HEEL_STRIKE), w.heel_strike_s[kept], 0.020)
    assert phases[-1] == Phase.STANCE


def test_short_dropout_holds_the_phase() -> None:
    rate_hz = 200.0
    w = walk(rate_hz, 8, 8)
    gyro = w.gyro_rad_s.copy()
    gap = (w.t_s >= w.toe_off_s[3] + 0.2) & (w.t_s < w.toe_off_s[3] + 0.25)
    gyro[gap] = np.nan
    phases, events = detect_gyro(w.t_s, gyro, CONFIG)
    assert np.all(phases[gap] == Phase.SWING)
    assert Phase.UNKNOWN not in phases[int(0.5 * rate_hz) :]
    assert_matched(times(events, Event.HEEL_STRIKE), w.heel_strike_s, 0.020)


def test_saturation_longer_than_the_limit_gives_unknown() -> None:
    rate_hz = 500.0
    t, gyro = standing(rate_hz, 3.0, 9, 0.0)
    rail = (t >= 1.0) & (t < 1.5)
    gyro[rail] = CONFIG.saturation_rad_s
    phases, events = detect_gyro(t, gyro, CONFIG)
    assert events == []
    assert phases[int(0.99 * rate_hz)] == Phase.STANCE
    assert phases[int(1.05 * rate_hz)] == Phase.STANCE  # a short saturation is held
    assert np.all(phases[int(1.11 * rate_hz) : int(1.5 * rate_hz)] == Phase.UNKNOWN)
    assert phases[-1] == Phase.STANCE  # quiet standing locks on again


def test_swing_without_heel_strike_times_out_to_unknown() -> None:
    rate_hz = 200.0
    t = np.arange(0.0, 4.0, 1.0 / rate_hz)
    # Toe off and a swing peak, then the signal stays at 2 rad/s: no heel strike ever.
    gyro = bump(t, 1.0, -2.0, 0.04) + bump(t, 1.2, 3.0, 0.08) + 2.0 * (t > 1.2)
    phases, events = detect_gyro(t, gyro, CONFIG)
    assert [e.event for e in events] == [Event.TOE_OFF, Event.MID_SWING]
    swing_start = events[0].t_known_s
    timeout_s = CONFIG.max_swing_ms / 1000.0
    assert phases[int((swing_start + timeout_s - 0.02) * rate_hz)] == Phase.SWING
    assert np.all(phases[int((swing_start + timeout_s + 0.02) * rate_hz) :] == Phase.UNKNOWN)


def test_a_jerk_after_walking_is_no_swing_a_small_step_is_one() -> None:
    """Standing after a walk: a jerk (a spasm: under 100 ms above the hold level, like a
    beat of clonus) gives nothing; a small last step (swing peak 1.6 rad/s, a third of the
    walk's) is found, toe off, mid swing and heel strike."""
    rate_hz = 200.0
    w = walk(rate_hz, 8, 10)
    extra_s = 3.0
    t = np.concatenate((w.t_s, w.t_s[-1] + np.arange(1, int(extra_s * rate_hz)) / rate_hz))
    at = w.t_s[-1] + 1.0
    jerk = bump(t, at, -0.8, 0.02) + bump(t, at + 0.06, 1.6, 0.025)
    gyro = np.concatenate((w.gyro_rad_s, np.zeros(t.size - w.t_s.size))) + jerk
    phases, events = detect_gyro(t, gyro, CONFIG)
    assert [e for e in events if e.t_known_s > w.t_s[-1]] == []
    assert phases[-1] == Phase.STANCE
    step = bump(t, at, -0.7, 0.05) + bump(t, at + 0.2, 1.6, 0.09)
    step += bump(t, at + 0.45, -0.6, 0.03)
    gyro = np.concatenate((w.gyro_rad_s, np.zeros(t.size - w.t_s.size))) + step
    _, events = detect_gyro(t, gyro, CONFIG)
    late = [e.event for e in events if e.t_known_s > w.t_s[-1]]
    assert late == [Event.TOE_OFF, Event.MID_SWING, Event.HEEL_STRIKE]


def test_threshold_follows_a_walker_who_slows_down() -> None:
    rate_hz = 200.0
    fast = walk(rate_hz, 10, 11, stand_after_s=0.0)
    slow = walk(rate_hz, 10, 12, gait=PATHOLOGICAL, stand_before_s=0.0)
    offset = fast.t_s[-1] + 1.0 / rate_hz + 0.3
    t = np.concatenate((fast.t_s, slow.t_s + offset))
    gyro = np.concatenate((fast.gyro_rad_s, slow.gyro_rad_s))
    _, events = detect_gyro(t, gyro, CONFIG)
    hs = times(events, Event.HEEL_STRIKE)
    slow_hs = slow.heel_strike_s + offset
    found = [np.min(np.abs(hs - x)) < 0.03 for x in slow_hs]
    assert all(found[3:]), found  # at most the first few weak strides are rejected


@pytest.mark.parametrize("rate_hz", [100.0, 1000.0])
def test_per_sample_detector_equals_batch(rate_hz: float) -> None:
    w = walk(rate_hz, 6, 13)
    gyro = w.gyro_rad_s.copy()
    gyro[int(3.0 * rate_hz) : int(3.3 * rate_hz)] = np.nan
    phases, events = detect_gyro(w.t_s, gyro, CONFIG)
    detector = GyroDetector(CONFIG, rate_hz)
    assert detector.phase == Phase.UNKNOWN
    step_phases = []
    step_events: list[DetectedEvent] = []
    for t_s, g in zip(w.t_s, gyro, strict=True):
        phase, new = detector.step(float(t_s), float(g))
        assert isinstance(phase, Phase)
        assert detector.phase == phase
        step_phases.append(phase)
        step_events += new
    assert np.array_equal(np.array(step_phases, dtype=np.int8), phases)
    assert step_events == events
    assert phases.dtype == np.int8
    detector.reset()
    assert detector.phase == Phase.UNKNOWN
    assert detector.step(0.0, 0.0) == (Phase.UNKNOWN, [])


def test_kernel_returns_integer_codes() -> None:
    state, params = new_state(), make_params(CONFIG)
    phase, event, t_est = gyro_step(state, params, 0.0, 0.0)
    assert (phase, event) == (Phase.UNKNOWN, Event.NONE)
    assert np.isnan(t_est)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pre_swing_threshold_rad_s", 0.5),
        ("min_swing_peak_rad_s", 0.1),
        ("swing_peak_fraction", 1.5),
        ("loading_time_ms", -1.0),
        ("pre_swing_timeout_ms", 10_000.0),
        ("unknown_after_missing_ms", 5.0),
        ("peak_average_strides", 0),
    ],
)
def test_config_out_of_range_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        GyroDetectorConfig.model_validate({field: value})
    assert info.value.errors()[0]["loc"] == (field,)
    (message,) = describe_errors(info.value, GyroDetectorConfig)
    assert message.startswith(field) and "allowed range" in message


def test_config_rejects_unknown_field_and_is_frozen() -> None:
    with pytest.raises(ValidationError, match="pre_swing_threshold"):
        GyroDetectorConfig.model_validate({"pre_swing_threshold": -0.5})
    with pytest.raises(ValidationError):
        CONFIG.loading_time_ms = 10.0  # type: ignore[misc]


def test_sample_rate_too_low_for_the_missing_data_limit() -> None:
    with pytest.raises(ValueError, match="unknown_after_missing_ms"):
        GyroDetector(GyroDetectorConfig(unknown_after_missing_ms=20.0), 50.0)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        GyroDetector(CONFIG, 0.0)
    t = np.arange(0.0, 1.0, 0.02)
    with pytest.raises(ValueError, match="unknown_after_missing_ms"):
        detect_gyro(t, np.zeros_like(t), GyroDetectorConfig(unknown_after_missing_ms=20.0))
