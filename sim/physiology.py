"""The simulated patient's physiology in figures, to set against the literature.

``python -m sim.physiology`` prints, for the shipped profiles, the numbers that their
comments quote: the tibialis anterior's twitch and force-frequency relation, how long it
holds 20 % of its force under stimulation, the clinical stretch test (clonus frequency
and beats), the forefoot's landing, the range of motion under maximal stimulation, and
voluntary strength against core temperature. ``clonus`` is the analysis of a stretch
test that the tests use too.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from sim.ankle import stretch_test
from sim.limb import SimulatedLimb
from sim.muscle import IsometricMuscle, endurance_s
from sim.openloop import Stimulation, stride_commands
from sim.patient import PatientProfile, load_patient

STEP_S = 1e-3
SATURATING_UC = 25.0  # above every shipped profile's saturation charge
#: An oscillation counts as a beat of clonus above this peak-to-peak amplitude.
BEAT_DEG = 2.0


def clonus(angle_rad: np.ndarray, step_s: float) -> tuple[float, int, float]:
    """Dominant frequency (Hz), beats and largest peak-to-peak (deg) of an ankle trace.

    The trace is detrended with a 100 ms moving average; a beat is an oscillation
    between two upward zero crossings larger than ``BEAT_DEG`` peak to peak.
    """
    window = round(0.1 / step_s)
    detrended = angle_rad - np.convolve(angle_rad, np.ones(window) / window, mode="same")
    x = detrended[window:-window]
    up = np.flatnonzero((x[:-1] < 0.0) & (x[1:] >= 0.0))
    swings = np.array([np.ptp(x[a:b]) for a, b in itertools.pairwise(up)])
    frequency = 1.0 / (float(np.median(np.diff(up))) * step_s) if up.size > 2 else 0.0
    largest = math.degrees(float(swings.max())) if swings.size else 0.0
    return frequency, int((swings > math.radians(BEAT_DEG)).sum()), largest


def twitch_ms(profile: PatientProfile) -> tuple[float, float]:
    """Force onset (5 % of peak) and time to peak of a single twitch, in ms."""
    pulses = np.zeros(400, dtype=np.int64)
    pulses[0] = 1
    force = IsometricMuscle(profile, STEP_S).stimulate(pulses, np.full(400, SATURATING_UC))
    onset = float(np.argmax(force > 0.05 * force.max()))
    return onset * STEP_S * 1e3, float(np.argmax(force)) * STEP_S * 1e3


def force_frequency(profile: PatientProfile, frequencies_hz: tuple[float, ...]) -> list[float]:
    """Plateau force of 2 s saturating trains, as a fraction of the 100 Hz plateau."""
    def plateau(frequency_hz: float) -> float:
        train = IsometricMuscle(profile, STEP_S).train(frequency_hz, 2.0, SATURATING_UC)
        return float(train[-500:].mean())

    tetanic = plateau(100.0)
    return [plateau(f) / tetanic for f in frequencies_hz]


def landing(name: str, stimulation: Stimulation | None) -> tuple[float, float, int]:
    """Median ankle angle at heel strike (deg), median forefoot impact (rad/s) and foot
    slaps of a 60 s walk (seed 3) of profile ``name``."""
    rate = 500.0
    limb = SimulatedLimb(load_patient(name), rate, 60.0, 3)
    n = round(60.0 * rate)
    commands = (stride_commands(limb.schedule, rate, n, stimulation) if stimulation
                else np.zeros((n, 4)))
    limb.run(commands)
    truth = limb.truth()
    heel_strikes = np.array([t for t, e in limb.true_events() if e == "heel_strike"])
    before = np.ceil(heel_strikes * rate).astype(int) - 1
    impacts = truth["forefoot_impact_rad_s"][truth["forefoot_impact_rad_s"] > 0.0]
    return (float(np.median(truth["ankle_angle_deg"][before])),
            float(np.median(impacts)) if impacts.size else 0.0, int(truth["foot_slap"].sum()))


def main() -> int:
    healthy = load_patient("healthy")
    onset, peak = twitch_ms(healthy)
    print(f"twitch (healthy): force onset {onset:.0f} ms after the pulse, peak at {peak:.0f} ms")
    frequencies = (5.0, 10.0, 20.0, 30.0, 40.0)
    fractions = force_frequency(healthy, frequencies)
    print("force-frequency (of the 100 Hz plateau): " + ", ".join(
        f"{f:g} Hz {x:.2f}" for f, x in zip(frequencies, fractions, strict=True)))
    for name in ("healthy", "fatigue_prone"):
        held = endurance_s(load_patient(name), 0.2, 25.0, 1800.0)
        text = "more than 1800 s" if held >= 1800.0 else f"{held:.0f} s"
        print(f"holds 20 % force at 25 Hz ({name}): {text} "
              "(human TA: 84 s one muscle electrode, 787 s its nerve)")

    for name, velocity in (("spastic", 5.0), ("spastic", 1.0), ("moderate", 5.0)):
        frequency, count, largest = clonus(
            stretch_test(load_patient(name), velocity, 15.0, 3.0, STEP_S), STEP_S)
        print(f"stretch test ({name}, 15 deg at {velocity:g} rad/s, 3 s): {count} beats, "
              f"{frequency:.1f} Hz, largest {largest:.1f} deg peak to peak")

    for name, stimulation in (("healthy", None), ("mild", None), ("severe", None),
                              ("mild", Stimulation(amplitude_ma=45.0)),
                              ("severe", Stimulation(amplitude_ma=45.0))):
        angle, impact, slaps = landing(name, stimulation)
        how = f"{stimulation.amplitude_ma:g} mA" if stimulation else "no stimulation"
        print(f"landing ({name}, {how}): ankle {angle:.1f} deg at heel strike, forefoot "
              f"impact {impact:.1f} rad/s, {slaps} foot slaps in 60 s")

    rate = 500.0
    limb = SimulatedLimb(healthy, rate, 30.0, 3)
    limb.run(stride_commands(limb.schedule, rate, round(30.0 * rate),
                             Stimulation(amplitude_ma=60.0)))
    print(f"range of motion (healthy, 60 mA): at most {limb.truth()['ankle_angle_deg'].max():.1f}"
          f" deg of dorsiflexion (end range from {healthy.dorsiflexion_limit_deg:g} deg)")

    warm = load_patient("heat_sensitive")
    strengths = []
    for temperature_c in (37.0, 37.5, 38.0, 38.5):
        profile = warm.model_copy(update={"core_temperature_c": temperature_c,
                                          "core_warming_c_per_min": 0.0})
        limb = SimulatedLimb(profile, rate, 1.0, 0)
        limb.run(np.zeros((1, 4)))
        strengths.append(f"{temperature_c:g} C {limb.truth()['voluntary_max_nm'][0]:.2f} N m")
    print("voluntary strength (heat_sensitive): " + ", ".join(strengths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
