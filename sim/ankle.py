"""Ankle angle and toe clearance: swing dynamics of the foot, kinematic stance.

Angles are in radians inside the numerics, positive = dorsiflexion, 0 = neutral (foot
at a right angle to the shank).

Stance: the foot is on the ground and the ankle follows a template of healthy stance
(Winter 1991, Perry 1992): 0 at heel strike, about 5 deg of plantarflexion in loading
response, about 10 deg of dorsiflexion late in stance, then plantarflexion to the
profile's toe-off angle. A foot that lands dropped blends into the template within a few
tens of ms (foot slap).

Swing: the foot rotates about the ankle with the shank taken as vertical,

    I * accel = tau_voluntary + activation * fes_max_torque + tau_gravity + tau_passive,
    tau_gravity = -m * g * d * cos(angle),
    tau_passive = -k * (angle - rest_angle) - b * velocity,

integrated with semi-implicit (symplectic) Euler at the sample period. The voluntary
torque is the patient's own tibialis anterior tracking the healthy swing trajectory
(computed-torque control of a 5 Hz, critically damped tracking loop), clipped between 0
(plantarflexors are silent in swing) and ``ta_strength_fraction`` times the healthy
maximum: a weak muscle cannot lift the foot against gravity and passive stiffness, and
the foot drops.

Toe clearance in swing is the healthy toe height (Winter 1992: minimum toe clearance
about 13 mm at mid-swing) plus the toe's drop when the ankle lags the healthy angle,
``toe_lever * sin(angle - healthy_angle)``, plus the stride's vertical limb offset (hip
compensation and scatter), which rises and falls with ``sin(pi * swing_phase)``.
Negative clearance means the toes would be below the floor: a toe drag.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim.patient import PatientProfile

GRAVITY_M_S2 = 9.81
#: Bandwidth and damping ratio of the voluntary tracking of the healthy ankle angle.
TRACKING_BANDWIDTH_HZ = 5.0
TRACKING_DAMPING_RATIO = 1.0
#: Time constant with which a foot that lands dropped is slapped onto the stance template.
LANDING_TIME_CONSTANT_S = 0.03
#: Healthy swing: the ankle returns from its toe-off angle to neutral by mid-swing.
SWING_LIFT_PHASE = 0.5

#: Healthy stance template (stance phase, ankle angle in deg) up to the toe-off angle,
#: joined by smoothsteps; after Winter 1991 and Perry 1992.
STANCE_KNOTS_PHASE = np.array([0.0, 0.12, 0.75])
STANCE_KNOTS_DEG = np.array([0.0, -5.0, 10.0])

#: Healthy toe height in swing (swing phase, height in mm, slope in mm per unit swing
#: phase), joined by cubic Hermite segments: the toe leaves the ground at toe off, rises
#: in early swing, passes its minimum clearance of 13 mm at mid-swing (Winter 1992), and
#: rises again as the foot dorsiflexes before heel strike.
TOE_KNOTS_PHASE = np.array([0.0, 0.2, 0.5, 0.85, 1.0])
TOE_KNOTS_MM = np.array([0.0, 50.0, 13.0, 100.0, 75.0])
TOE_KNOTS_SLOPE = np.array([250.0, 0.0, 0.0, 0.0, -300.0])

# Parameter array.
P_INERTIA = 0  # foot inertia about the ankle, kg m2
P_GRAVITY_TORQUE = 1  # m g d, N m
P_STIFFNESS = 2  # N m / rad
P_DAMPING = 3  # N m s / rad
P_REST_RAD = 4  # passive rest angle
P_VOLUNTARY_MAX = 5  # strongest voluntary dorsiflexion torque, N m
P_FES_MAX = 6  # torque at full activation, N m
P_TOE_LEVER = 7  # m
P_TOE_OFF_RAD = 8  # ankle angle at toe off
N_PARAMS = 9

# State array.
S_ANGLE = 0  # rad
S_VELOCITY = 1  # rad/s
S_IN_SWING = 2  # 1.0 in swing
S_LANDING_OFFSET = 3  # rad, landing angle minus the stance template at heel strike
S_STRIDE = 4  # stride row the state belongs to
N_STATE = 5


def ankle_params(profile: PatientProfile) -> np.ndarray:
    """The ankle kernels' parameter array for ``profile`` (SI units)."""
    params = np.empty(N_PARAMS)
    params[P_INERTIA] = profile.foot_inertia_kg_m2
    params[P_GRAVITY_TORQUE] = profile.foot_mass_kg * GRAVITY_M_S2 * profile.foot_com_distance_m
    params[P_STIFFNESS] = profile.passive_stiffness_nm_per_rad
    params[P_DAMPING] = profile.passive_damping_nm_s_per_rad
    params[P_REST_RAD] = math.radians(profile.passive_rest_angle_deg)
    params[P_VOLUNTARY_MAX] = profile.ta_strength_fraction * profile.healthy_dorsiflexion_torque_nm
    params[P_FES_MAX] = profile.fes_max_torque_nm
    params[P_TOE_LEVER] = profile.toe_lever_m
    params[P_TOE_OFF_RAD] = math.radians(profile.toe_off_ankle_angle_deg)
    return params


def fastest_mode_rad_s(profile: PatientProfile) -> float:
    """Highest natural frequency of the swing dynamics (passive plus tracking loop).

    Semi-implicit Euler is stable while this times the sample period stays below 2; the
    limb asks for a margin (see ``SimulatedLimb``).
    """
    tracking = (2.0 * math.pi * TRACKING_BANDWIDTH_HZ) ** 2
    return math.sqrt(profile.passive_stiffness_nm_per_rad / profile.foot_inertia_kg_m2 + tracking)


def new_ankle_state(params: np.ndarray, stance_phase: float, stride: int) -> np.ndarray:
    """An ankle standing at ``stance_phase`` of stance in stride row ``stride``."""
    state = np.zeros(N_STATE)
    state[S_ANGLE] = stance_angle(stance_phase, params[P_TOE_OFF_RAD])
    state[S_STRIDE] = stride
    return state


@numba.njit(cache=True)
def _smoothstep(a: float, b: float, x: float) -> float:
    """From ``a`` at x = 0 to ``b`` at x = 1 with zero slope at both ends."""
    return a + (b - a) * x * x * (3.0 - 2.0 * x)


@numba.njit(cache=True)
def stance_angle(phase: float, toe_off_rad: float) -> float:
    """Ankle angle (rad) of the stance template at ``phase`` (0 heel strike, 1 toe off)."""
    last = STANCE_KNOTS_PHASE.shape[0] - 1
    i = 0
    while i < last and phase >= STANCE_KNOTS_PHASE[i + 1]:
        i += 1
    start = STANCE_KNOTS_PHASE[i]
    if i < last:
        end = STANCE_KNOTS_PHASE[i + 1]
        target = math.radians(STANCE_KNOTS_DEG[i + 1])
    else:
        end = 1.0
        target = toe_off_rad
    x = min(max((phase - start) / (end - start), 0.0), 1.0)
    return _smoothstep(math.radians(STANCE_KNOTS_DEG[i]), target, x)


@numba.njit(cache=True)
def swing_reference(phase: float, toe_off_rad: float) -> tuple[float, float, float]:
    """Healthy swing angle (rad) and its first two derivatives with respect to swing phase.

    A quintic (minimum-jerk) return from the toe-off angle to neutral by mid-swing.
    """
    if phase >= SWING_LIFT_PHASE:
        return 0.0, 0.0, 0.0
    x = phase / SWING_LIFT_PHASE
    span = -toe_off_rad  # from toe_off_rad up to 0
    s = x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
    ds = 30.0 * x * x * (1.0 - x) * (1.0 - x) / SWING_LIFT_PHASE
    dds = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x) / (SWING_LIFT_PHASE * SWING_LIFT_PHASE)
    return toe_off_rad + span * s, span * ds, span * dds


@numba.njit(cache=True)
def toe_height_reference_m(phase: float) -> float:
    """Healthy toe height above the floor (m) at swing ``phase`` (0 toe off, 1 heel strike)."""
    n = TOE_KNOTS_PHASE.shape[0]
    i = 0
    while i < n - 2 and phase >= TOE_KNOTS_PHASE[i + 1]:
        i += 1
    width = TOE_KNOTS_PHASE[i + 1] - TOE_KNOTS_PHASE[i]
    x = min(max((phase - TOE_KNOTS_PHASE[i]) / width, 0.0), 1.0)
    x2 = x * x
    x3 = x2 * x
    height = (
        (2.0 * x3 - 3.0 * x2 + 1.0) * TOE_KNOTS_MM[i]
        + (x3 - 2.0 * x2 + x) * width * TOE_KNOTS_SLOPE[i]
        + (-2.0 * x3 + 3.0 * x2) * TOE_KNOTS_MM[i + 1]
        + (x3 - x2) * width * TOE_KNOTS_SLOPE[i + 1]
    )
    return 1e-3 * height


@numba.njit(cache=True)
def ankle_stance(
    state: np.ndarray,
    params: np.ndarray,
    stride: int,
    phase: float,
    since_heel_strike_s: float,
    dt_s: float,
) -> None:
    """Move the ankle to the stance template at ``phase`` of stance of stride ``stride``."""
    template = stance_angle(phase, params[P_TOE_OFF_RAD])
    if state[S_IN_SWING] != 0.0 or int(state[S_STRIDE]) != stride:
        state[S_LANDING_OFFSET] = state[S_ANGLE] - stance_angle(0.0, params[P_TOE_OFF_RAD])
        state[S_IN_SWING] = 0.0
        state[S_STRIDE] = stride
    angle = template + state[S_LANDING_OFFSET] * math.exp(
        -since_heel_strike_s / LANDING_TIME_CONSTANT_S
    )
    state[S_VELOCITY] = (angle - state[S_ANGLE]) / dt_s
    state[S_ANGLE] = angle


@numba.njit(cache=True)
def ankle_swing_step(
    state: np.ndarray,
    params: np.ndarray,
    stride: int,
    toe_off_s: float,
    swing_s: float,
    from_s: float,
    to_s: float,
    activation: float,
) -> None:
    """Integrate the swinging foot of stride ``stride`` from ``from_s`` to ``to_s``.

    The swing lasts ``swing_s`` from ``toe_off_s``. On the first call of a swing the foot
    starts at the toe-off angle, at rest, at the toe-off instant.
    """
    if state[S_IN_SWING] == 0.0 or int(state[S_STRIDE]) != stride:
        state[S_ANGLE] = params[P_TOE_OFF_RAD]
        state[S_VELOCITY] = 0.0
        state[S_IN_SWING] = 1.0
        state[S_STRIDE] = stride
        from_s = toe_off_s
    h_s = to_s - from_s
    angle = state[S_ANGLE]
    velocity = state[S_VELOCITY]
    inertia = params[P_INERTIA]
    passive = -params[P_STIFFNESS] * (angle - params[P_REST_RAD]) - params[P_DAMPING] * velocity
    gravity = -params[P_GRAVITY_TORQUE] * math.cos(angle)
    ref, dref, ddref = swing_reference((from_s - toe_off_s) / swing_s, params[P_TOE_OFF_RAD])
    ref_velocity = dref / swing_s
    ref_accel = ddref / (swing_s * swing_s)
    wn = 2.0 * math.pi * TRACKING_BANDWIDTH_HZ
    wanted = inertia * (
        ref_accel
        + wn * wn * (ref - angle)
        + 2.0 * TRACKING_DAMPING_RATIO * wn * (ref_velocity - velocity)
    )
    voluntary = min(max(wanted - passive - gravity, 0.0), params[P_VOLUNTARY_MAX])
    torque = voluntary + activation * params[P_FES_MAX] + passive + gravity
    velocity += h_s * torque / inertia
    state[S_VELOCITY] = velocity
    state[S_ANGLE] = angle + h_s * velocity


@numba.njit(cache=True)
def toe_clearance_m(
    state: np.ndarray, params: np.ndarray, phase: float, limb_offset_m: float
) -> float:
    """Toe height above the floor (m) of the swinging foot at swing ``phase``."""
    ref = swing_reference(phase, params[P_TOE_OFF_RAD])[0]
    return (
        toe_height_reference_m(phase)
        + params[P_TOE_LEVER] * math.sin(state[S_ANGLE] - ref)
        + limb_offset_m * math.sin(math.pi * phase)
    )
