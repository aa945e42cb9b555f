"""Tibialis anterior under stimulation: recruitment, fusion and the electromechanical delay."""

from __future__ import annotations

import numpy as np
import pytest

from controller.stim.pulses import advance_train, new_train
from sim.muscle import muscle_params, muscle_step, new_delay_line, new_muscle_state, recruitment
from sim.patient import load_patient

DT = 1e-3


def test_recruitment_is_zero_below_threshold_and_monotone_in_charge():
    threshold, saturation = 6.0, 18.0
    charges = np.linspace(0.0, 30.0, 301)
    r = np.array([recruitment(q, threshold, saturation) for q in charges])
    assert np.all(r[charges <= threshold] == 0.0)
    assert np.all(r[charges >= saturation] == 1.0)
    assert np.all(np.diff(r) >= 0.0)
    between = (charges > threshold) & (charges < saturation)
    assert np.all((r[between] > 0.0) & (r[between] < 1.0))


def activation_trace(profile, on_from: int, n: int, frequency_hz: float, amplitude_ma: float,
                     pulse_width_us: float = 300.0):
    params = muscle_params(profile, DT)
    state, delay, train = new_muscle_state(), new_delay_line(profile, DT), new_train()
    out = np.empty(n)
    for k in range(n):
        pulses = advance_train(train, k >= on_from, frequency_hz, DT)
        out[k] = muscle_step(state, params, delay, pulses, 1e-3 * amplitude_ma * pulse_width_us)
    return out


def test_activation_waits_for_the_electromechanical_delay():
    profile = load_patient("severe")
    delay_samples = round(profile.electromechanical_delay_ms * 1e-3 / DT)
    act = activation_trace(profile, 100, 400, 40.0, 40.0)
    assert np.all(act[: 100 + delay_samples] == 0.0)
    assert act[100 + delay_samples] > 0.0
    slower = profile.model_copy(
        update={"electromechanical_delay_ms": profile.electromechanical_delay_ms + 20.0}
    )
    late = activation_trace(slower, 100, 400, 40.0, 40.0)
    assert np.array_equal(late[20:], act[:-20])  # the same response, 20 ms later


def test_below_threshold_stimulation_does_nothing():
    profile = load_patient("severe")
    assert activation_trace(profile, 0, 500, 40.0, 15.0).max() == 0.0


def test_stronger_pulses_give_more_activation():
    profile = load_patient("severe")
    plateau = [activation_trace(profile, 0, 800, 40.0, a)[-100:].mean() for a in (25, 40, 70)]
    assert plateau[0] < plateau[1] < plateau[2]
    assert plateau[2] == pytest.approx(0.93, abs=0.04)  # saturated recruitment, 40 Hz


def test_trains_at_30_to_40_hz_are_near_tetanic_and_10_hz_is_not():
    profile = load_patient("severe")

    def plateau(frequency_hz: float) -> float:
        return activation_trace(profile, 0, 1500, frequency_hz, 70.0)[-500:].mean()

    tetanic = plateau(100.0)
    assert plateau(40.0) > 0.85 * tetanic
    assert plateau(30.0) > 0.75 * tetanic
    assert plateau(10.0) < 0.45 * tetanic


def test_activation_relaxes_after_the_train():
    profile = load_patient("severe")
    params = muscle_params(profile, DT)
    state, delay, train = new_muscle_state(), new_delay_line(profile, DT), new_train()
    for k in range(1000):
        pulses = advance_train(train, k < 500, 40.0, DT)
        muscle_step(state, params, delay, pulses, 12.0)
    assert state[2] < 0.01
