"""Ankle angle, foot slap and toe clearance: foot dynamics in swing and loading response.

Angles are in radians inside the numerics, positive = dorsiflexion, 0 = neutral (foot
at a right angle to the shank). The foot is in one of three modes.

Swing (toe off to heel strike): the foot rotates about the ankle with the shank taken as
vertical::

    I accel = tau_vol + a * fes_max + tau_grav + tau_passive + tau_end + tau_reflex
    tau_grav    = -m g d cos(angle)
    tau_passive = -k (angle - rest) - b velocity
    tau_end     = -K w (exp((angle - limit_df) / w) - 1)   beyond the dorsiflexion limit
                  +K w (exp((limit_pf - angle) / w) - 1)   beyond the plantarflexion limit

integrated with semi-implicit (symplectic) Euler at the limb's physics step. The passive
moment is linear in mid-range and rises exponentially at the ends of the range of motion
(the double-exponential form of Riener and Edrich 1999, J Biomech 32:539, and Amankwah
et al. 2004), so that no stimulation can drive the foot far past the joint's limit.
``a`` is the tibialis anterior's force fraction from ``sim.muscle``. Its torque, and
the voluntary maximum, scale with the muscle's force-velocity relation: less force
while the foot dorsiflexes (the muscle shortens, Hill 1938), up to 1.8 times more while
it is pulled into plantarflexion (eccentric, Katz 1939), which is what lets a weakly
active muscle brake the forefoot after heel strike.

The voluntary torque is the patient's own tibialis anterior following the healthy
trajectory by computed-torque control: an internal model of every torque on the foot
but the fast stretch reflex (so a patient whom stimulation lifts enough lets the muscle
rest), plus a critically damped tracking loop of the profile's bandwidth. It is clipped
between 0 (plantarflexors are silent in swing) and the voluntary maximum of
``sim.voluntary``: a weak muscle cannot lift the foot against gravity and passive
stiffness, and the foot drops. The healthy swing trajectory is a quintic (minimum-jerk)
return from the toe-off angle to neutral by ``swing_lift_fraction`` of swing.

Loading response (heel strike to foot flat), when the heel lands first: the foot turns
about its heel contact point (the heel rocker, Perry 1992) under the heel's vertical
ground reaction, whose lever about the ankle depends on where the contact point lies
behind and below the ankle and on the foot-floor angle: it shrinks as a steeper foot
lands. Meanwhile the shank leans forward as in healthy loading (the ankle angle at
which the foot would be flat rises with the stance clock), and the tibialis anterior
brakes the foot eccentrically (Winter 1991: a dorsiflexor moment of about 0.2 N m/kg in
loading response). The same equation of motion holds, the voluntary reference being the
healthy lowering to the foot-flat angle of the stance template. The foot is flat when
the sole reaches the floor; its angular velocity then is the forefoot impact. A foot
slap is the premature, rapid forefoot contact of Perry 1992: faster than
``foot_slap_velocity_rad_s`` and before a healthy foot would be flat. Without
dorsiflexor torque (weakness, no stimulation after heel strike) the forefoot falls
within a few tens of ms and slaps; stimulation that continues past heel strike (the
"extension" of clinical stimulators) holds it up through loading response. The heel
rocker's lever grows as the foot lowers (a negative stiffness), so a foot that
stimulation holds up comes down quickly once the stimulation fades unless the muscle
still brakes it: that late lowering is reported as an impact velocity, not as a slap.

Stance (foot flat to toe off): the foot is on the ground and the ankle follows a
template of healthy stance (Winter 1991, Perry 1992) through the profile's knots
(stance fraction, angle) and then plantarflexion to the toe-off angle, joined by
smoothsteps, on the warped stance clock of ``sim.gait`` (it holds still while the
person stands). A foot that landed below the foot-flat angle (forefoot or flat-foot
contact) is brought onto the template with the profile's landing time constant.

Plantarflexor spasticity (Lance 1980: a velocity-dependent increase in tonic stretch
reflexes): the calf is stretched by dorsiflexion. The dorsiflexion velocity above a
threshold, delayed by the reflex latency (30-50 ms), drives a first-order reflex
contraction whose plantarflexing torque acts on the foot in swing and loading. A high
gain with this delay makes the loop unstable after a fast stretch: the foot oscillates
at 4-8 Hz, ankle clonus (Hidler and Rymer 1999, IEEE Trans Rehabil Eng 7:327). The
reflex runs in stance too (a forefoot landing stretches the calf), but stance is
kinematic here, so it only acts once the foot leaves the ground.

Toe clearance in swing is the healthy toe height (the profile's knots, after Winter
1992: minimum toe clearance about 13 mm at mid-swing) plus the toe's drop when the
ankle lags the healthy angle, ``toe_lever * sin(angle - healthy_angle)``, plus the
stride's vertical limb offset (hip compensation and scatter), which rises and falls
with ``sin(pi * swing_phase)``. Negative clearance means the toes would be below the
floor: a toe drag. In loading response the toe is still in the air while the foot
turns down about the heel: its height is the heel-to-toe distance times the sine of
the foot-floor angle, 0 from foot flat to toe off.
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import allocating_kernel, in_python, kernel, pack
from sim.gait import HEEL_STRIKE, NEXT_HEEL_STRIKE, STANCE_S, TOE_OFF, stance_clock
from sim.patient import PatientProfile

GRAVITY_M_S2 = 9.81
#: A foot within this of flat at the healthy foot-flat phase is flat (tracking error).
FLAT_TOLERANCE_RAD = math.radians(1.0)

# Parameter array: the scalars, then the stance and toe templates' knots.
PARAM_NAMES = (
    "inertia_kg_m2",  # foot inertia about the ankle
    "gravity_torque_nm",  # m g d
    "stiffness_nm_per_rad",
    "damping_nm_s_per_rad",
    "rest_rad",  # passive rest angle
    "fes_max_nm",  # torque at full activation
    "toe_lever_m",
    "toe_off_rad",  # ankle angle at toe off
    "dorsiflexion_limit_rad",
    "plantarflexion_limit_rad",
    "end_stiffness_nm_per_rad",  # at the limit
    "end_width_rad",
    "track_wn_rad_s",
    "track_zeta",
    "lift_fraction",  # swing fraction by which the healthy foot is back at neutral
    "heel_behind_m",  # heel contact point behind the ankle, foot flat
    "slap_rad_s",
    "landing_tau_s",
    "reflex_gain_nm_s_per_rad",
    "reflex_threshold_rad_s",
    "reflex_alpha",  # per-step gain of the first-order reflex contraction
    "reflex_max_nm",
    "heel_below_m",  # heel contact point below the ankle, foot flat
    "landing_foot_rad",  # healthy foot-floor angle at heel strike (toe up)
    "heel_off_phase",  # stance fraction of heel off: the latest the foot can be flat
    "ta_max_velocity_rad_s",  # dorsiflexion velocity at which the TA produces no force
    "ta_curvature",  # Hill's a / F0
    "ta_eccentric_max",  # force while lengthening fast, as a fraction of isometric
    "ta_eccentric_half",  # lengthening velocity (fraction of max) at half the excess
)
(
    P_INERTIA,
    P_GRAVITY_TORQUE,
    P_STIFFNESS,
    P_DAMPING,
    P_REST_RAD,
    P_FES_MAX,
    P_TOE_LEVER,
    P_TOE_OFF_RAD,
    P_DF_LIMIT_RAD,
    P_PF_LIMIT_RAD,
    P_END_STIFFNESS,
    P_END_WIDTH_RAD,
    P_TRACK_WN,
    P_TRACK_ZETA,
    P_LIFT_FRACTION,
    P_HEEL_BEHIND_M,
    P_SLAP_RAD_S,
    P_LANDING_TAU_S,
    P_REFLEX_GAIN,
    P_REFLEX_THRESHOLD,
    P_REFLEX_ALPHA,
    P_REFLEX_MAX,
    P_HEEL_BELOW_M,
    P_LANDING_FOOT_RAD,
    P_HEEL_OFF_PHASE,
    P_TA_MAX_VELOCITY,
    P_TA_CURVATURE,
    P_TA_ECCENTRIC_MAX,
    P_TA_ECCENTRIC_HALF,
) = range(len(PARAM_NAMES))
N_STANCE_KNOTS = 3
N_TOE_KNOTS = 5
P_STANCE_KNOT = len(PARAM_NAMES)  # 3 stance fractions
P_STANCE_RAD = P_STANCE_KNOT + N_STANCE_KNOTS  # 3 angles
P_TOE_KNOT = P_STANCE_RAD + N_STANCE_KNOTS  # 5 swing fractions
P_TOE_M = P_TOE_KNOT + N_TOE_KNOTS  # 5 heights
P_TOE_SLOPE = P_TOE_M + N_TOE_KNOTS  # 5 slopes, m per unit swing fraction
N_PARAMS = P_TOE_SLOPE + N_TOE_KNOTS

# State array.
STATE_NAMES = (
    "angle",  # rad
    "velocity",  # rad/s
    "mode",  # one of the modes below
    "stride",  # stride row the state belongs to
    "landing_offset",  # rad, angle minus the flat-foot template when the blend started
    "flat_time_s",  # when the blend onto the template started
    "reflex_nm",  # plantarflexing torque of the stretch reflex, >= 0
    "reflex_write",  # write position in the reflex delay line
    "impact_rad_s",  # forefoot velocity onto the floor at the latest heel-first foot flat
    "voluntary_nm",  # voluntary dorsiflexion torque of the latest step
    "slap",  # 1 once the latest heel-first landing ended in a foot slap
)
(
    S_ANGLE,
    S_VELOCITY,
    S_MODE,
    S_STRIDE,
    S_LANDING_OFFSET,
    S_FLAT_TIME_S,
    S_REFLEX_NM,
    S_REFLEX_WRITE,
    S_IMPACT_RAD_S,
    S_VOLUNTARY_NM,
    S_SLAP,
) = range(len(STATE_NAMES))
N_STATE = len(STATE_NAMES)

# Modes.
STANCE = 0.0
SWING = 1.0
LOADING = 2.0


def make_params(profile: PatientProfile, step_s: float) -> np.ndarray:
    """The ankle kernels' parameter array for ``profile`` (SI units)."""
    p = profile
    scalars = pack(PARAM_NAMES, {
        "inertia_kg_m2": p.foot_inertia_kg_m2,
        "gravity_torque_nm": p.foot_mass_kg * GRAVITY_M_S2 * p.foot_com_distance_m,
        "stiffness_nm_per_rad": p.passive_stiffness_nm_per_rad,
        "damping_nm_s_per_rad": p.passive_damping_nm_s_per_rad,
        "rest_rad": math.radians(p.passive_rest_angle_deg),
        "fes_max_nm": p.fes_max_torque_nm,
        "toe_lever_m": p.toe_lever_m,
        "toe_off_rad": math.radians(p.toe_off_ankle_angle_deg),
        "dorsiflexion_limit_rad": math.radians(p.dorsiflexion_limit_deg),
        "plantarflexion_limit_rad": math.radians(p.plantarflexion_limit_deg),
        "end_stiffness_nm_per_rad": p.end_range_stiffness_nm_per_rad,
        "end_width_rad": math.radians(p.end_range_width_deg),
        "track_wn_rad_s": 2.0 * math.pi * p.tracking_bandwidth_hz,
        "track_zeta": p.tracking_damping_ratio,
        "lift_fraction": p.swing_lift_fraction,
        "heel_behind_m": p.heel_behind_ankle_m,
        "slap_rad_s": p.foot_slap_velocity_rad_s,
        "landing_tau_s": 1e-3 * p.landing_time_constant_ms,
        "reflex_gain_nm_s_per_rad": p.spastic_reflex_gain_nm_s_per_rad,
        "reflex_threshold_rad_s": p.spastic_velocity_threshold_rad_s,
        "reflex_alpha": 1.0 - math.exp(-step_s / (1e-3 * p.spastic_reflex_time_constant_ms)),
        "reflex_max_nm": p.spastic_reflex_max_torque_nm,
        "heel_below_m": p.heel_below_ankle_m,
        "landing_foot_rad": math.radians(p.heel_strike_foot_angle_deg),
        "heel_off_phase": p.heel_off_stance_fraction,
        "ta_max_velocity_rad_s": p.ta_max_shortening_velocity_rad_s,
        "ta_curvature": p.ta_hill_curvature_fraction,
        "ta_eccentric_max": p.ta_eccentric_max_fraction,
        # The eccentric branch starts with the slope of the concentric one (no kink).
        "ta_eccentric_half": (p.ta_eccentric_max_fraction - 1.0) / (
            1.0 + 1.0 / p.ta_hill_curvature_fraction),
    })
    # The profile holds N_STANCE_KNOTS and N_TOE_KNOTS knots (validated there).
    knots = [
        p.stance_knots_fraction,
        np.radians(p.stance_knots_deg),
        p.toe_knots_fraction,
        1e-3 * np.array(p.toe_knots_mm),
        1e-3 * np.array(p.toe_knot_slopes_mm_per_swing),
    ]
    return np.concatenate([scalars, *knots])


def fastest_mode_rad_s(profile: PatientProfile) -> float:
    """Highest natural frequency of the foot dynamics in normal use.

    The stiffest point is deep in the end range, where the strongest torques the model
    can produce (voluntary, stimulation, reflex) are balanced by the end-range moment.
    Semi-implicit Euler is stable while this times the physics step stays below 2.
    """
    p = profile
    push_nm = (
        p.healthy_dorsiflexion_torque_nm + p.fes_max_torque_nm + p.spastic_reflex_max_torque_nm
    )
    end_k = p.end_range_stiffness_nm_per_rad
    end_k += push_nm / math.radians(p.end_range_width_deg)  # K exp(x / w) at the balance
    tracking = (2.0 * math.pi * p.tracking_bandwidth_hz) ** 2
    return math.sqrt((p.passive_stiffness_nm_per_rad + end_k) / p.foot_inertia_kg_m2 + tracking)


def reflex_delay_length(profile: PatientProfile, step_s: float) -> int:
    """Slots of the reflex delay line: the reflex latency in steps, plus one."""
    return round(1e-3 * profile.spastic_reflex_delay_ms / step_s) + 1


def new_ankle_state(params: np.ndarray, stance_phase: float, stride: int) -> np.ndarray:
    """An ankle standing (foot flat) at ``stance_phase`` of stance in stride row ``stride``
    (its angle from ``flat_angle`` run as Python: compiled from here, a first run
    compiled it with a Python wrapper before its loop's compilation could start)."""
    state = np.zeros(N_STATE)
    state[S_ANGLE] = in_python(flat_angle)(stance_phase, params)
    state[S_MODE] = STANCE
    state[S_STRIDE] = stride
    state[S_FLAT_TIME_S] = -math.inf
    return state


@kernel
def _smooth(a: float, b: float, x: float) -> tuple[float, float, float]:
    """Smoothstep from ``a`` (x = 0) to ``b`` (x = 1) and its two derivatives in x."""
    x = min(max(x, 0.0), 1.0)
    span = b - a
    return (a + span * x * x * (3.0 - 2.0 * x), span * 6.0 * x * (1.0 - x),
            span * (6.0 - 12.0 * x))


@kernel
def flat_foot(phase: float, params: np.ndarray) -> tuple[float, float, float]:
    """Ankle angle (rad) at which the foot lies flat at stance ``phase``, and its first
    two derivatives in phase.

    It is minus the shank's backward lean. From foot flat on, the healthy foot is flat,
    so it is the stance template. Before, the healthy foot still turns about the heel:
    it is the template minus the healthy foot-floor angle, which falls with a smoothstep
    from its heel-strike value to zero at foot flat.
    """
    foot_flat = params[P_STANCE_KNOT + 1]
    if phase >= foot_flat:
        i = 1
        while i < N_STANCE_KNOTS - 1 and phase >= params[P_STANCE_KNOT + i + 1]:
            i += 1
        start = params[P_STANCE_KNOT + i]
        if i < N_STANCE_KNOTS - 1:
            end = params[P_STANCE_KNOT + i + 1]
            target = params[P_STANCE_RAD + i + 1]
        else:
            end = 1.0
            target = params[P_TOE_OFF_RAD]
        width = end - start
        a, da, dda = _smooth(params[P_STANCE_RAD + i], target, (phase - start) / width)
        return a, da / width, dda / (width * width)
    x = max(phase, 0.0) / foot_flat
    a, da, dda = _smooth(params[P_STANCE_RAD], params[P_STANCE_RAD + 1], x)
    f, df, ddf = _smooth(params[P_LANDING_FOOT_RAD], 0.0, x)
    return a - f, (da - df) / foot_flat, (dda - ddf) / (foot_flat * foot_flat)


@kernel
def flat_angle(phase: float, params: np.ndarray) -> float:
    """Ankle angle (rad) of a flat foot at stance ``phase`` (see ``flat_foot``)."""
    return flat_foot(phase, params)[0]


@kernel
def heel_rocker_torque(foot_rad: float, load_n: float, params: np.ndarray) -> float:
    """Torque (N m) of the heel's ground reaction about the ankle, foot at ``foot_rad``.

    The heel contact point lies behind and below the ankle; as the foot turns toe up by
    the foot-floor angle it swings under the ankle, so the lever of the vertical force
    shrinks (and changes sign for a very steep landing).
    """
    lever = -params[P_HEEL_BEHIND_M] * math.cos(foot_rad) + params[P_HEEL_BELOW_M] * math.sin(
        foot_rad)
    return load_n * lever


@kernel
def swing_reference(phase: float, params: np.ndarray) -> tuple[float, float, float]:
    """Healthy swing angle (rad) and its first two derivatives in swing phase.

    A quintic (minimum-jerk) return from the toe-off angle to neutral by the lift
    fraction of swing, neutral after it.
    """
    lift = params[P_LIFT_FRACTION]
    if phase >= lift:
        return 0.0, 0.0, 0.0
    x = max(phase, 0.0) / lift
    start = params[P_TOE_OFF_RAD]
    span = -start  # from the toe-off angle up to 0
    s = x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
    ds = 30.0 * x * x * (1.0 - x) * (1.0 - x) / lift
    dds = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x) / (lift * lift)
    return start + span * s, span * ds, span * dds


@kernel
def toe_height_reference_m(phase: float, params: np.ndarray) -> float:
    """Healthy toe height above the floor (m) at swing ``phase`` (0 toe off, 1 heel strike).

    Cubic Hermite segments through the profile's knots (fraction, height, slope).
    """
    i = 0
    while i < N_TOE_KNOTS - 2 and phase >= params[P_TOE_KNOT + i + 1]:
        i += 1
    width = params[P_TOE_KNOT + i + 1] - params[P_TOE_KNOT + i]
    x = min(max((phase - params[P_TOE_KNOT + i]) / width, 0.0), 1.0)
    x2 = x * x
    x3 = x2 * x
    return (
        (2.0 * x3 - 3.0 * x2 + 1.0) * params[P_TOE_M + i]
        + (x3 - 2.0 * x2 + x) * width * params[P_TOE_SLOPE + i]
        + (-2.0 * x3 + 3.0 * x2) * params[P_TOE_M + i + 1]
        + (x3 - x2) * width * params[P_TOE_SLOPE + i + 1]
    )


@kernel
def end_range_torque(angle: float, params: np.ndarray) -> float:
    """Passive moment at the ends of the range of motion (N m), zero in mid-range."""
    k = params[P_END_STIFFNESS]
    w = params[P_END_WIDTH_RAD]
    if angle > params[P_DF_LIMIT_RAD]:
        return -k * w * (math.exp((angle - params[P_DF_LIMIT_RAD]) / w) - 1.0)
    if angle < params[P_PF_LIMIT_RAD]:
        return k * w * (math.exp((params[P_PF_LIMIT_RAD] - angle) / w) - 1.0)
    return 0.0


@kernel
def force_velocity(velocity: float, params: np.ndarray) -> float:
    """Tibialis anterior force at dorsiflexion ``velocity`` as a fraction of isometric.

    Shortening (dorsiflexion): Hill 1938, (1 - v) / (1 + v / a) with v the velocity over
    the maximum. Lengthening (plantarflexion): rises towards the eccentric maximum
    (Katz 1939) as u / (u + u_half), u the lengthening velocity over the maximum, with
    the slope of the concentric branch at zero.
    """
    v = velocity / params[P_TA_MAX_VELOCITY]
    if v >= 0.0:
        return max(1.0 - v, 0.0) / (1.0 + v / params[P_TA_CURVATURE])
    u = -v
    return 1.0 + (params[P_TA_ECCENTRIC_MAX] - 1.0) * u / (u + params[P_TA_ECCENTRIC_HALF])


@kernel
def foot_dynamics_step(
    state: np.ndarray,
    params: np.ndarray,
    h_s: float,
    reference: tuple[float, float, float],
    activation: float,
    voluntary_max_nm: float,
    external_nm: float,
) -> None:
    """One semi-implicit Euler step of the free (or heel-pivoted) foot.

    ``reference`` is the angle the patient tries to follow and its time derivatives;
    ``external_nm`` is any torque from outside the leg (the ground, a hand).
    """
    angle = state[S_ANGLE]
    velocity = state[S_VELOCITY]
    inertia = params[P_INERTIA]
    muscle = force_velocity(velocity, params)
    # Every torque but the patient's own and the reflex's: the internal model that the
    # voluntary controller compensates (the reflex is too fast for voluntary control).
    others = (
        -params[P_STIFFNESS] * (angle - params[P_REST_RAD])
        - params[P_DAMPING] * velocity
        - params[P_GRAVITY_TORQUE] * math.cos(angle)
        + end_range_torque(angle, params)
        + activation * params[P_FES_MAX] * muscle
        + external_nm
    )
    ref, ref_velocity, ref_accel = reference
    wn = params[P_TRACK_WN]
    wanted = inertia * (
        ref_accel
        + wn * wn * (ref - angle)
        + 2.0 * params[P_TRACK_ZETA] * wn * (ref_velocity - velocity)
    ) - others
    voluntary = min(max(wanted, 0.0), voluntary_max_nm * muscle)
    torque = voluntary + others - state[S_REFLEX_NM]
    velocity += h_s * torque / inertia
    state[S_VELOCITY] = velocity
    state[S_ANGLE] = angle + h_s * velocity
    state[S_VOLUNTARY_NM] = voluntary


@kernel
def reflex_step(state: np.ndarray, params: np.ndarray, delay: np.ndarray) -> None:
    """Feed this step's ankle velocity to the stretch reflex; update its torque."""
    length = delay.shape[0]
    write = int(state[S_REFLEX_WRITE])
    delay[write] = state[S_VELOCITY]
    read = write + 1 if write + 1 < length else 0  # the oldest entry: one latency ago
    state[S_REFLEX_WRITE] = read
    stretch = max(delay[read] - params[P_REFLEX_THRESHOLD], 0.0)
    drive = min(params[P_REFLEX_GAIN] * stretch, params[P_REFLEX_MAX])
    state[S_REFLEX_NM] += params[P_REFLEX_ALPHA] * (drive - state[S_REFLEX_NM])


@kernel
def _land(state: np.ndarray, params: np.ndarray, stride: int, t_s: float) -> None:
    """Heel strike: heel-first onto the heel rocker, or flat/forefoot onto the template."""
    state[S_STRIDE] = stride
    foot_flat = flat_angle(0.0, params)
    if state[S_ANGLE] > foot_flat:
        state[S_MODE] = LOADING
    else:
        _foot_flat(state, params, 0.0, t_s)


@kernel
def _foot_flat(state: np.ndarray, params: np.ndarray, phase: float, t_s: float) -> None:
    """The whole sole is on the floor: from now on the ankle follows the template."""
    state[S_MODE] = STANCE
    state[S_LANDING_OFFSET] = state[S_ANGLE] - flat_angle(phase, params)
    state[S_FLAT_TIME_S] = t_s


@kernel
def _loading_step(
    state: np.ndarray,
    params: np.ndarray,
    strides: np.ndarray,
    j: int,
    from_s: float,
    to_s: float,
    activation: float,
    voluntary_max_nm: float,
    heel_load_n: float,
) -> None:
    """One step of the heel rocker; the foot lands flat (maybe slapping) at its end.

    The foot turns about the heel with foot-floor angle ``angle - flat(phase)``. The
    shank's lean moves with the stance clock, so the foot's own angular acceleration is
    the ankle's minus the flat-foot angle's: that term enters as a torque.
    """
    stance_s = strides[j, STANCE_S]
    phase_from = stance_clock(strides, j, from_s)[0]
    flat, dflat, ddflat = flat_foot(phase_from, params)
    flat_velocity = dflat / stance_s
    flat_accel = ddflat / (stance_s * stance_s)
    foot_flat_phase = params[P_STANCE_KNOT + 1]
    if phase_from < foot_flat_phase:  # the healthy lowering of the forefoot
        lowering_s = foot_flat_phase * stance_s
        ref, dref, ddref = _smooth(params[P_STANCE_RAD], params[P_STANCE_RAD + 1],
                                   phase_from / foot_flat_phase)
        reference = (ref, dref / lowering_s, ddref / (lowering_s * lowering_s))
    else:  # later than a healthy foot: aim for the flat foot
        reference = (flat, flat_velocity, flat_accel)
    external = heel_rocker_torque(state[S_ANGLE] - flat, heel_load_n, params)
    external += params[P_INERTIA] * flat_accel
    foot_dynamics_step(state, params, to_s - from_s, reference, activation,
                       voluntary_max_nm, external)
    phase, _ = stance_clock(strides, j, to_s)
    # Flat when the sole reaches the floor; a foot braked onto the healthy trajectory
    # touches down at the healthy foot flat; heel off ends the heel rocker in any case.
    flat_now = flat_angle(phase, params)
    healthy_touchdown = phase >= foot_flat_phase and state[S_ANGLE] <= flat_now + FLAT_TOLERANCE_RAD
    if state[S_ANGLE] <= flat_now or healthy_touchdown or phase >= params[P_HEEL_OFF_PHASE]:
        impact = max(flat_velocity - state[S_VELOCITY], 0.0)
        state[S_IMPACT_RAD_S] = impact
        if impact > params[P_SLAP_RAD_S] and phase < foot_flat_phase:
            state[S_SLAP] = 1.0
        _foot_flat(state, params, phase, to_s)


@kernel
def ankle_step(
    state: np.ndarray,
    params: np.ndarray,
    delay: np.ndarray,
    strides: np.ndarray,
    stride: int,
    from_s: float,
    to_s: float,
    activation: float,
    voluntary_max_nm: float,
    heel_load_n: float,
) -> None:
    """Advance the ankle, in stride row ``stride`` of ``strides``, to ``to_s``.

    ``activation`` and ``voluntary_max_nm`` hold over the step; ``heel_load_n`` is the
    force under the heel at ``from_s``.
    """
    toe_off = strides[stride, TOE_OFF]
    if to_s >= toe_off:
        if state[S_MODE] != SWING or int(state[S_STRIDE]) != stride:
            # Toe off inside this step: the foot leaves the ground at rest.
            state[S_ANGLE] = params[P_TOE_OFF_RAD]
            state[S_VELOCITY] = 0.0
            state[S_MODE] = SWING
            state[S_STRIDE] = stride
            from_s = toe_off
        swing_s = strides[stride, NEXT_HEEL_STRIKE] - toe_off
        ref, dref, ddref = swing_reference((from_s - toe_off) / swing_s, params)
        reference = (ref, dref / swing_s, ddref / (swing_s * swing_s))
        foot_dynamics_step(state, params, to_s - from_s, reference, activation,
                           voluntary_max_nm, 0.0)
    else:
        if state[S_MODE] == SWING or int(state[S_STRIDE]) != stride:
            _land(state, params, stride, strides[stride, HEEL_STRIKE])
            from_s = max(from_s, strides[stride, HEEL_STRIKE])
        phase = stance_clock(strides, stride, to_s)[0]
        if state[S_MODE] == LOADING:
            _loading_step(state, params, strides, stride, from_s, to_s, activation,
                          voluntary_max_nm, heel_load_n)
        else:
            blend = math.exp(-(to_s - state[S_FLAT_TIME_S]) / params[P_LANDING_TAU_S])
            angle = flat_angle(phase, params) + state[S_LANDING_OFFSET] * blend
            state[S_VELOCITY] = (angle - state[S_ANGLE]) / (to_s - from_s)
            state[S_ANGLE] = angle
            state[S_VOLUNTARY_NM] = 0.0
    reflex_step(state, params, delay)


@kernel
def toe_clearance_m(
    state: np.ndarray, params: np.ndarray, phase: float, limb_offset_m: float
) -> float:
    """Toe height above the floor (m) of the swinging foot at swing ``phase``."""
    ref = swing_reference(phase, params)[0]
    return (
        toe_height_reference_m(phase, params)
        + params[P_TOE_LEVER] * math.sin(state[S_ANGLE] - ref)
        + limb_offset_m * math.sin(math.pi * phase)
    )


@kernel
def forefoot_height_m(state: np.ndarray, params: np.ndarray, phase: float) -> float:
    """Toe height above the floor (m) in stance at stance ``phase``: while the heel is
    down and the forefoot still in the air (loading response), the toe is the heel's
    distance to the toe times the sine of the foot-floor angle; 0 once the sole is flat.

    With the healthy 20 deg landing this continues the swing's toe height at heel strike
    (75 mm) and falls to 0 at foot flat.
    """
    if state[S_MODE] == STANCE:
        return 0.0
    foot = state[S_ANGLE] - flat_angle(phase, params)
    if foot <= 0.0:
        return 0.0
    return (params[P_HEEL_BEHIND_M] + params[P_TOE_LEVER]) * math.sin(foot)


@allocating_kernel
def _stretch_test(
    state: np.ndarray,
    params: np.ndarray,
    delay: np.ndarray,
    step_s: float,
    steps: int,
    target_rad: float,
    stretch_velocity_rad_s: float,
    hold_nm: float,
) -> np.ndarray:
    angles = np.empty(steps)
    for k in range(steps):
        angles[k] = state[S_ANGLE]
        if state[S_MODE] == STANCE:  # the examiner moves the foot
            state[S_VELOCITY] = stretch_velocity_rad_s
            state[S_ANGLE] = min(state[S_ANGLE] + step_s * stretch_velocity_rad_s, target_rad)
            if state[S_ANGLE] >= target_rad:
                state[S_MODE] = SWING
        else:  # the examiner only keeps pushing the forefoot up
            foot_dynamics_step(state, params, step_s, (state[S_ANGLE], 0.0, 0.0), 0.0, 0.0,
                               hold_nm)
        reflex_step(state, params, delay)
    return angles


def stretch_test(
    profile: PatientProfile,
    stretch_velocity_rad_s: float,
    stretch_deg: float,
    duration_s: float,
    step_s: float = 1e-3,
) -> np.ndarray:
    """The clinical ankle clonus test on the seated patient; ankle angle (rad) per step.

    The foot hangs relaxed at its passive equilibrium (knee flexed, as in swing, no
    voluntary effort). The examiner dorsiflexes it by ``stretch_deg`` at
    ``stretch_velocity_rad_s`` and from then on pushes the forefoot up with the torque
    that holds it there against its passive stiffness and weight, leaving it free to
    move. A spastic calf answers a fast stretch with beats of clonus; a normal one, or a
    slow stretch, leaves the foot where the examiner put it.
    """
    params = make_params(profile, step_s)
    start = _rest_angle(params)
    target = start + math.radians(stretch_deg)
    state = np.zeros(N_STATE)
    state[S_MODE] = STANCE  # moved by the examiner until the target
    state[S_ANGLE] = start
    delay = np.zeros(reflex_delay_length(profile, step_s))
    return _stretch_test(state, params, delay, step_s, round(duration_s / step_s), target,
                         stretch_velocity_rad_s, -_passive_torque(target, params))


def _passive_torque(angle: float, params: np.ndarray) -> float:
    """Passive and gravity torque on the resting foot at ``angle`` (N m)."""
    return (-params[P_STIFFNESS] * (angle - params[P_REST_RAD])
            - params[P_GRAVITY_TORQUE] * math.cos(angle) + end_range_torque(angle, params))


def _rest_angle(params: np.ndarray) -> float:
    """Angle where passive stiffness balances the foot's weight (bisection)."""
    low, high = params[P_PF_LIMIT_RAD] - 0.5, params[P_DF_LIMIT_RAD] + 0.5
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if _passive_torque(mid, params) > 0.0 else (low, mid)
    return 0.5 * (low + high)
