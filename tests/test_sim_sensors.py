"""Sensor signals: the template follows the events, and every sensor error of the
profile shows up in the samples as specified (and only when the profile asks)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from controller.bench.heelforce import COLUMNS, simulated_figures
from controller.detect.heel import HEEL_FORCE
from sim.gait import (
    HEEL_OFF,
    HEEL_STRIKE,
    MID_SWING,
    NEXT_HEEL_STRIKE,
    TOE_OFF,
    TURN_PEAK_YAW,
    build_schedule,
)
from sim.limb import SimulatedLimb
from sim.patient import load_patient
from sim.sensors import (
    gyro_features,
    gyro_template,
    heel_force,
    heel_load_n,
    heel_sensor_load_n,
    heel_switch,
    make_params,
    stride_gyro,
)

RATE_HZ = 1000.0
#: A sensor with no error at all, for comparisons.
IDEAL = {"gyro_noise_rad_s": 0.0, "gyro_noise_density_rad_s_per_sqrt_hz": 0.0}


@pytest.fixture(params=["healthy", "severe"])
def walk(request):
    profile = load_patient(request.param)
    strides = build_schedule(profile, 30.0, 3).strides
    params = make_params(profile, 1.0 / RATE_HZ)
    return profile, strides, params, gyro_features(strides, params)


def trace(strides, features, row, params, t):
    return np.array([gyro_template(strides, features, row, float(x), params) for x in t])


def test_gyro_swing_peak_lies_between_toe_off_and_heel_strike(walk):
    profile, strides, params, features = walk
    for row in range(1, strides.shape[0] - 1):
        r = strides[row]
        t = np.arange(r[HEEL_STRIKE], r[NEXT_HEEL_STRIKE], 1e-3)
        w = trace(strides, features, row, params, t)
        peak = t[np.argmax(w)]
        assert r[TOE_OFF] < peak < r[NEXT_HEEL_STRIKE]
        # Real swing peaks lie at 54 % of swing (quartiles 46-60 %, Marpino dataset).
        assert abs(peak - r[MID_SWING]) < 0.05 * (r[NEXT_HEEL_STRIKE] - r[TOE_OFF])
        assert w.max() == pytest.approx(profile.gyro_swing_peak_rad_s, rel=0.05)


def test_gyro_minima_at_toe_off_and_just_after_heel_strike(walk):
    # On real walks (Marpino dataset, pressure-insole events) the toe-off minimum lies
    # 30 ms, 2.3 % of the stride, before toe off (quartiles 0.8-3.9 %). Timed from the
    # heel's impact on the foot IMU (python -m controller.bench.shank), the heel-strike
    # minimum comes 45 ms after contact (quartiles 25 to 62 ms, of young adults walking at
    # their own speed: the window holds for the healthy profile).
    profile, strides, params, features = walk
    healthy = profile.description.startswith("Healthy")
    for row in range(1, strides.shape[0] - 2):
        r = strides[row]
        t = np.arange(r[TOE_OFF] - 0.15, r[MID_SWING], 1e-3)
        w = trace(strides, features, row, params, t)
        assert w.min() < 0.0
        stride = r[NEXT_HEEL_STRIKE] - r[HEEL_STRIKE]
        assert -0.05 * stride < t[np.argmin(w)] - r[TOE_OFF] < 0.02 * stride
        nxt = strides[row + 1]
        t = np.arange(nxt[HEEL_STRIKE], nxt[HEEL_STRIKE] + 0.15, 1e-3)
        w = trace(strides, features, row + 1, params, t)
        assert w.min() < 0.0
        low, high = (0.025, 0.062) if healthy else (0.0, 0.1)
        assert low < t[np.argmin(w)] - nxt[HEEL_STRIKE] < high


def test_gyro_is_negative_through_stance_as_on_real_shanks(walk):
    # Swing positive: the knee passing over the planted foot turns the shank the other
    # way. Real walks: stance median -0.22 of the swing peak (quartiles -0.24 to -0.19).
    profile, strides, params, features = walk
    medians = []
    for row in range(1, strides.shape[0] - 1):
        r = strides[row]
        t = np.arange(r[HEEL_STRIKE], r[TOE_OFF], 1e-3)
        w = trace(strides, features, row, params, t)
        assert np.all(w < 0.0)
        medians.append(np.median(w) / profile.gyro_swing_peak_rad_s)
    if profile.description.startswith("Healthy"):
        assert -0.24 < np.median(medians) < -0.19


@pytest.mark.parametrize("name", ["healthy", "mild", "moderate", "severe", "fatigue_prone"])
def test_the_shank_returns_to_its_posture_every_stride(name):
    # The integral of the angular velocity over a stride is the shank's net rotation:
    # zero on real walks (0.02 rad), and here by construction, starts, stops and turns
    # included.
    course = {"bout_mean_strides": 8.0, "standing_mean_s": 2.0,
              "turn_interval_mean_strides": 5.0, "turn_inner_outer_difference_fraction": 0.5,
              "turn_speed_fraction": 0.6, "turn_stride_time_factor": 1.06}
    profile = load_patient(name).model_copy(update=course)
    strides = build_schedule(profile, 60.0, 5).strides
    params = make_params(profile, 1.0 / RATE_HZ)
    features = gyro_features(strides, params)
    for row in range(2, strides.shape[0] - 2):
        r = strides[row]
        t = np.arange(r[HEEL_STRIKE] - 0.5, r[NEXT_HEEL_STRIKE] + 0.5, 2e-4)
        own = [stride_gyro(strides, features, row, float(x), params) for x in t]
        assert abs(np.sum(own) * 2e-4) < 2e-3


def test_heel_switch_and_force_follow_heel_contact(walk):
    profile, strides, params, _ = walk
    r = strides[3]
    inside = np.linspace(r[HEEL_STRIKE], r[HEEL_OFF], 50, endpoint=False)
    outside = np.linspace(r[HEEL_OFF], r[NEXT_HEEL_STRIKE], 50, endpoint=False)
    assert all(heel_switch(strides, 3, t, params, 1.0) == 1 for t in inside)
    assert all(heel_switch(strides, 3, t, params, 1.0) == 0 for t in outside)
    assert all(heel_force(heel_load_n(strides, 3, t, params), params, 0.0) == 0.0
               for t in outside)
    peak = max(heel_force(heel_load_n(strides, 3, t, params), params, 0.0) for t in inside)
    assert peak == pytest.approx(profile.heel_load_fraction_bw * profile.body_mass_kg * 9.81)


def record(name: str, duration_s: float = 20.0, seed: int = 4, **changes: object):
    """Samples (as columns) and the limb of an unstimulated walk of a changed profile."""
    limb = SimulatedLimb(load_patient(name).model_copy(update=changes), RATE_HZ, duration_s,
                         seed)
    return limb.run(np.zeros((round(duration_s * RATE_HZ), 4))), limb


def test_healthy_sensors_only_add_plausible_noise():
    noisy, _ = record("healthy")
    ideal, _ = record("healthy", **IDEAL)
    error = noisy["gyro_rad_s"] - ideal["gyro_rad_s"]
    assert abs(error.mean()) < 0.005  # no bias
    assert error.std() == pytest.approx(0.05, rel=0.1)  # tissue artefact + sensor noise
    assert np.array_equal(noisy["heel_switch"], ideal["heel_switch"])
    assert np.array_equal(noisy["heel_force_n"], ideal["heel_force_n"])
    assert not np.isnan(noisy["gyro_rad_s"]).any()


def test_bias_drifts_as_a_random_walk_from_its_turn_on_value():
    drift = 0.002  # rad/s per sqrt(s)
    ideal, _ = record("moderate", 60.0, **IDEAL)
    biased, _ = record("moderate", 60.0, gyro_bias_rad_s=0.1,
                       gyro_bias_drift_rad_s_per_sqrt_s=drift, **IDEAL)
    bias = biased["gyro_rad_s"] - ideal["gyro_rad_s"]
    assert bias[0] == pytest.approx(0.1)
    steps = np.diff(bias)
    assert steps.std() == pytest.approx(drift * math.sqrt(1.0 / RATE_HZ), rel=0.05)
    assert abs(bias[-1] - 0.1) > 0.0


def test_scale_error_and_saturation():
    ideal, _ = record("healthy", **IDEAL)
    scaled, _ = record("healthy", gyro_scale_error_fraction=0.05, **IDEAL)
    assert scaled["gyro_rad_s"] == pytest.approx(1.05 * ideal["gyro_rad_s"])
    clipped, _ = record("healthy", gyro_range_rad_s=3.0, **IDEAL)
    assert np.abs(ideal["gyro_rad_s"]).max() > 4.5
    assert np.abs(clipped["gyro_rad_s"]).max() == pytest.approx(3.0)
    inside = np.abs(ideal["gyro_rad_s"]) < 3.0
    assert np.array_equal(clipped["gyro_rad_s"][inside], ideal["gyro_rad_s"][inside])


def test_a_tilted_gyro_sees_turns_and_turns_flatten_the_swing_peak():
    course = {"turn_interval_mean_strides": 6.0, **IDEAL}
    straight_mount, limb = record("healthy", 60.0, **course)
    tilted, _ = record("healthy", 60.0, gyro_mounting_tilt_deg=15.0, **course)
    strides = limb.schedule.strides
    t = straight_mount["time_s"]
    rows = np.searchsorted(strides[:, HEEL_STRIKE], t, side="right") - 1
    turning = strides[rows, TURN_PEAK_YAW] != 0.0
    offset = tilted["gyro_rad_s"] - math.cos(math.radians(15.0)) * straight_mount["gyro_rad_s"]
    assert np.abs(offset[~turning]).max() < 1e-9
    assert np.abs(offset[turning]).max() > 0.2  # sin(15 deg) x ~1.5-2 rad/s of yaw
    peaks = np.array([straight_mount["gyro_rad_s"][rows == r].max()
                      for r in range(2, strides.shape[0] - 2) if (rows == r).any()])
    turned = strides[2: 2 + peaks.size, TURN_PEAK_YAW] != 0.0
    assert peaks[turned].mean() < 0.85 * peaks[~turned].mean()


def test_sample_time_jitter_moves_the_sample_not_its_time_stamp():
    ideal, _ = record("healthy", **IDEAL)
    jittered, _ = record("healthy", sample_jitter_ms=2.0, **IDEAL)
    assert np.array_equal(ideal["time_s"], jittered["time_s"])
    error = jittered["gyro_rad_s"] - ideal["gyro_rad_s"]
    slope = np.gradient(ideal["gyro_rad_s"], 1.0 / RATE_HZ)
    # error ~ slope x jitter: the implied jitter has the asked spread, clipped at 3 SD.
    # Where the curve bends, the linear approximation is off over 6 ms: left out.
    bend = np.gradient(slope, 1.0 / RATE_HZ)
    steep = (np.abs(slope) > 20.0) & (np.abs(bend) * 0.006 < 0.05 * np.abs(slope))
    implied_ms = 1e3 * error[steep] / slope[steep]
    assert implied_ms.std() == pytest.approx(2.0, rel=0.15)
    assert np.abs(implied_ms).max() < 3.0 * 2.0 * 1.1


def test_dropouts_are_runs_of_nan_at_the_asked_rate():
    lost, _ = record("moderate", 300.0, gyro_dropouts_per_min=6.0, gyro_dropout_ms=100.0)
    missing = np.isnan(lost["gyro_rad_s"])
    starts = np.flatnonzero(missing & ~np.concatenate(([False], missing[:-1])))
    assert 15 <= starts.size <= 45  # 6 per minute for 5 minutes
    assert missing.sum() / starts.size == pytest.approx(100.0, rel=0.5)  # mean length, ms
    assert not np.isnan(lost["heel_force_n"]).any()


def test_heel_switch_dropouts_are_runs_of_nan_at_the_asked_rate_and_nothing_else_changes():
    """A wireless insole losing packets: the heel switch reads NaN in the patient's heel
    switch dropouts (``SimulatedLimb.dropouts``), drawn from a stream of their own, so
    every other reading, the gyroscope's dropouts included, is the walk's without them."""
    sensors = {"gyro_dropouts_per_min": 6.0, "gyro_dropout_ms": 50.0}
    kept, _ = record("moderate", 300.0, **sensors)
    lost, limb = record("moderate", 300.0, heel_switch_dropouts_per_min=6.0,
                        heel_switch_dropout_ms=100.0, **sensors)
    missing = np.isnan(lost["heel_switch"])
    starts = np.flatnonzero(missing & ~np.concatenate(([False], missing[:-1])))
    assert 15 <= starts.size <= 45  # 6 per minute for 5 minutes
    assert missing.sum() / starts.size == pytest.approx(100.0, rel=0.5)  # mean length, ms
    t = lost["time_s"]
    intervals = limb.dropouts("heel_switch")
    inside = np.zeros(t.size, dtype=bool)
    for start, end in intervals:
        inside |= (t >= start) & (t < end)
    assert np.array_equal(missing, inside)
    assert np.array_equal(lost["heel_switch"][~missing], kept["heel_switch"][~missing])
    for name in ("gyro_rad_s", "heel_force_n"):
        assert np.array_equal(lost[name], kept[name], equal_nan=True), name
    assert np.isnan(lost["gyro_rad_s"]).any()
    # A shorter walk of the same seed has the first of these dropouts.
    _, short = record("moderate", 60.0, heel_switch_dropouts_per_min=6.0,
                      heel_switch_dropout_ms=100.0, **sensors)
    assert np.array_equal(short.dropouts("heel_switch"), intervals[intervals[:, 0] < 60.0])


def test_heel_switch_delays_and_bounce():
    ideal, _limb = record("moderate", **IDEAL)
    slow, _ = record("moderate", heel_switch_contact_delay_ms=15.0,
                     heel_switch_release_delay_ms=40.0, **IDEAL)
    bouncy, _ = record("moderate", heel_switch_bounce_ms=8.0, **IDEAL)
    edges = np.diff(ideal["heel_switch"])
    for edge in np.flatnonzero(edges == 1) + 1:  # contact: 15 samples later
        assert slow["heel_switch"][edge: edge + 15].max() == 0
        assert slow["heel_switch"][edge + 15] == 1
    for edge in np.flatnonzero(edges == -1) + 1:  # release: 40 samples later
        assert slow["heel_switch"][edge: edge + 40].min() == 1
        assert slow["heel_switch"][edge + 40] == 0
    chatter = bouncy["heel_switch"] != ideal["heel_switch"]
    windows = np.zeros_like(chatter)
    for edge in np.flatnonzero(edges != 0) + 1:
        windows[edge: edge + 8] = True
    assert chatter.any() and not chatter[~windows].any()


def test_heel_force_noise_never_reads_below_zero():
    noisy, _ = record("moderate", heel_force_noise_n=20.0, **IDEAL)
    ideal, _ = record("moderate", **IDEAL)
    assert noisy["heel_force_n"].min() >= 0.0
    loaded = ideal["heel_force_n"] > 100.0
    error = noisy["heel_force_n"][loaded] - ideal["heel_force_n"][loaded]
    assert error.std() == pytest.approx(20.0, rel=0.1)


def test_standing_still_keeps_the_heel_loaded_and_the_shank_still():
    course = {"bout_mean_strides": 8.0, "standing_mean_s": 5.0, **IDEAL}
    samples, limb = record("healthy", 60.0, **course)
    standing = limb.schedule.standing()
    assert standing
    t = samples["time_s"]
    for start, end in standing:
        quiet = (t >= start) & (t < end)
        if not quiet.any():
            continue
        assert np.abs(samples["gyro_rad_s"][quiet]).max() < 1e-9
        assert samples["heel_switch"][quiet].min() == 1
        assert np.ptp(samples["heel_force_n"][quiet]) == 0.0 < samples["heel_force_n"][quiet][0]


@pytest.mark.parametrize("patient", ["healthy", "mild", "moderate", "severe"])
def test_simulated_insole_releases_the_heel_as_gaitpdb_walkers_do(patient):
    """The heel force reads below the heel force detector's release (10 N) where the 612
    feet of the 165 gaitpdb walkers have it (quartiles of their strides, controls and
    Parkinson's disease; ``python -m controller.bench.heelforce``): 12.2-26.0 % of the
    stride before toe off, 0.610-0.812 of stance (each the span of both groups'). It was
    fitted on one control once (GaCo01: 6.6-7.2 % before toe off), and a detector tuned
    on that looked right here."""
    rows = simulated_figures(patient, HEEL_FORCE.release_force_n)
    median = dict(zip(COLUMNS, np.median(rows, axis=0), strict=True))
    assert 12.2 <= median["release_to_toe_off_pct"] <= 26.0, median
    assert 0.610 <= median["release_stance"] <= 0.812, median


def test_heel_force_sensor_reads_a_tail_after_heel_off_and_zero_before_toe_off(walk):
    profile, strides, params, _ = walk
    r = strides[3]
    stance = r[TOE_OFF] - r[HEEL_STRIKE]
    release = r[HEEL_STRIKE] + profile.heel_force_release_stance_fraction * stance
    loading = np.linspace(r[HEEL_STRIKE], r[HEEL_STRIKE] + 0.2 * stance, 20)

    def sensor(t):
        return heel_sensor_load_n(heel_load_n(strides, 3, t, params), strides, 3, t, params)

    assert all(sensor(t) == heel_load_n(strides, 3, t, params)
               for t in loading)
    assert sensor(r[HEEL_OFF]) == pytest.approx(
        profile.heel_force_tail_n)
    tail = [sensor(t)
            for t in np.linspace(r[HEEL_OFF], release, 20, endpoint=False)]
    assert all(a > b > 0.0 for a, b in itertools.pairwise(tail))
    assert all(sensor(t) == pytest.approx(0.0, abs=1e-9)  # (at the release: 2e-14 N)
               for t in np.linspace(release, r[NEXT_HEEL_STRIKE], 20, endpoint=False))
