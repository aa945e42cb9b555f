"""The ``SensorSource`` contract, run on every back end that implements it, and the back
ends compared with each other sample for sample.

The loop cannot tell which source feeds it, so every one must behave the same in what
the loop and a user can see: the rate it announces, samples on that fixed grid with
plausible values, the end of the stream once closed, and stimulation that the patient
receives when it was commanded and not after ``stop_all``. ``tests/conftest.py`` lists
the back ends: the simulated limb, the board driver on the board emulator, and the
board driver on the AVR firmware in simavr (skipped where its toolchain is missing). The
back-to-back tests at the end run one walk, and one schedule of commands, on the limb
and on every other source (as python-can's back2back tests do): the same seed is the
same walk to the sensor's resolution, and a shaped pulse train is delivered alike.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.ports import SensorSource, StimCommand

ON = StimCommand(0, True, 35.0, 300.0, 40.0)
#: The ODFS preset's pulse (configs/stim/odfs.toml): the recovery phase 4 times as long at
#: a quarter of the current, here with a 50 us interphase gap.
SHAPED_ON = StimCommand(0, True, 35.0, 300.0, 40.0, 50.0, 4.0)


def read(device: SensorSource, n: int) -> list:
    samples = [device.read() for _ in range(n)]
    assert all(s is not None for s in samples)
    return samples


def test_announces_its_sample_rate(sensor_source):
    device = sensor_source.device
    assert isinstance(device, SensorSource)
    assert device.sample_period_s == pytest.approx(1.0 / sensor_source.rate_hz)


def test_samples_lie_on_the_fixed_grid(sensor_source):
    device = sensor_source.device
    for k, sample in enumerate(read(device, 300)):
        assert sample.t_s == pytest.approx(k * device.sample_period_s, abs=1e-12)
        assert sample.heel_switch in (0, 1)
        assert math.isfinite(sample.gyro_rad_s) and math.isfinite(sample.heel_force_n)


def test_bad_commands_are_refused_before_the_patient_receives_anything(sensor_source):
    device = sensor_source.device
    read(device, 5)
    for bad in (
        [ON, StimCommand(device.channels, True, 35.0, 300.0, 40.0)],
        [ON, StimCommand(0, True, math.nan, 300.0, 40.0)],
        [StimCommand(0, True, 35.0, -300.0, 40.0)],
        [ON, StimCommand(0, True, 35.0, 300.0, 40.0, -50.0)],  # negative interphase gap
        [StimCommand(0, True, 35.0, 300.0, 40.0, 0.0, 0.5)],  # recovery shorter than lead
        [StimCommand(0, True, 35.0, 300.0, 40.0, 0.0, math.inf)],
    ):
        with pytest.raises(ValueError):
            device.apply(0.01, bad)
    read(device, 100)
    assert np.nansum(sensor_source.truth_after_close(105)["pulses"]) == 0


@pytest.mark.parametrize("command", [ON, SHAPED_ON], ids=["symmetric", "shaped"])
def test_stimulation_starts_when_commanded_and_stop_all_ends_it(sensor_source, command):
    device = sensor_source.device
    device.stop_all()  # safe before any command
    read(device, 10)
    device.apply(0.018, [command])
    read(device, 50)
    device.stop_all()
    device.stop_all()
    read(device, 60)
    pulses = sensor_source.truth_after_close(120)["pulses"]
    delivered = np.flatnonzero(pulses > 0)
    assert delivered.size >= 3  # 40 Hz for 100 ms
    # The command follows sample 9: pulses from sample 10 on (11 or 12 over the link when
    # the machine is slow), none once stop_all has been obeyed.
    assert 10 <= delivered[0] <= 20
    assert delivered[-1] < 70
    assert device.read() is None  # closed: the stream has ended
    device.stop_all()  # and stop_all is still safe


# --- back to back: the simulated limb and every other source --------------------------


def test_the_same_seed_gives_the_same_walk_on_both(limb_backend, other_source):
    expected, got = read(limb_backend.device, 600), read(other_source.device, 600)
    for a, b in zip(expected, got, strict=True):
        assert a.t_s == pytest.approx(b.t_s, abs=1e-12)
        assert other_source.gyro_matches(a.gyro_rad_s, b.gyro_rad_s)  # the sensor's resolution
        assert a.heel_switch == b.heel_switch
        assert abs(a.heel_force_n - b.heel_force_n) <= other_source.force_step_n / 2 + 1e-9


def test_a_shaped_pulse_train_is_delivered_alike_on_both(limb_backend, other_source):
    """The same schedule of shaped and symmetric commands gives the same pulses on both
    back ends: the shape changes the pulse, never when or how often it fires."""
    schedule = {20: [SHAPED_ON], 120: [ON], 220: [SHAPED_ON], 320: [StimCommand.off(0)]}
    pulses = []
    for backend in (limb_backend, other_source):
        device = backend.device
        for k in range(400):
            assert device.read() is not None
            if k in schedule:
                device.apply(k / backend.rate_hz, schedule[k])
        pulses.append(backend.truth_after_close(400)["pulses"])
    limb, board = pulses
    # Over the link a command may land a sample or two later on a loaded machine.
    assert abs(np.nansum(limb) - np.nansum(board)) <= 1
    assert np.nansum(limb) >= 23  # 0.6 s at 40 Hz: 24 pulses
    first_limb, first_board = np.flatnonzero(limb > 0)[0], np.flatnonzero(board > 0)[0]
    assert 0 <= first_board - first_limb <= 10
