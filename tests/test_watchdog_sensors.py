"""Which samples count as valid for the sensor timeout: those whose every sensor the
configured detector reads is valid, whatever the others read (docs/safety.md, "Faults,
threads and time").

Before, a sample was valid only with a finite, in-range gyroscope AND a heel switch of
exactly 0 or 1, whatever the detector read: a gyroscope trial whose heel switch lost
samples (irrelevant to its detector) ended in a sensor timeout, and a heel-only source
(no gyroscope: NaN) or a heel force sensor never gave a valid sample at all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import load_config
from controller.ports import Sample
from controller.safety import SafetyLimits, Watchdog, sample_ok
from controller.safety.decide import sample_valid
from controller.safety.sensors import (
    DEFAULT_SENSORS,
    GYRO_SENSOR,
    HEEL_FORCE_SENSOR,
    HEEL_SWITCH_SENSOR,
    SENSORS,
    check_sensors,
)
from controller.trial.session import watched_sensors

#: Every detector a trial can configure, and the sensors it reads.
DETECTORS = {
    ("gyro", "switch"): GYRO_SENSOR,
    ("gyro", "force"): GYRO_SENSOR,
    ("heel", "switch"): HEEL_SWITCH_SENSOR,
    ("heel", "force"): HEEL_FORCE_SENSOR,
    ("fused", "switch"): GYRO_SENSOR | HEEL_SWITCH_SENSOR,
    ("fused", "force"): GYRO_SENSOR | HEEL_FORCE_SENSOR,
}
SPECIAL = [math.nan, math.inf, -math.inf, 0.0, 1.0, -0.0, 0.5, 2.0, -1.0, 100.0, 100.0001,
           -100.0, 1e4, 10000.0001, -1e4, 5e-324, 1e308]
READING = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True))
TIME = st.one_of(st.sampled_from([0.0, 1.5, math.nan, math.inf, -math.inf]), st.floats())


class Quiet:
    channels = 1

    def apply(self, t_s, commands) -> None:
        pass

    def stop_all(self) -> None:
        pass


def model_valid(sensors: int, t: float, gyro: float, switch: float, force: float) -> bool:
    """The rule of docs/safety.md, in the test's own words."""
    ok = math.isfinite(t)
    if sensors & GYRO_SENSOR:
        ok = ok and math.isfinite(gyro) and -100.0 <= gyro <= 100.0
    if sensors & HEEL_SWITCH_SENSOR:
        ok = ok and switch in (0.0, 1.0)
    if sensors & HEEL_FORCE_SENSOR:
        ok = ok and math.isfinite(force) and -1e4 <= force <= 1e4
    return ok


@pytest.mark.parametrize(("detector", "sensors"), DETECTORS.items())
def test_the_watchdog_needs_the_sensors_of_the_configured_detector(detector, sensors):
    sensor, heel_input = detector
    config = load_config(None, {"detector": {"sensor": sensor, "heel_input": heel_input}})
    assert watched_sensors(config) == sensors
    assert watched_sensors(load_config(None)) == GYRO_SENSOR  # the default detector


@settings(max_examples=400, deadline=None)
@given(sensors=st.sampled_from(sorted(set(DETECTORS.values()) | {DEFAULT_SENSORS})),
       t=TIME, gyro=READING, switch=READING, force=READING)
def test_a_sample_is_valid_when_every_sensor_its_detector_reads_is(sensors, t, gyro, switch,
                                                                    force):
    sample = Sample(t, gyro, switch, force)
    expected = model_valid(sensors, t, gyro, switch, force)
    assert sample_ok(sample, sensors) == expected
    # The watchdog's own sensor timeout agrees: a valid sample at t resets the gap, so
    # a sample 25 ms later is within the 30 ms timeout only if this one was valid.
    if math.isfinite(t) and abs(t) < 1e6:
        dog = Watchdog(Quiet(), SafetyLimits(sensor_timeout_ms=30.0), sensors)
        dog.observe(Sample(t - 0.010, math.nan, math.nan, math.nan), phase_known=True)
        dog.observe(sample, phase_known=True)
        dog.observe(Sample(t + 0.025, math.nan, math.nan, math.nan), phase_known=True)
        assert dog.latched != expected, (dog.interventions, expected)
        if dog.latched:
            assert dog.fault is not None and dog.fault.rule == "sensor_timeout_ms"


def test_a_lost_sample_of_a_sensor_the_detector_reads_is_still_invalid():
    lost_heel = Sample(0.0, 0.5, math.nan, math.nan)
    lost_gyro = Sample(0.0, math.nan, 1.0, 300.0)
    assert sample_ok(lost_heel, GYRO_SENSOR) and not sample_ok(lost_gyro, GYRO_SENSOR)
    assert not sample_ok(lost_heel, HEEL_SWITCH_SENSOR) and sample_ok(lost_gyro,
                                                                       HEEL_SWITCH_SENSOR)
    assert sample_ok(lost_gyro, HEEL_FORCE_SENSOR)
    assert not sample_ok(lost_heel, HEEL_FORCE_SENSOR)
    for sensors in (DEFAULT_SENSORS, GYRO_SENSOR | HEEL_FORCE_SENSOR):  # fused: both
        assert not sample_ok(lost_heel, sensors) and not sample_ok(lost_gyro, sensors)
    # Not told the detector, the watchdog keeps the rule it had: gyroscope and switch.
    assert not sample_ok(lost_heel) and not sample_ok(lost_gyro)


@pytest.mark.parametrize("bad", [0, 8, 9, -1, HEEL_SWITCH_SENSOR | HEEL_FORCE_SENSOR, 1.0,
                                 True])
def test_a_watchdog_that_requires_no_sensor_or_an_unknown_one_is_refused(bad):
    with pytest.raises(ValueError, match="sensors"):
        check_sensors(bad)
    with pytest.raises(ValueError, match="sensors"):
        Watchdog(Quiet(), SafetyLimits(), bad)


@pytest.mark.parametrize("slot", [0.0, -1.0, 8.0, math.nan, math.inf])
def test_a_corrupted_sensors_slot_requires_the_gyroscope_and_the_switch(slot):
    limits = SafetyLimits().kernel_array(GYRO_SENSOR)
    assert limits.size == SENSORS + 1 and limits[SENSORS] == GYRO_SENSOR
    assert sample_valid(limits[SENSORS], 0.0, 0.5, math.nan)
    assert not sample_valid(slot, 0.0, 0.5, math.nan)
    assert not sample_valid(slot, 0.0, math.nan, 1.0)
    assert sample_valid(slot, 0.0, 0.5, 1.0)
    assert np.array_equal(SafetyLimits().kernel_array()[:SENSORS],
                          SafetyLimits().kernel_array(HEEL_FORCE_SENSOR)[:SENSORS])
