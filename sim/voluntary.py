"""Residual voluntary dorsiflexion: how much of it there is now, and why it fades.

The strongest voluntary dorsiflexion torque a patient can produce at time t is

    ta_strength_fraction * healthy_dorsiflexion_torque_nm * fitness(t) * heat(t).

* ``fitness`` is central (motor) fatigue over a session, which in multiple sclerosis
  makes a foot that clears the floor at the start of a walk drop after some minutes
  (walking-related motor fatigability). It follows the fitness equation of Riener,
  Quintern and Schmidt 1996 as used by Riener and Veltink 1998, driven by the patient's
  own effort e (voluntary torque over the torque available, 0..1)::

      dfit/dt = (fit_min - fit) e / T_fat + (1 - fit) (1 - e) / T_rec

  With ``voluntary_fatigue_min_fraction = 1`` the fitness stays at 1.
* ``heat`` is Uhthoff's phenomenon (Uhthoff 1890; Davis et al. 2010, J Appl Physiol
  109:1531): a rise of core temperature slows or blocks conduction in demyelinated
  central axons, so voluntary strength falls while the peripheral nerve that the
  stimulator excites is unaffected. Strength falls linearly by
  ``uhthoff_strength_loss_per_c`` per degree above ``uhthoff_threshold_c``; the core
  temperature starts at ``core_temperature_c`` and rises by ``core_warming_c_per_min``
  while walking (exercise, a warm room). No dose-response curve of dorsiflexor strength
  against temperature has been published that we know of: the loss per degree is a
  profile parameter to be set from a patient's own history, not a measured constant.
"""

from __future__ import annotations

import numpy as np

from controller.kernels import kernel, pack
from sim.patient import PatientProfile

# Parameter array.
PARAM_NAMES = (
    "max_nm",  # rested, cool voluntary maximum
    "fit_min",
    "fatigue_rate",  # h / T_fat
    "recovery_rate",  # h / T_rec
    "temperature_c",  # core temperature at t = 0
    "warming_c_per_s",
    "uhthoff_c",  # threshold
    "loss_per_c",
)
(
    P_MAX_NM,
    P_FIT_MIN,
    P_FATIGUE_RATE,
    P_RECOVERY_RATE,
    P_TEMPERATURE_C,
    P_WARMING_C_PER_S,
    P_UHTHOFF_C,
    P_LOSS_PER_C,
) = range(len(PARAM_NAMES))
N_PARAMS = len(PARAM_NAMES)

# State array.
STATE_NAMES = (
    "fitness",
)
(
    S_FITNESS,
) = range(len(STATE_NAMES))
N_STATE = len(STATE_NAMES)


def make_params(profile: PatientProfile, step_s: float) -> np.ndarray:
    """The voluntary kernels' parameter array for ``profile`` at physics step ``step_s``."""
    p = profile
    return pack(PARAM_NAMES, {
        "max_nm": p.ta_strength_fraction * p.healthy_dorsiflexion_torque_nm,
        "fit_min": p.voluntary_fatigue_min_fraction,
        "fatigue_rate": step_s / p.voluntary_fatigue_time_constant_s,
        "recovery_rate": step_s / p.voluntary_recovery_time_constant_s,
        "temperature_c": p.core_temperature_c,
        "warming_c_per_s": p.core_warming_c_per_min / 60.0,
        "uhthoff_c": p.uhthoff_threshold_c,
        "loss_per_c": p.uhthoff_strength_loss_per_c,
    })


def new_voluntary_state() -> np.ndarray:
    """A rested patient."""
    state = np.zeros(N_STATE)
    state[S_FITNESS] = 1.0
    return state


@kernel
def core_temperature_c(params: np.ndarray, t_s: float) -> float:
    """Core temperature at trial time ``t_s``."""
    return params[P_TEMPERATURE_C] + params[P_WARMING_C_PER_S] * max(t_s, 0.0)


@kernel
def voluntary_max_nm(state: np.ndarray, params: np.ndarray, t_s: float) -> float:
    """The strongest voluntary dorsiflexion torque available at ``t_s`` (N m)."""
    excess = max(core_temperature_c(params, t_s) - params[P_UHTHOFF_C], 0.0)
    heat = max(1.0 - params[P_LOSS_PER_C] * excess, 0.0)
    return params[P_MAX_NM] * state[S_FITNESS] * heat


@kernel
def voluntary_step(state: np.ndarray, params: np.ndarray, effort: float) -> None:
    """Advance central fatigue one physics step at ``effort`` (0..1)."""
    fit = state[S_FITNESS]
    state[S_FITNESS] = fit + (params[P_FIT_MIN] - fit) * effort * params[P_FATIGUE_RATE] + (
        1.0 - fit) * (1.0 - effort) * params[P_RECOVERY_RATE]
