"""Synthetic shank-gyroscope walks for the gyro detector's tests
(``tests/test_detect_gyro.py``, ``tests/test_detect_steps.py``).

A stride has the shape of a real shank (Aminian et al. 2002; Catalfamo et al. 2010; the
Marpino walkers, docs/detection.md): a large positive peak in swing, a dip just after
heel strike, a negative plateau through stance deepening into the toe-off dip. The true
heel strike is the minimum of the noise-free heel-strike dip and the true toe off the
point where the noise-free signal, rising from its toe-off dip, crosses the shank
configuration's toe-off fraction of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.detect.gyro import SHANK

CONFIG = SHANK.model_copy(update={"mount_check_strides": 0})


@dataclass(frozen=True)
class Walk:
    """A synthetic recording and the true event times (s) of its noise-free signal."""

    t_s: np.ndarray
    gyro_rad_s: np.ndarray
    toe_off_s: np.ndarray
    mid_swing_s: np.ndarray
    heel_strike_s: np.ndarray


@dataclass(frozen=True)
class Gait:
    """Swing peak (rad/s), the other features as fractions of it, and widths (s)."""

    stride_s: float
    peak: float
    toe_off: float = -0.55
    heel_strike: float = -0.4
    stance: float = -0.2
    peak_width_s: float = 0.08
    toe_off_width_s: float = 0.05
    heel_strike_width_s: float = 0.025


HEALTHY = Gait(1.1, 5.0)
PATHOLOGICAL = Gait(1.4, 1.5, peak_width_s=0.11, toe_off_width_s=0.06)


def bump(t: np.ndarray, centre_s: float, amplitude: float, width_s: float) -> np.ndarray:
    return amplitude * np.exp(-0.5 * ((t - centre_s) / width_s) ** 2)


def _plateau(t: np.ndarray, start_s: float, end_s: float, depth: float) -> np.ndarray:
    """A raised-cosine plateau from ``start_s`` to ``end_s`` (a tenth of it each side
    to ramp)."""
    ramp = 0.1 * (end_s - start_s)
    out = np.zeros_like(t)
    up = (t >= start_s) & (t < start_s + ramp)
    out[up] = 0.5 * (1.0 - np.cos(np.pi * (t[up] - start_s) / ramp))
    out[(t >= start_s + ramp) & (t <= end_s - ramp)] = 1.0
    down = (t > end_s - ramp) & (t <= end_s)
    out[down] = 0.5 * (1.0 + np.cos(np.pi * (t[down] - end_s + ramp) / ramp))
    return depth * out


def _extremum(t: np.ndarray, clean: np.ndarray, near_s: float, lowest: bool) -> float:
    window = np.flatnonzero(np.abs(t - near_s) < 0.06)
    pick = np.argmin(clean[window]) if lowest else np.argmax(clean[window])
    return float(t[window[pick]])


def _toe_off(t: np.ndarray, clean: np.ndarray, near_s: float) -> float:
    """Where the clean signal, rising from its dip near ``near_s``, crosses 0.8 of it."""
    dip = int(np.searchsorted(t, _extremum(t, clean, near_s, True)))
    level = CONFIG.toe_off_rise_fraction * clean[dip]
    k = dip + int(np.argmax(clean[dip:] >= level))
    weight = (level - clean[k - 1]) / (clean[k] - clean[k - 1])
    return float(t[k - 1] + weight * (t[k] - t[k - 1]))


def walk(
    rate_hz: float,
    strides: int,
    seed: int,
    gait: Gait = HEALTHY,
    stand_before_s: float = 1.0,
    stand_after_s: float = 1.0,
    noise_rad_s: float = 0.05,
) -> Walk:
    """Standing, ``strides`` strides starting with a toe off, standing again.

    Stride time varies by 3 % and amplitudes by 8 % from stride to stride; white noise
    is added to every sample. Swing is 40 % of the stride, the peak at 45 % of swing.
    """
    rng = np.random.default_rng(seed)
    durations = gait.stride_s * (1.0 + 0.03 * rng.standard_normal(strides))
    starts = stand_before_s + np.concatenate(([0.0], np.cumsum(durations[:-1])))
    end_s = starts[-1] + 0.4 * durations[-1] + stand_after_s
    t = np.arange(0.0, end_s, 1.0 / rate_hz)
    clean = np.zeros_like(t)
    nominal = []
    for k, (start, duration) in enumerate(zip(starts, durations, strict=True)):
        peak = gait.peak * (1.0 + 0.08 * rng.standard_normal())
        toe_off = start
        mid_swing = start + 0.45 * 0.4 * duration
        heel_strike = start + 0.4 * duration
        clean += bump(t, toe_off, gait.toe_off * peak, gait.toe_off_width_s)
        clean += bump(t, mid_swing, peak, gait.peak_width_s)
        clean += bump(t, heel_strike, gait.heel_strike * peak, gait.heel_strike_width_s)
        if k + 1 < strides:  # the stance up to the next toe off
            clean += _plateau(t, heel_strike + 0.03, starts[k + 1], gait.stance * peak)
        nominal.append((toe_off, mid_swing, heel_strike))
    gyro = clean + noise_rad_s * rng.standard_normal(t.size)
    return Walk(
        t,
        gyro,
        np.array([_toe_off(t, clean, n[0]) for n in nominal]),
        np.array([_extremum(t, clean, n[1], False) for n in nominal]),
        np.array([_extremum(t, clean, n[2], True) for n in nominal]),
    )
