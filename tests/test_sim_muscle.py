"""Tibialis anterior under stimulation: recruitment, Ding's force model, the
electromechanical delay, fatigue and recovery, against published numbers."""

from __future__ import annotations

import numpy as np
import pytest

from sim.muscle import IsometricMuscle, endurance_s, recruitment
from sim.patient import load_patient

STEP_S = 1e-3
SATURATING_UC = 25.0  # above every profile's saturation charge


def test_recruitment_is_zero_below_threshold_and_monotone_in_charge():
    threshold, saturation = 6.0, 18.0
    charges = np.linspace(0.0, 30.0, 301)
    r = np.array([recruitment(q, threshold, saturation) for q in charges])
    assert np.all(r[charges <= threshold] == 0.0)
    assert np.all(r[charges >= saturation] == 1.0)
    assert np.all(np.diff(r) >= 0.0)
    between = (charges > threshold) & (charges < saturation)
    assert np.all((r[between] > 0.0) & (r[between] < 1.0))


def test_healthy_profile_holds_dings_published_force_model():
    """DESIGN.md's Ding 2003 values, as in the public cocofest library."""
    p = load_patient("healthy")
    assert (p.ding_tau_c_ms, p.ding_a_rest_n_per_s, p.ding_tau1_rest_ms, p.ding_tau2_ms,
            p.ding_km_rest_unitless, p.ding_r0_km_offset_unitless, p.ding_tau_fat_s) == (
        20.0, 3009.0, 50.957, 60.0, 0.103, 1.04, 127.0)
    fatigable = load_patient("fatigue_prone")
    assert (fatigable.ding_alpha_a_per_s2, fatigable.ding_alpha_km_per_n_s,
            fatigable.ding_alpha_tau1_per_n) == (-0.4, 1.9e-5, 2.1e-5)
    # The other profiles scale all three rates by one factor (84 s / 787 s).
    scale = p.ding_alpha_a_per_s2 / fatigable.ding_alpha_a_per_s2
    assert scale == pytest.approx(84.0 / 787.0, rel=0.01)
    assert p.ding_alpha_km_per_n_s / fatigable.ding_alpha_km_per_n_s == pytest.approx(scale,
                                                                                     rel=0.01)
    assert p.ding_alpha_tau1_per_n / fatigable.ding_alpha_tau1_per_n == pytest.approx(scale,
                                                                                     rel=0.01)


def twitch(profile) -> np.ndarray:
    muscle = IsometricMuscle(profile, STEP_S)
    pulses = np.zeros(400, dtype=np.int64)
    pulses[0] = 1
    return muscle.stimulate(pulses, np.full(400, SATURATING_UC))


def test_a_twitch_starts_after_the_delay_and_peaks_like_a_human_tibialis_anterior():
    profile = load_patient("healthy")
    force = twitch(profile)
    delay_steps = round(profile.electromechanical_delay_ms * 1e-3 / STEP_S)
    assert np.all(force[:delay_steps] == 0.0) and force[delay_steps] > 0.0
    onset_ms = np.argmax(force > 0.05 * force.max()) * STEP_S * 1e3
    assert 10.0 <= onset_ms <= 25.0
    peak_ms = np.argmax(force) * STEP_S * 1e3
    assert 70.0 <= peak_ms <= 110.0  # human TA twitch contraction time about 80-100 ms
    slower = profile.model_copy(update={"electromechanical_delay_ms": 30.0})
    late = twitch(slower)
    shift = round(20e-3 / STEP_S)
    assert np.array_equal(late[shift:], force[:-shift])  # the same twitch, 20 ms later


def plateau(profile, frequency_hz: float, charge_uc: float = SATURATING_UC) -> float:
    force = IsometricMuscle(profile, STEP_S).train(frequency_hz, 2.0, charge_uc)
    return float(force[-500:].mean())


def test_force_rises_with_frequency_and_fuses_at_30_to_40_hz():
    profile = load_patient("healthy")
    forces = {f: plateau(profile, f) for f in (5.0, 10.0, 20.0, 30.0, 40.0, 100.0)}
    values = list(forces.values())
    assert values == sorted(values)
    tetanic = forces[100.0]
    assert forces[40.0] > 0.85 * tetanic
    assert forces[30.0] > 0.80 * tetanic
    assert 0.35 * tetanic < forces[10.0] < 0.6 * tetanic
    assert forces[5.0] < 0.3 * tetanic


def test_below_threshold_stimulation_does_nothing_and_charge_recruits():
    profile = load_patient("severe")
    assert plateau(profile, 40.0, 0.99 * profile.recruitment_threshold_uc) == 0.0
    by_charge = [plateau(profile, 40.0, q) for q in (8.0, 12.0, 16.0, 20.0)]
    assert by_charge == sorted(by_charge) and by_charge[0] > 0.0
    assert by_charge[-1] == pytest.approx(plateau(profile, 40.0), rel=1e-6)  # saturated


def test_force_relaxes_after_the_train():
    muscle = IsometricMuscle(load_patient("severe"), STEP_S)
    muscle.train(40.0, 0.5, SATURATING_UC)
    after = muscle.stimulate(np.zeros(500, dtype=np.int64), np.zeros(500))
    assert after[0] > 0.5 and after[-1] < 0.005


def test_continuous_stimulation_fatigues_the_muscle_and_rest_restores_it():
    muscle = IsometricMuscle(load_patient("fatigue_prone"), STEP_S)
    fresh = muscle.train(40.0, 1.0, SATURATING_UC)[-200:].mean()
    muscle.train(40.0, 120.0, SATURATING_UC)
    tired = muscle.train(40.0, 1.0, SATURATING_UC)[-200:].mean()
    assert tired < 0.5 * fresh
    muscle.stimulate(np.zeros(300_000, dtype=np.int64), np.zeros(300_000))  # 5 min rest
    rested = muscle.train(40.0, 1.0, SATURATING_UC)[-200:].mean()
    assert tired < 0.8 * rested and rested > 0.85 * fresh


def test_endurance_at_20_percent_force_brackets_the_human_data():
    """TA holds 20 % MVC at 25 Hz for 84 s through one muscle electrode and 787 s through
    its nerve (PMC6370345). Ding's quadriceps rates give minutes; the scaled rates of the
    peroneal profiles never tire at this level."""
    assert 100.0 < endurance_s(load_patient("fatigue_prone"), 0.2, 25.0, 1000.0) < 400.0
    assert endurance_s(load_patient("healthy"), 0.2, 25.0, 1000.0) == 1000.0
