"""Tibialis anterior under surface stimulation: pulses in, normalised force out.

The chain, per physics step h of the limb (at most 1 ms):

1. Electromechanical delay: the pulses of a step act on the muscle a fixed delay later
   (a ring buffer of steps): conduction, neuromuscular transmission and the start of
   excitation-contraction coupling before the calcium dynamics below. The force then
   rises over a further 10-20 ms, so force onset lags the pulse by about the 30-50 ms
   of Cavanagh and Komi 1979 in all.
2. Recruitment: the fraction of motor units a pulse recruits is a sigmoid of its charge
   (amplitude x pulse width): exactly zero below the threshold charge, one above the
   saturation charge, a smoothstep in between. Veltink et al. 1992 report thresholds
   near 20 mA and saturation near 60 mA at the usual pulse widths; Ding et al. 2007
   make the force scale A rise with pulse duration in the same saturating way. Here
   recruitment scales A, so half the units give half the force at any frequency.
3. Force: the model of Ding, Wexler and Binder-Macleod 2003 (J Electromyogr Kinesiol
   13:575), in SI units::

       dCN/dt = sum_i R_i exp(-(t - t_i)/tau_c) / tau_c - CN / tau_c
       R_i    = 1 + (R0 - 1) exp(-(t_i - t_{i-1}) / tau_c),   R0 = Km + offset
       dF/dt  = A r CN/(Km + CN) - F / (tau1 + tau2 CN/(Km + CN))

   CN is the calcium-troponin complex, F the force, r the recruitment. The calcium
   drive of the pulses is carried in a second state E = sum_i R_i exp(-(t - t_i)/tau_c),
   which makes the step exact for CN: E decays by exp(-h/tau_c) and CN moves to
   exp(-h/tau_c) (CN + h E / tau_c). F moves exactly towards its quasi-steady value with
   its current time constant. The force-frequency relation (unfused twitches at a few
   Hz, near-tetanic at 30-40 Hz) and the activation and relaxation dynamics all follow
   from these two equations; no separate activation filter is needed.
4. Fatigue and recovery (Ding et al. 2003, corrected by Doll et al. 2015)::

       dA/dt    = -(A - A_rest) / tau_fat + alpha_A F
       dKm/dt   = -(Km - Km_rest) / tau_fat + alpha_Km F
       dtau1/dt = -(tau1 - tau1_rest) / tau_fat + alpha_tau1 F

   integrated with explicit Euler (h / tau_fat < 1e-4). The muscle fades under
   stimulation and recovers at rest with ``tau_fat``. Fatigue acts on the force the
   recruited units produce, which slightly underestimates the fatigue of the units that
   are stimulated at partial recruitment.

The output is the force as a fraction of ``F_ref = A_rest (tau1_rest + tau2)``, the
asymptote of a fully recruited, rested muscle at infinite frequency; the ankle turns it
into torque with the profile's ``fes_max_torque_nm``. Parameter values (DESIGN.md, as in
the public cocofest library): tau_c 20 ms, A 3009 N/s, tau1 50.957 ms, tau2 60 ms,
Km 0.103, R0 = Km + 1.04, tau_fat 127 s, alpha_A -0.4 /s2, alpha_Km 1.9e-5 /(N s),
alpha_tau1 2.1e-5 /N; each profile can change them.
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import allocating_kernel, kernel, pack
from sim.patient import PatientProfile

#: Below these the muscle is at rest: the calcium and force states are set to zero so
#: that a resting muscle costs no exponentials (far below any measurable force).
REST_CALCIUM = 1e-9
REST_FORCE_FRACTION = 1e-9

# Parameter array.
PARAM_NAMES = (
    "step_s",  # physics step h
    "calcium_decay",  # exp(-h / tau_c)
    "tau_c_s",
    "r0_offset",
    "a_rest_n_per_s",
    "tau1_rest_s",
    "tau2_s",
    "km_rest",
    "tau_fat_s",
    "alpha_a_per_s2",
    "alpha_km_per_n_s",
    "alpha_tau1_per_n",
    "threshold_uc",  # charge per pulse where recruitment starts
    "saturation_uc",  # charge per pulse where recruitment is complete
    "force_ref_n",  # A_rest (tau1_rest + tau2)
)
(
    P_STEP_S,
    P_CALCIUM_DECAY,
    P_TAU_C_S,
    P_R0_OFFSET,
    P_A_REST,
    P_TAU1_REST_S,
    P_TAU2_S,
    P_KM_REST,
    P_TAU_FAT_S,
    P_ALPHA_A,
    P_ALPHA_KM,
    P_ALPHA_TAU1,
    P_THRESHOLD_UC,
    P_SATURATION_UC,
    P_FORCE_REF_N,
) = range(len(PARAM_NAMES))
N_PARAMS = len(PARAM_NAMES)

# State array.
STATE_NAMES = (
    "drive",  # E: decaying sum of the pulses' calcium drive
    "calcium",  # CN
    "force",  # F, N
    "a",  # force scale, N/s
    "km",
    "tau1",  # s
    "since_pulse",  # s since the latest delayed pulse
    "recruitment",  # recruitment of the latest delayed pulse, 0..1
    "write",  # write position in the delay line
)
(
    S_DRIVE,
    S_CALCIUM,
    S_FORCE,
    S_A,
    S_KM,
    S_TAU1,
    S_SINCE_PULSE,
    S_RECRUITMENT,
    S_WRITE,
) = range(len(STATE_NAMES))
N_STATE = len(STATE_NAMES)


def make_params(profile: PatientProfile, step_s: float) -> np.ndarray:
    """The muscle kernel's parameter array for ``profile`` at physics step ``step_s``."""
    p = profile
    tau_c_s = 1e-3 * p.ding_tau_c_ms
    tau1_rest_s = 1e-3 * p.ding_tau1_rest_ms
    tau2_s = 1e-3 * p.ding_tau2_ms
    return pack(PARAM_NAMES, {
        "step_s": step_s,
        "calcium_decay": math.exp(-step_s / tau_c_s),
        "tau_c_s": tau_c_s,
        "r0_offset": p.ding_r0_km_offset_unitless,
        "a_rest_n_per_s": p.ding_a_rest_n_per_s,
        "tau1_rest_s": tau1_rest_s,
        "tau2_s": tau2_s,
        "km_rest": p.ding_km_rest_unitless,
        "tau_fat_s": p.ding_tau_fat_s,
        "alpha_a_per_s2": p.ding_alpha_a_per_s2,
        "alpha_km_per_n_s": p.ding_alpha_km_per_n_s,
        "alpha_tau1_per_n": p.ding_alpha_tau1_per_n,
        "threshold_uc": p.recruitment_threshold_uc,
        "saturation_uc": p.recruitment_saturation_uc,
        "force_ref_n": p.ding_a_rest_n_per_s * (tau1_rest_s + tau2_s),
    })


def new_muscle_state(params: np.ndarray) -> np.ndarray:
    """A rested muscle: no calcium, no force, fatigue states at rest."""
    state = np.zeros(N_STATE)
    state[S_A] = params[P_A_REST]
    state[S_KM] = params[P_KM_REST]
    state[S_TAU1] = params[P_TAU1_REST_S]
    state[S_SINCE_PULSE] = math.inf
    return state


def delay_line_length(profile: PatientProfile, step_s: float) -> int:
    """Slots of the delay line: the electromechanical delay in steps, plus one."""
    return round(1e-3 * profile.electromechanical_delay_ms / step_s) + 1


def new_delay_line(profile: PatientProfile, step_s: float) -> np.ndarray:
    """An empty delay line: pulses in the first half, their charge (uC) in the second."""
    return np.zeros(2 * delay_line_length(profile, step_s))


@kernel
def recruitment(charge_uc: float, threshold_uc: float, saturation_uc: float) -> float:
    """Fraction of motor units a pulse of ``charge_uc`` recruits (smoothstep sigmoid)."""
    x = (charge_uc - threshold_uc) / (saturation_uc - threshold_uc)
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


@kernel
def fitness(state: np.ndarray, params: np.ndarray) -> float:
    """Force scale A relative to rest (1 rested, lower when fatigued)."""
    return state[S_A] / params[P_A_REST]


@kernel
def muscle_step(
    state: np.ndarray,
    params: np.ndarray,
    delay: np.ndarray,
    pulses: int,
    charge_uc: float,
) -> float:
    """Advance the muscle one physics step; ``pulses`` of ``charge_uc`` enter the delay.

    Returns the force at the end of the step as a fraction of ``F_ref``.
    """
    h = params[P_STEP_S]
    length = delay.shape[0] // 2
    write = int(state[S_WRITE])
    delay[write] = pulses
    delay[length + write] = charge_uc
    # The oldest entry, length - 1 steps ago (``(write + 1) % length`` without a
    # division by a length known only at run time, which cost more than the rest here).
    read = write + 1 if write + 1 < length else 0
    arrived = delay[read]
    state[S_WRITE] = read

    km = state[S_KM]
    tau_c = params[P_TAU_C_S]
    if arrived > 0.0:
        r0 = km + params[P_R0_OFFSET]
        state[S_DRIVE] += arrived * (1.0 + (r0 - 1.0) * math.exp(-state[S_SINCE_PULSE] / tau_c))
        state[S_SINCE_PULSE] = 0.0
        state[S_RECRUITMENT] = recruitment(
            delay[length + read], params[P_THRESHOLD_UC], params[P_SATURATION_UC]
        )
    state[S_SINCE_PULSE] += h

    force = state[S_FORCE]
    if state[S_DRIVE] > 0.0 or state[S_CALCIUM] > 0.0 or force > 0.0:
        decay = params[P_CALCIUM_DECAY]
        calcium = decay * (state[S_CALCIUM] + h * state[S_DRIVE] / tau_c)
        drive = decay * state[S_DRIVE]
        bound = calcium / (km + calcium)
        tau = state[S_TAU1] + params[P_TAU2_S] * bound
        steady = state[S_A] * state[S_RECRUITMENT] * bound * tau
        force = steady + (force - steady) * math.exp(-h / tau)
        if (drive < REST_CALCIUM and calcium < REST_CALCIUM
                and force < REST_FORCE_FRACTION * params[P_FORCE_REF_N]):
            drive = calcium = force = 0.0
        state[S_DRIVE] = drive
        state[S_CALCIUM] = calcium
        state[S_FORCE] = force

    tau_fat = params[P_TAU_FAT_S]
    state[S_A] = max(0.0, state[S_A] + h * (
        -(state[S_A] - params[P_A_REST]) / tau_fat + params[P_ALPHA_A] * force))
    state[S_KM] = km + h * (-(km - params[P_KM_REST]) / tau_fat + params[P_ALPHA_KM] * force)
    state[S_TAU1] = state[S_TAU1] + h * (
        -(state[S_TAU1] - params[P_TAU1_REST_S]) / tau_fat + params[P_ALPHA_TAU1] * force)
    return force / params[P_FORCE_REF_N]


@allocating_kernel
def _isometric(
    state: np.ndarray,
    params: np.ndarray,
    delay: np.ndarray,
    pulses: np.ndarray,
    charge_uc: np.ndarray,
) -> np.ndarray:
    force = np.empty(pulses.shape[0])
    for k in range(pulses.shape[0]):
        force[k] = muscle_step(state, params, delay, pulses[k], charge_uc[k])
    return force


class IsometricMuscle:
    """The tibialis anterior alone, held isometric: for checks against force data.

    ``stimulate`` runs it over pulse and charge sequences, one entry per step of
    ``step_s``, and returns the force fraction at the end of each step.
    """

    def __init__(self, profile: PatientProfile, step_s: float = 1e-3) -> None:
        self.step_s = step_s
        self.params = make_params(profile, step_s)
        self.state = new_muscle_state(self.params)
        self._delay = new_delay_line(profile, step_s)

    def stimulate(self, pulses: np.ndarray, charge_uc: np.ndarray) -> np.ndarray:
        """Force fraction after each step of the given pulses (counts) and charges (uC)."""
        return _isometric(self.state, self.params, self._delay,
                          np.asarray(pulses, dtype=np.int64), np.asarray(charge_uc, float))

    def train(self, frequency_hz: float, duration_s: float, charge_uc: float) -> np.ndarray:
        """Force fraction per step during a constant train (first pulse at once)."""
        steps = round(duration_s / self.step_s)
        pulses = np.zeros(steps, dtype=np.int64)
        if frequency_hz > 0.0:
            times = np.arange(0.0, duration_s, 1.0 / frequency_hz)
            np.add.at(pulses, np.minimum(np.round(times / self.step_s).astype(int), steps - 1), 1)
        return self.stimulate(pulses, np.full(steps, charge_uc))


def endurance_s(
    profile: PatientProfile, target_fraction: float, frequency_hz: float, limit_s: float
) -> float:
    """How long the muscle holds ``target_fraction`` of ``F_ref`` under stimulation.

    The endurance test of FES fatigue studies: a constant-frequency train whose charge a
    feedback controller raises pulse by pulse to hold the target force; the test ends
    when even saturating charge falls 10 % short for a second. Returns ``limit_s`` if it
    never ends.
    """
    muscle = IsometricMuscle(profile)
    p = muscle.params
    steps_per_pulse = round(1.0 / (frequency_hz * muscle.step_s))
    pulses = np.zeros(steps_per_pulse, dtype=np.int64)
    pulses[0] = 1
    span = p[P_SATURATION_UC] - p[P_THRESHOLD_UC]
    level, short_s, t = 0.5, 0.0, 0.0
    while t < limit_s:
        charge = p[P_THRESHOLD_UC] + span * level
        force = muscle.stimulate(pulses, np.full(steps_per_pulse, charge))[-1]
        level = min(max(level + 0.5 * (target_fraction - force) / target_fraction, 0.0), 1.0)
        period_s = steps_per_pulse * muscle.step_s
        t += period_s
        short_s = short_s + period_s if force < 0.9 * target_fraction else 0.0
        if short_s >= 1.0:
            return t
    return limit_s
