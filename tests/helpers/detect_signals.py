"""Sensor signals for the detection tests: the simulated patient, and what it lacks.

``simulated_walk`` reads a ``SimulatedLimb`` (no stimulation) sample by sample and keeps
its shank gyro, heel switch and heel force with the exact true events. The other helpers
build what the simulator does not model yet: standing with ankle clonus (a 4-8 Hz
oscillation of the shank and of the load under the heel, DESIGN.md), stance spasms, and
sensor faults, to splice into a walk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.events import EVENT_BY_NAME, DetectedEvent, Event
from sim.limb import SimulatedLimb
from sim.patient import load_patient


@dataclass(frozen=True)
class Signals:
    """Sensor columns on one time base and the true events (time, kind)."""

    t_s: np.ndarray
    gyro_rad_s: np.ndarray
    heel_switch: np.ndarray
    heel_force_n: np.ndarray
    events: list[tuple[float, Event]]

    def true_times(self, kind: Event) -> np.ndarray:
        """Times of the true events of ``kind``."""
        return np.array([t for t, e in self.events if e == kind])

    def heel(self, heel_input: str) -> np.ndarray:
        """The heel column a detector set up for ``heel_input`` reads."""
        return self.heel_switch if heel_input == "switch" else self.heel_force_n


def simulated_walk(patient: str, duration_s: float, seed: int, rate_hz: float) -> Signals:
    """The simulated patient walking without stimulation."""
    limb = SimulatedLimb(load_patient(patient), rate_hz, duration_s, seed)
    rows = []
    while (sample := limb.read()) is not None:
        rows.append((sample.t_s, sample.gyro_rad_s, sample.heel_switch, sample.heel_force_n))
    t, gyro, switch, force = (np.array(col) for col in zip(*rows, strict=True))
    events = [(t_s, EVENT_BY_NAME[name]) for t_s, name in limb.true_events()]
    return Signals(t, gyro, switch.astype(float), force, events)


def clonus_stand(
    rate_hz: float, duration_s: float, seed: int, clonus_hz: float = 6.0,
    gyro_amplitude_rad_s: float = 0.8, body_weight_n: float = 600.0,
) -> Signals:
    """Standing still with ankle clonus: the shank oscillates (below 1 rad/s, as in
    DESIGN.md), the heel load swings between a light touch and most of the body weight,
    and the heel switch chatters open and closed at the clonus frequency."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration_s, 1.0 / rate_hz)
    phase = 2.0 * np.pi * clonus_hz * t
    gyro = gyro_amplitude_rad_s * np.sin(phase) + 0.05 * rng.standard_normal(t.size)
    force = body_weight_n * 0.5 * (1.0 + np.sin(phase + 1.0)) ** 2 / 2.0
    switch = (np.sin(phase + 1.0) > -0.3).astype(float)  # open for ~40 % of each beat
    return Signals(t, gyro, switch, force, [])


def quiet_stand(rate_hz: float, duration_s: float, seed: int) -> Signals:
    """Standing still: sensor noise on the gyro, the heel loaded."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration_s, 1.0 / rate_hz)
    gyro = 0.05 * rng.standard_normal(t.size)
    return Signals(t, gyro, np.ones(t.size), np.full(t.size, 300.0), [])


def splice(*parts: Signals) -> Signals:
    """The parts one after the other, each shifted to start one period after the last."""
    out = parts[0]
    for part in parts[1:]:
        period = float(out.t_s[1] - out.t_s[0])
        shift = out.t_s[-1] + period - part.t_s[0]
        out = Signals(
            np.concatenate((out.t_s, part.t_s + shift)),
            np.concatenate((out.gyro_rad_s, part.gyro_rad_s)),
            np.concatenate((out.heel_switch, part.heel_switch)),
            np.concatenate((out.heel_force_n, part.heel_force_n)),
            out.events + [(t + shift, e) for t, e in part.events],
        )
    return out


def with_column(signals: Signals, name: str, values: np.ndarray) -> Signals:
    """A copy with one sensor column replaced (a sensor fault)."""
    return replace(signals, **{name: values})


def estimated(events: list[DetectedEvent], kind: Event) -> np.ndarray:
    """Estimated times of the detected events of ``kind``."""
    return np.array([e.t_est_s for e in events if e.event == kind])


def nearest_errors(estimates: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each true event, the signed error of the nearest estimate (inf: none)."""
    if estimates.size == 0:
        return np.full(truth.size, np.inf)
    gaps = estimates[None, :] - truth[:, None]
    return gaps[np.arange(truth.size), np.argmin(np.abs(gaps), axis=1)]


def clonus_burst(
    rate_hz: float, duration_s: float, seed: int, frequency_hz: float,
    amplitude_rad_s: float, start_s: float = 1.0, beats: int = 12,
) -> Signals:
    """Standing still, then one burst of ankle clonus as it is recorded: a limit cycle
    (Hidler and Rymer 1999, IEEE Trans Rehabil Eng 7:327: stable from beat to beat, the
    period drifting a few per cent) of ``beats`` beats at ``frequency_hz``, reaching its
    amplitude within two beats of the stretch that starts it and dying out over the last
    three. The beat is not a sine: the reflex contraction drives plantarflexion faster than
    the passive return (a second harmonic of a fifth of the amplitude). Sensor noise
    0.05 rad/s; the heel load follows the oscillation as in ``clonus_stand``."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration_s, 1.0 / rate_hz)
    periods = (1.0 + 0.04 * rng.standard_normal(beats)) / frequency_hz
    edges = start_s + np.concatenate(([0.0], np.cumsum(periods)))
    gyro = 0.05 * rng.standard_normal(t.size)
    force = np.full(t.size, 300.0)
    for k in range(beats):
        inside = (t >= edges[k]) & (t < edges[k + 1])
        phase = 2.0 * np.pi * (t[inside] - edges[k]) / periods[k]
        envelope = min(1.0, (k + 1) / 2.0, (beats - k) / 3.0)
        wave = np.sin(phase) + 0.2 * np.sin(2.0 * phase + 0.5)
        gyro[inside] += amplitude_rad_s * envelope * wave / 1.1
        force[inside] = 300.0 * (1.0 + 0.8 * envelope * np.sin(phase + 1.0))
    switch = (force > 120.0).astype(float)
    return Signals(t, gyro, switch, force, [])
