"""How a shank's landing is measured: the figures per stride that
``python -m controller.bench.shank`` reads on real shanks (the Marpino walking dataset,
initial contact at the heel's impact on the foot IMU; see that module for the method and
the sources) and ``sim.validate`` reads on the simulated one.

Per stride, against initial contact: the shank's zero crossing from swing to stance
after the swing peak; the first minimum after the swing peak of a ``SMOOTHING_S`` moving
average, confirmed by a rise of ``RISE_RAD_S``: the rule by which the shank detector
dates heel strike (``controller.detect.gyro.SHANK``, checked by
``tests/test_sim_shank.py``); that minimum's depth after a 50 ms moving average; the
median over stance; the swing peak; and the curve around contact over the swing peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.gait import NEXT_HEEL_STRIKE, TOE_OFF
from sim.limb import SimulatedLimb
from sim.patient import load_patient

#: The shank detector's moving average and the rise that confirms its heel strike
#: (``smoothing_ms`` and ``heel_strike_rise_rad_s`` of ``controller.detect.gyro.SHANK``).
SMOOTHING_S = 0.03
RISE_RAD_S = 0.25
#: The heel-strike minimum's depth is read after this moving average, in this window.
DEPTH_SMOOTHING_S = 0.05
DEPTH_WINDOW_S = (-0.05, 0.15)
#: Window of the median curve around initial contact.
CURVE_S = (-0.2, 0.25)
CURVE_STEP_S = 0.01
SIM_RATE_HZ = 500.0
SIM_DURATION_S = 60.0
COLUMNS = ("pressure_lag_ms", "zero_crossing_ms", "first_minimum_ms", "minimum_rad_s",
           "stance_median_rad_s", "swing_peak_rad_s")


def moving_average(x: np.ndarray, width_s: float, rate_hz: float) -> np.ndarray:
    """Centred moving average over ``width_s`` (no delay)."""
    width = max(1, round(width_s * rate_hz))
    return np.convolve(x, np.ones(width) / width, mode="same")


def first_minimum_s(t_s: np.ndarray, smoothed: np.ndarray, after: int, until_s: float) -> float:
    """Time of the first minimum below zero after sample ``after`` that the signal then
    rises from by ``RISE_RAD_S`` (the shank detector's heel-strike rule); the lowest
    point before ``until_s`` if none is confirmed."""
    lowest, at = np.inf, after
    for j in range(after, int(np.searchsorted(t_s, until_s))):
        if smoothed[j] < lowest:
            lowest, at = smoothed[j], j
        elif lowest < 0.0 and smoothed[j] - lowest >= RISE_RAD_S:
            break
    return float(t_s[at])


def stride_figures(t_s: np.ndarray, shank_rad_s: np.ndarray, contact_s: float,
                   toe_off_s: float, next_contact_s: float) -> tuple[float, ...]:
    """The ``COLUMNS`` after the pressure lag (which the caller knows) of one stride."""
    rate_hz = 1.0 / float(np.median(np.diff(t_s)))
    smoothed = moving_average(shank_rad_s, SMOOTHING_S, rate_hz)
    depth = moving_average(shank_rad_s, DEPTH_SMOOTHING_S, rate_hz)
    i0, i_to, i1 = (int(np.searchsorted(t_s, x)) for x in (contact_s, toe_off_s,
                                                           next_contact_s))
    peak = i_to + int(np.argmax(shank_rad_s[i_to:i1]))
    below = np.flatnonzero(smoothed[peak:] < 0.0)
    zero_s = float(t_s[peak + below[0]]) if below.size else np.nan
    minimum_s = first_minimum_s(t_s, smoothed, peak, next_contact_s + 0.25)
    window = (t_s >= contact_s + DEPTH_WINDOW_S[0]) & (t_s < contact_s + DEPTH_WINDOW_S[1])
    return (1e3 * (zero_s - next_contact_s), 1e3 * (minimum_s - next_contact_s),
            float(depth[window].min()), float(np.median(shank_rad_s[i0:i_to])),
            float(shank_rad_s[peak]))


def curve(t_s: np.ndarray, shank_rad_s: np.ndarray, contact_s: float,
          swing_peak_rad_s: float) -> np.ndarray:
    """The shank around ``contact_s`` on the ``CURVE_S`` grid, over the swing peak."""
    grid = np.arange(CURVE_S[0], CURVE_S[1] + 1e-9, CURVE_STEP_S)
    return np.interp(contact_s + grid, t_s, shank_rad_s) / swing_peak_rad_s


@dataclass(frozen=True)
class Strides:
    """Per stride: the ``COLUMNS``, its walker and its curve around the next contact."""

    figures: np.ndarray
    walkers: np.ndarray
    curves: np.ndarray

    def subset(self, mask: np.ndarray) -> Strides:
        return Strides(self.figures[mask], self.walkers[mask], self.curves[mask])


def simulated_strides(name: str = "healthy", seed: int = 0) -> Strides:
    """The same figures on an unstimulated simulated walk (contact: the true heel strike,
    pressure lag 0)."""
    limb = SimulatedLimb(load_patient(name), SIM_RATE_HZ, SIM_DURATION_S, seed)
    samples = limb.run(np.zeros((round(SIM_RATE_HZ * SIM_DURATION_S), 4)))
    t, gyro = samples["time_s"], samples["gyro_rad_s"]
    rows, curves = [], []
    for r in limb.schedule.strides:
        if r[0] < 1.0 or r[NEXT_HEEL_STRIKE] > SIM_DURATION_S - 1.0:
            continue
        figures = (0.0, *stride_figures(t, gyro, r[0], r[TOE_OFF], r[NEXT_HEEL_STRIKE]))
        rows.append(figures)
        curves.append(curve(t, gyro, r[NEXT_HEEL_STRIKE], figures[-1]))
    return Strides(np.array(rows), np.array([name] * len(rows)), np.array(curves))
