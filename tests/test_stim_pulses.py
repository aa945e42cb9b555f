"""The pulses a board would emit: exact start times, biphasic shape, exact charge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.ports import StimCommand
from controller.pulses import BiphasicPulse, train_pulse_times

DT = 0.002  # 500 Hz loop


def columns(segments: list[tuple[float, float, float]], end_s: float):
    """Per-sample (t, on, frequency) from ``(start_s, stop_s, frequency_hz)`` segments."""
    t = np.arange(round(end_s / DT)) * DT
    on = np.zeros(t.size)
    freq = np.zeros(t.size)
    for start, stop, hz in segments:
        inside = (t >= start - 1e-9) & (t < stop - 1e-9)
        on[inside], freq[inside] = 1.0, hz
    return t, on, freq


def test_pulses_start_at_switch_on_and_follow_the_period_exactly():
    t, on, freq = columns([(0.1, 0.3, 40.0)], 0.5)
    times, index = train_pulse_times(t, on, freq, DT)
    np.testing.assert_allclose(times, 0.1 + np.arange(8) * 0.025, rtol=0, atol=1e-12)
    assert list(index) == [round(x / DT) for x in times]


def test_a_rate_that_does_not_divide_the_sample_period_keeps_its_own_period():
    t, on, freq = columns([(0.05, 1.05, 33.0)], 1.2)
    times, index = train_pulse_times(t, on, freq, DT)
    expected = 0.05 + np.arange(33) / 33.0
    np.testing.assert_allclose(times, expected, rtol=0, atol=1e-9)
    # Each pulse belongs to the sample whose period it falls in.
    assert np.all((t[index] <= times + 1e-12) & (times < t[index] + DT))


def test_a_new_rate_takes_effect_from_the_next_pulse():
    t, on, freq = columns([(0.0, 0.1, 40.0), (0.1, 0.3, 20.0)], 0.3)
    times, _ = train_pulse_times(t, on, freq, DT)
    # 40 Hz pulses at 0, 25, 50, 75 ms; the one due at 100 ms was counted down at 40 Hz,
    # then 20 Hz spacing.
    np.testing.assert_allclose(times, [0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25],
                               atol=1e-12)


def test_switching_off_and_on_restarts_the_train_at_the_switch_on():
    t, on, freq = columns([(0.0, 0.03, 40.0), (0.04, 0.1, 40.0)], 0.1)
    times, _ = train_pulse_times(t, on, freq, DT)
    np.testing.assert_allclose(times, [0.0, 0.025, 0.04, 0.065, 0.09], atol=1e-12)


def test_charge_per_pulse_is_amplitude_times_width_of_its_sample():
    t, on, freq = columns([(0.0, 0.2, 50.0)], 0.2)
    amplitude = np.where(on > 0, np.linspace(0.0, 40.0, t.size), 0.0)
    width = np.full(t.size, 250.0)
    times, index = train_pulse_times(t, on, freq, DT)
    per_pulse_uc = amplitude[index] * width[index] / 1000.0
    assert times.size == 10
    np.testing.assert_allclose(per_pulse_uc, amplitude[np.arange(10) * 10] * 0.25)


def test_one_second_at_40_hz_is_40_pulses_on_the_period_grid():
    t, on, freq = columns([(0.0, 1.0, 40.0)], 2.0)
    times, _ = train_pulse_times(t, on, freq, DT)
    np.testing.assert_allclose(times, np.arange(40) / 40.0, atol=1e-9)


def test_symmetric_pulse_phases():
    pulse = BiphasicPulse.of(StimCommand(0, True, 30.0, 200.0, 40.0, interphase_gap_us=50.0))
    (c0, c1, ci), (a0, a1, ai) = pulse.phases(1.0)
    assert (c0, ci, ai) == (1.0, -30.0, 30.0)
    assert c1 == pytest.approx(1.0002) and a0 == pytest.approx(1.00025)
    assert a1 == pytest.approx(1.00045)
    assert pulse.charge_per_phase_uc == pytest.approx(6.0)
    assert pulse.duration_us == pytest.approx(450.0)


def test_asymmetric_pulse_returns_its_charge_in_a_longer_lower_phase():
    pulse = BiphasicPulse(40.0, 300.0, 0.0, 4.0)
    assert (pulse.anodic_ma, pulse.anodic_us) == (10.0, 1200.0)
    assert pulse.duration_us == 1500.0
    assert pulse.net_charge_uc == 0.0


@given(
    st.floats(0.0, 100.0), st.floats(10.0, 1000.0), st.floats(0.0, 500.0),
    st.floats(1.0, 10.0),
)
def test_every_pulse_is_charge_balanced(amplitude, width, gap, ratio):
    pulse = BiphasicPulse(amplitude, width, gap, ratio)
    assert abs(pulse.net_charge_uc) <= 1e-12 * max(1.0, pulse.charge_per_phase_uc)
    (c0, c1, ci), (a0, a1, ai) = pulse.phases(0.0)
    cathodic = -ci * (c1 - c0)
    anodic = ai * (a1 - a0)
    assert anodic == pytest.approx(cathodic, rel=1e-9, abs=1e-15)
    assert a0 - c1 == pytest.approx(gap * 1e-6, abs=1e-15)
