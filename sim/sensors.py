"""Sensor models: shank gyroscope, heel switch and heel force, from the stride table.

The shank sagittal angular velocity is a phenomenological template of gait phase, the
shape described by Aminian et al. 2002 (J Biomech 35:689) and used for event detection
by Catalfamo et al. 2010 (Sensors 10:5683): after heel strike a short negative minimum,
small positive values while the shank rotates forward over the stance foot, a negative
minimum at toe off, a large positive peak at mid-swing, then a fall through zero in
terminal swing into the negative minimum after the next heel strike. Sign: positive is
forward rotation of the shank. The template is a sum of Gaussian bumps anchored to the
exact events of the current and neighbouring strides, so it is continuous across
strides and its features sit where the true events are. Pathological gait flattens the
whole curve: every bump scales with the profile's swing peak.

The shank signals do not depend on stimulation: the peroneal stimulation moves the foot,
not the shank. White Gaussian noise (sensor noise plus soft-tissue artefact) is added
by the caller from a seeded stream.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.gait import HEEL_OFF, HEEL_STRIKE, MID_SWING, NEXT_HEEL_STRIKE, TOE_OFF
from sim.patient import PatientProfile

# Template shape, as fractions of the swing peak and of the stride duration, read off
# the healthy curves of Aminian et al. 2002 (Fig. 2) and Catalfamo et al. 2010 (Fig. 1).
HS_DIP_GAIN = -0.35  # negative minimum just after heel strike
HS_DIP_DELAY = 0.01  # its centre after heel strike, fraction of the stride (~12 ms;
# Catalfamo et al. 2010 find the post-swing minimum within ~25 ms of initial contact)
HS_DIP_WIDTH = 0.025  # its standard deviation, fraction of the stride
STANCE_GAIN = 0.2  # forward rotation of the shank over the stance foot (mid-stance)
TO_DIP_GAIN = -0.3  # negative minimum at toe off
TO_DIP_WIDTH = 0.035  # fraction of the stride
SWING_PEAK_WIDTH = 0.2  # standard deviation of the mid-swing peak, fraction of swing

#: Heel force ramps up over this fraction of heel contact after heel strike (loading
#: response) and down over the same fraction before heel off.
HEEL_LOAD_RAMP = 0.15
GRAVITY_M_S2 = 9.81

# Parameter array of the sensor kernels.
P_SWING_PEAK = 0  # rad/s
P_NOISE_SD = 1  # rad/s
P_HEEL_FORCE_PEAK = 2  # N
N_PARAMS = 3


def sensor_params(profile: PatientProfile) -> np.ndarray:
    """The sensor kernels' parameter array for ``profile`` (SI units)."""
    params = np.empty(N_PARAMS)
    params[P_SWING_PEAK] = profile.gyro_swing_peak_rad_s
    params[P_NOISE_SD] = profile.gyro_noise_rad_s
    params[P_HEEL_FORCE_PEAK] = profile.heel_load_fraction_bw * profile.body_mass_kg * (
        GRAVITY_M_S2
    )
    return params


@numba.njit(cache=True)
def _bump(t_s: float, centre_s: float, width_s: float) -> float:
    """Unit Gaussian bump."""
    x = (t_s - centre_s) / width_s
    return math.exp(-0.5 * x * x)


@numba.njit(cache=True)
def _stride_gyro(row: np.ndarray, t_s: float, peak: float) -> float:
    """Contribution of one stride's features to the shank angular velocity at ``t_s``."""
    stride = row[NEXT_HEEL_STRIKE] - row[HEEL_STRIKE]
    swing = row[NEXT_HEEL_STRIKE] - row[TOE_OFF]
    value = HS_DIP_GAIN * peak * _bump(
        t_s, row[HEEL_STRIKE] + HS_DIP_DELAY * stride, HS_DIP_WIDTH * stride
    )
    value += TO_DIP_GAIN * peak * _bump(t_s, row[TOE_OFF], TO_DIP_WIDTH * stride)
    value += peak * _bump(t_s, row[MID_SWING], SWING_PEAK_WIDTH * swing)
    if row[HEEL_STRIKE] <= t_s < row[TOE_OFF]:
        s = math.sin(math.pi * (t_s - row[HEEL_STRIKE]) / (row[TOE_OFF] - row[HEEL_STRIKE]))
        value += STANCE_GAIN * peak * s * s
    return value


@numba.njit(cache=True)
def gyro_template(strides: np.ndarray, index: int, t_s: float, params: np.ndarray) -> float:
    """Noise-free shank sagittal angular velocity (rad/s) at ``t_s`` in stride ``index``."""
    peak = params[P_SWING_PEAK]
    value = 0.0
    for j in range(max(index - 1, 0), min(index + 2, strides.shape[0])):
        value += _stride_gyro(strides[j], t_s, peak)
    return value


@numba.njit(cache=True)
def heel_switch(strides: np.ndarray, index: int, t_s: float) -> int:
    """1 while the heel is on the ground (heel strike to heel off), else 0."""
    row = strides[index]
    return 1 if row[HEEL_STRIKE] <= t_s < row[HEEL_OFF] else 0


@numba.njit(cache=True)
def heel_force(strides: np.ndarray, index: int, t_s: float, params: np.ndarray) -> float:
    """Force under the heel (N): a trapezoid over heel contact, peak a body-weight fraction."""
    row = strides[index]
    contact = row[HEEL_OFF] - row[HEEL_STRIKE]
    x = (t_s - row[HEEL_STRIKE]) / contact
    if x < 0.0 or x >= 1.0:
        return 0.0
    shape = min(1.0, x / HEEL_LOAD_RAMP, (1.0 - x) / HEEL_LOAD_RAMP)
    return params[P_HEEL_FORCE_PEAK] * shape
