"""Tibialis anterior under surface stimulation: pulses in, activation (0..1) out.

The chain, per sample of the trial:

1. Electromechanical delay: the pulses of a sample act on the muscle a fixed delay later
   (a ring buffer of samples). Cavanagh and Komi 1979 measured 30-50 ms between muscle
   excitation and force; the profile sets it.
2. Recruitment: the fraction of motor units a pulse recruits is a sigmoid of its charge
   (amplitude x pulse width): exactly zero below the threshold charge, one above the
   saturation charge, a smoothstep in between. Veltink et al. 1992 report thresholds near
   20 mA and saturation near 60 mA at the usual pulse widths.
3. Fusion: each pulse adds one unit to a twitch state that decays with the calcium time
   constant of Ding et al. 2003 (tau_c = 20 ms), so the state's mean is frequency x tau_c.
   A Hill function of this state gives the force-frequency relation of electrically
   stimulated muscle: unfused twitches at a few Hz, half force near the profile's
   half-fusion frequency, near-tetanic at 30-40 Hz.
4. Activation dynamics: first order, faster on the way up than on the way down
   (Zajac 1989), with the profile's time constants.

Fatigue (Riener and Veltink 1998; Ding 2003) is not modelled yet; it would be one more
state entry scaling the fused drive, with its own time constants in the parameter array.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.patient import PatientProfile

#: Decay time constant of the twitch (calcium) state, tau_c of Ding et al. 2003.
TWITCH_TIME_CONSTANT_S = 0.020
#: Steepness of the force-frequency relation (Hill exponent on the twitch state).
FUSION_EXPONENT = 3.0

# Parameter array.
P_TWITCH_DECAY = 0  # per-sample decay factor of the twitch state
P_FUSION_HALF = 1  # twitch state at half force
P_THRESHOLD_UC = 2  # charge per pulse where recruitment starts, uC
P_SATURATION_UC = 3  # charge per pulse where recruitment is complete, uC
P_RISE = 4  # per-sample activation gain while activation rises
P_FALL = 5  # per-sample activation gain while activation falls
N_PARAMS = 6

# State array.
S_TWITCH = 0  # twitch (calcium) state, pulses
S_RECRUITMENT = 1  # recruitment of the latest delayed pulse, 0..1
S_ACTIVATION = 2  # activation, 0..1
S_WRITE = 3  # write position in the delay line
N_STATE = 4

# Rows of the delay line.
D_PULSES = 0
D_CHARGE_UC = 1


def muscle_params(profile: PatientProfile, sample_period_s: float) -> np.ndarray:
    """The muscle kernel's parameter array for ``profile`` at this sample period."""
    dt = sample_period_s
    params = np.empty(N_PARAMS)
    params[P_TWITCH_DECAY] = math.exp(-dt / TWITCH_TIME_CONSTANT_S)
    params[P_FUSION_HALF] = profile.fusion_half_frequency_hz * TWITCH_TIME_CONSTANT_S
    params[P_THRESHOLD_UC] = profile.recruitment_threshold_uc
    params[P_SATURATION_UC] = profile.recruitment_saturation_uc
    params[P_RISE] = 1.0 - math.exp(-dt / (1e-3 * profile.activation_time_constant_ms))
    params[P_FALL] = 1.0 - math.exp(-dt / (1e-3 * profile.deactivation_time_constant_ms))
    return params


def new_muscle_state() -> np.ndarray:
    """A resting muscle: no twitch, no activation."""
    return np.zeros(N_STATE)


def new_delay_line(profile: PatientProfile, sample_period_s: float) -> np.ndarray:
    """An empty delay line holding ``electromechanical_delay_ms`` worth of samples."""
    delay_samples = round(1e-3 * profile.electromechanical_delay_ms / sample_period_s)
    return np.zeros((2, delay_samples + 1))


@numba.njit(cache=True)
def recruitment(charge_uc: float, threshold_uc: float, saturation_uc: float) -> float:
    """Fraction of motor units a pulse of ``charge_uc`` recruits (smoothstep sigmoid)."""
    x = (charge_uc - threshold_uc) / (saturation_uc - threshold_uc)
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


@numba.njit(cache=True)
def fusion(twitch: float, half: float) -> float:
    """Force-frequency factor 0..1 of the twitch state (Hill function)."""
    if twitch <= 0.0:
        return 0.0
    x = (twitch / half) ** FUSION_EXPONENT
    return x / (1.0 + x)


@numba.njit(cache=True)
def muscle_step(
    state: np.ndarray,
    params: np.ndarray,
    delay: np.ndarray,
    pulses: int,
    charge_uc: float,
) -> float:
    """Advance the muscle one sample with ``pulses`` of ``charge_uc`` each; new activation."""
    length = delay.shape[1]
    write = int(state[S_WRITE])
    delay[D_PULSES, write] = pulses
    delay[D_CHARGE_UC, write] = charge_uc
    read = (write + 1) % length  # the oldest entry: length - 1 samples ago
    arrived = delay[D_PULSES, read]
    state[S_WRITE] = read

    state[S_TWITCH] = state[S_TWITCH] * params[P_TWITCH_DECAY] + arrived
    if arrived > 0.0:
        state[S_RECRUITMENT] = recruitment(
            delay[D_CHARGE_UC, read], params[P_THRESHOLD_UC], params[P_SATURATION_UC]
        )
    drive = state[S_RECRUITMENT] * fusion(state[S_TWITCH], params[P_FUSION_HALF])
    activation = state[S_ACTIVATION]
    gain = params[P_RISE] if drive > activation else params[P_FALL]
    activation += gain * (drive - activation)
    state[S_ACTIVATION] = activation
    return activation
