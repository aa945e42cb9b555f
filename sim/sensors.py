"""Sensor models: shank gyroscope, heel switch and heel force, from the stride table.

The shank's sagittal angular velocity is a phenomenological template of gait phase.
Sign: positive is the sense of the swing (the ankle moving forward relative to the
knee). The shape is the one shank gyroscopes record (Aminian et al. 2002, J Biomech
35:689, Fig. 2: about -200 to +300 deg/s, minima at toe off and heel strike on either
side of the swing peak; Catalfamo et al. 2010, Sensors 10:5683, who detect both events
from those minima):

* a negative minimum at heel strike: the knee flexes in loading response and the shank
  turns forward over the heel, the opposite sense to the swing;
* a negative plateau through stance while the knee passes forward over the planted
  foot (on real walks the stance median is about -1.1 rad/s, a fifth of the swing peak);
* deepening into a negative minimum at toe off, as the knee flexes in pre-swing;
* one large positive peak at mid-swing, then a fall through zero in terminal swing
  into the minimum at the next heel strike.

Timed from the heel's impact on the foot IMU (the pressure sensors see contact 65 ms
later; ``controller.bench.shank``), a real shank turns through zero at contact (+5 ms,
quartiles -22 to +15) and reaches the minimum a shank detector dates heel strike at
45 ms later (25 to 62 ms). The template's minimum comes 38 ms after heel strike; its
wide dip crosses zero 44 ms before it (a known limit: a narrower, later dip needs a
deeper stance plateau than real shanks have, see ``configs/patients/healthy.toml``).

On 138 strides of 19 young adults (the Marpino walking dataset: shank and foot IMUs
with toe and heel pressure; used for evaluation only, it has no licence) the stance
median is -1.15 rad/s (quartiles -1.33 to -0.99), the heel-strike minimum -0.40 and
the toe-off minimum -0.57 of the swing peak (after a 50 ms moving average), the flat
foot does not turn (its gyroscope reads -0.03 rad/s from 30 to 60 % of stance) and the
shank's net rotation over a stride is 0.02 rad (it returns to its posture). The
``healthy`` profile's shape was fitted on half of those walks and checked on the other
half (figures in ``configs/patients/healthy.toml``). The depth of the stance plateau is
not a parameter: it is what returns the shank to its posture every stride
(``gyro_features``).

The template is a sum of bumps (Gaussian-like, compact support, see ``BUMP_ORDER``)
anchored to the exact events of the current and neighbouring strides, plus the stance
plateau, so it is continuous across strides and its features sit where the true events
are. Every feature of a stride scales with the stride's speed factor (starts, stops,
turns; see ``sim.gait``); the plateau follows the warped stance clock, so it fades out
while the person stands.

The sensor in front of it (Woodman 2007, "An introduction to inertial navigation",
Cambridge TR-696, for the MEMS error terms):

* mounting tilt: the sensitive axis leans by ``gyro_mounting_tilt_deg`` from the
  medio-lateral axis towards the long axis of the shank, so it sees
  ``cos(tilt) * sagittal + sin(tilt) * yaw``: turning shows up as an offset;
* scale-factor error, a turn-on bias and a bias random walk (rate random walk, in
  rad/s per sqrt(s));
* white noise: the sensor's noise density over the bandwidth of the samples
  (``density * sqrt(rate / 2)``) plus soft-tissue and cable artefact
  (``gyro_noise_rad_s`` at any rate), added in quadrature;
* saturation at +-``gyro_range_rad_s``;
* sample-time jitter: the value is the signal at a time that scatters around the
  nominal sample time (Gaussian, clipped at 3 SD), while the sample keeps its nominal
  time stamp, as a loop that time-stamps on arrival sees it;
* dropouts: intervals in which the sample is NaN (a lost packet, a loose connector),
  starting as a Poisson process with exponentially distributed lengths.

The heel switch closes ``heel_switch_contact_delay_ms`` after heel strike and opens
``heel_switch_release_delay_ms`` after heel off (the foam and the threshold of a
pressure switch), and chatters at random for ``heel_switch_bounce_ms`` after each
transition (contact bounce). The true load under the heel (what the heel rocker of
``sim.ankle`` turns about) is a trapezoid over heel contact, a body weight fraction at its
peak, zero from heel off. A force sensor under the heel pad in an insole does not read
zero there: in real insole recordings the heel sensor falls steeply around heel rise
(Perry 1992: heel rise at about 31 % of the gait cycle) and then keeps a small reading
for a while: below 10 N at 0.72 of stance and zero at 0.81-0.82 on the 165 walkers of
PhysioNet gaitpdb (Goldberger et al. 2000; Yogev et al. 2005, Hausdorff et al. 2007,
Frenkel-Toledo et al. 2005; ``controller.bench.heelforce``). The sensor therefore
reads the larger of the true load and a tail that falls linearly from
``heel_force_tail_n`` at heel off to zero at ``heel_force_release_stance_fraction`` of
stance; plus Gaussian noise, never below zero.

The heel switch has dropouts of its own, drawn as the gyroscope's but from a stream of
their own (``heel_switch_dropouts_per_min``, ``heel_switch_dropout_ms``: a wireless
insole's lost packets, a loose connector), in which its sample is NaN; the heel force
sensor, a channel of its own, keeps reading.

The shank signals do not depend on stimulation: the peroneal stimulation moves the
foot, not the shank. Random draws come from the caller, one row of standard normals per
sample (see ``NOISE_COLUMNS``), each column from its own stream of the seed.
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import kernel, pack
from sim.gait import (
    HEEL_OFF,
    HEEL_STRIKE,
    MID_SWING,
    NEXT_HEEL_STRIKE,
    SPEED,
    STANCE_S,
    STRIDE_S,
    TOE_OFF,
    stance_clock,
    yaw_rate,
)
from sim.patient import PatientProfile

GRAVITY_M_S2 = 9.81
#: Bumps are (1 - x^2 / (2 n))^n with x in standard deviations: a Gaussian within 3.5 %
#: of the peak, exactly zero beyond sqrt(2 n) = 4 SD, and four multiplications instead
#: of an exponential (the template is evaluated for every sample).
BUMP_ORDER = 8
#: Sample-time jitter is clipped at this many standard deviations.
JITTER_CLIP_SD = 3.0

# Columns of the per-sample noise draws (standard normals).
NOISE_NAMES = (
    "gyro",  # white noise of the gyro
    "bias",  # step of the bias random walk
    "jitter",  # sample-time jitter
    "bounce",  # state of a bouncing heel switch (sign)
    "force",  # heel force noise
)
(
    N_GYRO,
    N_BIAS,
    N_JITTER,
    N_BOUNCE,
    N_FORCE,
) = range(len(NOISE_NAMES))
NOISE_COLUMNS = len(NOISE_NAMES)

# Parameter array of the sensor kernels.
PARAM_NAMES = (
    "swing_peak_rad_s",  # at speed factor 1
    "swing_width_fraction",  # SD of the swing peak, fraction of swing
    "heel_strike_dip_fraction",  # depth of the heel-strike minimum, of the swing peak
    "heel_strike_delay_fraction",  # its centre after heel strike, fraction of the stride
    "heel_strike_width_fraction",  # its SD, fraction of the stride
    "stance_onset_fraction",  # stance fraction over which the plateau builds up after heel strike
    "toe_off_dip_fraction",  # depth of the toe-off minimum, fraction of the swing peak
    "toe_off_width_fraction",  # its SD, fraction of the stride
    "noise_sd_rad_s",  # white noise at this sample rate
    "bias_rad_s",  # turn-on bias
    "bias_step_rad_s",  # SD of the bias random walk per sample
    "scale",  # 1 + scale-factor error
    "range_rad_s",  # saturation
    "cos_tilt",
    "sin_tilt",
    "jitter_s",  # SD of the sample-time jitter
    "contact_delay_s",
    "release_delay_s",
    "bounce_s",
    "force_peak_n",
    "load_ramp_fraction",  # fraction of heel contact over which the heel force ramps
    "heel_off_fraction",  # heel contact as a fraction of (unwarped) stance
    "force_noise_n",
    "tail_n",  # heel sensor reading at heel off, on its way down to zero
    "release_fraction",  # stance fraction at which the heel sensor reads zero
    "stance_taper_fraction",  # stance fraction over which it hands over to the toe-off minimum
    "stance_deepening_fraction",  # the plateau runs from 1 - this to 1 + this times its mean depth
)
(
    P_SWING_PEAK,
    P_SWING_WIDTH,
    P_HS_DIP,
    P_HS_DELAY,
    P_HS_WIDTH,
    P_STANCE_ONSET,
    P_TO_DIP,
    P_TO_WIDTH,
    P_NOISE_SD,
    P_BIAS,
    P_BIAS_STEP,
    P_SCALE,
    P_RANGE,
    P_COS_TILT,
    P_SIN_TILT,
    P_JITTER_S,
    P_CONTACT_DELAY_S,
    P_RELEASE_DELAY_S,
    P_BOUNCE_S,
    P_FORCE_PEAK_N,
    P_LOAD_RAMP,
    P_HEEL_OFF_FRACTION,
    P_FORCE_NOISE_N,
    P_TAIL_N,
    P_RELEASE_FRACTION,
    P_STANCE_TAPER,
    P_STANCE_DEEPENING,
) = range(len(PARAM_NAMES))
N_PARAMS = len(PARAM_NAMES)

# Columns of the per-stride feature table (``gyro_features``): three bumps of three
# numbers (heel-strike minimum, toe-off minimum, swing peak), then the stance plateau.
BUMP_NAMES = ("centre", "inverse_sd", "amplitude")
(F_CENTRE, F_INVERSE_SD, F_AMPLITUDE) = range(len(BUMP_NAMES))
N_BUMPS = 3
F_PLATEAU = N_BUMPS * len(BUMP_NAMES)  # rad/s, depth of the stance plateau (> 0 means negative)
N_FEATURES = F_PLATEAU + 1
#: Integral of a bump of unit amplitude and unit SD: sqrt(2 n) B(1/2, n + 1).
BUMP_AREA_SD = math.sqrt(2.0 * BUMP_ORDER) * math.gamma(0.5) * math.gamma(BUMP_ORDER + 1.0) / (
    math.gamma(BUMP_ORDER + 1.5))

# State array.
STATE_NAMES = (
    "bias",  # rad/s, current bias
    "gyro_dropout",  # index of the gyroscope's next dropout interval that has not ended
    "heel_dropout",  # the same for the heel switch
)
(
    S_BIAS,
    S_GYRO_DROPOUT,
    S_HEEL_DROPOUT,
) = range(len(STATE_NAMES))
N_STATE = len(STATE_NAMES)

# The dropout table (``draw_dropouts``): per sensor, the start and end (s) of its
# dropout intervals, sorted, in two columns from the sensor's own; rows past a sensor's
# last interval hold +inf, so that a cursor never runs off the table's end.
DROPOUT_SENSORS = ("gyro_rad_s", "heel_switch")
D_GYRO, D_HEEL = (2 * i for i in range(len(DROPOUT_SENSORS)))


def make_params(profile: PatientProfile, sample_period_s: float) -> np.ndarray:
    """The sensor kernels' parameter array for ``profile`` at this sample period."""
    p = profile
    sensor_sd = p.gyro_noise_density_rad_s_per_sqrt_hz * math.sqrt(0.5 / sample_period_s)
    return pack(PARAM_NAMES, {
        "swing_peak_rad_s": p.gyro_swing_peak_rad_s,
        "swing_width_fraction": p.gyro_swing_peak_width_fraction,
        "heel_strike_dip_fraction": p.gyro_heel_strike_dip_fraction,
        "heel_strike_delay_fraction": p.gyro_heel_strike_dip_delay_fraction,
        "heel_strike_width_fraction": p.gyro_heel_strike_dip_width_fraction,
        "stance_onset_fraction": p.gyro_stance_onset_fraction,
        "stance_taper_fraction": p.gyro_stance_taper_fraction,
        "stance_deepening_fraction": p.gyro_stance_deepening_fraction,
        "toe_off_dip_fraction": p.gyro_toe_off_dip_fraction,
        "toe_off_width_fraction": p.gyro_toe_off_dip_width_fraction,
        "noise_sd_rad_s": math.hypot(p.gyro_noise_rad_s, sensor_sd),
        "bias_rad_s": p.gyro_bias_rad_s,
        "bias_step_rad_s": p.gyro_bias_drift_rad_s_per_sqrt_s * math.sqrt(sample_period_s),
        "scale": 1.0 + p.gyro_scale_error_fraction,
        "range_rad_s": p.gyro_range_rad_s,
        "cos_tilt": math.cos(math.radians(p.gyro_mounting_tilt_deg)),
        "sin_tilt": math.sin(math.radians(p.gyro_mounting_tilt_deg)),
        "jitter_s": 1e-3 * p.sample_jitter_ms,
        "contact_delay_s": 1e-3 * p.heel_switch_contact_delay_ms,
        "release_delay_s": 1e-3 * p.heel_switch_release_delay_ms,
        "bounce_s": 1e-3 * p.heel_switch_bounce_ms,
        "force_peak_n": p.heel_load_fraction_bw * p.body_mass_kg * GRAVITY_M_S2,
        "load_ramp_fraction": p.heel_load_ramp_fraction,
        "heel_off_fraction": p.heel_off_stance_fraction,
        "force_noise_n": p.heel_force_noise_n,
        "tail_n": p.heel_force_tail_n,
        "release_fraction": p.heel_force_release_stance_fraction,
    })


def new_sensor_state(params: np.ndarray) -> np.ndarray:
    """Sensors at power-on: the turn-on bias, no dropout passed yet."""
    state = np.zeros(N_STATE)
    state[S_BIAS] = params[P_BIAS]
    return state


def noise_in_use(profile: PatientProfile) -> tuple[bool, ...]:
    """Which noise columns the profile needs (the others stay zero and cost nothing)."""
    p = profile
    used = [False] * NOISE_COLUMNS
    used[N_GYRO] = p.gyro_noise_rad_s > 0.0 or p.gyro_noise_density_rad_s_per_sqrt_hz > 0.0
    used[N_BIAS] = p.gyro_bias_drift_rad_s_per_sqrt_s > 0.0
    used[N_JITTER] = p.sample_jitter_ms > 0.0
    used[N_BOUNCE] = p.heel_switch_bounce_ms > 0.0
    used[N_FORCE] = p.heel_force_noise_n > 0.0
    return tuple(used)


def draw_intervals(
    per_min: float, mean_ms: float, duration_s: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Dropout intervals (start_s, end_s) of a trial: a Poisson process of ``per_min``
    starts a minute, each lasting an exponentially distributed time of mean ``mean_ms``
    (none at a rate of 0, and then nothing is drawn from ``rng``).

    Drawn interval by interval, so a shorter trial is a prefix of a longer one.
    """
    rows: list[tuple[float, float]] = []
    if per_min > 0.0:
        mean_gap_s = 60.0 / per_min
        mean_length_s = 1e-3 * mean_ms
        t = 0.0
        while True:
            gap, length = rng.exponential(mean_gap_s), rng.exponential(mean_length_s)
            t += gap
            if t >= duration_s:
                break
            rows.append((t, t + length))
            t += length
    return rows


def draw_dropouts(
    profile: PatientProfile,
    duration_s: float,
    gyro_rng: np.random.Generator,
    heel_rng: np.random.Generator,
) -> np.ndarray:
    """The dropout table of a trial (``D_GYRO``, ``D_HEEL``): the gyroscope's intervals
    drawn from ``gyro_rng``, the heel switch's from ``heel_rng`` (``draw_intervals``).
    Each sensor's columns end in at least one row of +inf."""
    per_sensor = (
        draw_intervals(profile.gyro_dropouts_per_min, profile.gyro_dropout_ms, duration_s,
                       gyro_rng),
        draw_intervals(profile.heel_switch_dropouts_per_min, profile.heel_switch_dropout_ms,
                       duration_s, heel_rng),
    )
    table = np.full((1 + max(map(len, per_sensor)), 2 * len(per_sensor)), math.inf)
    for i, rows in enumerate(per_sensor):
        if rows:
            table[: len(rows), 2 * i: 2 * i + 2] = rows
    return table


def dropout_intervals(dropouts: np.ndarray, column: int) -> np.ndarray:
    """The (start_s, end_s) rows of one sensor's dropouts (``D_GYRO``, ``D_HEEL``) in a
    dropout table, without its +inf rows."""
    intervals = dropouts[:, column: column + 2]
    return intervals[np.isfinite(intervals[:, 0])].copy()


def _bump_shape(x: np.ndarray) -> np.ndarray:
    """A unit bump at ``x`` standard deviations from its centre (as ``_bumps``)."""
    y = np.maximum(1.0 - x * x * (0.5 / BUMP_ORDER), 0.0)
    return y**BUMP_ORDER


def gyro_features(strides: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Per stride, the three bumps of its template (centre s, 1 / SD 1/s, amplitude
    rad/s) and the depth of its stance plateau (rad/s).

    The plateau is not a free parameter: it is the depth at which the shank's rotation
    over the stride is zero, so that the shank comes back to the posture it left (the
    plateau's integral over stance cancels the three bumps'). On real walks that
    balance holds (net rotation 0.02 rad a stride on the walks behind the shape, see
    the module docstring) and it gives the plateau a real shank has for any stride
    timing: shallower when stance is long and the swing is slow. Computed once per
    trial, so the per-sample kernel multiplies instead of dividing.
    """
    peak = params[P_SWING_PEAK] * strides[:, SPEED]
    stride = strides[:, STRIDE_S]
    swing = strides[:, NEXT_HEEL_STRIKE] - strides[:, TOE_OFF]
    features = np.empty((strides.shape[0], N_FEATURES))
    features[:, F_CENTRE] = strides[:, HEEL_STRIKE] + params[P_HS_DELAY] * stride
    features[:, F_INVERSE_SD] = 1.0 / (params[P_HS_WIDTH] * stride)
    features[:, F_AMPLITUDE] = -params[P_HS_DIP] * peak
    features[:, 3 + F_CENTRE] = strides[:, TOE_OFF]
    features[:, 3 + F_INVERSE_SD] = 1.0 / (params[P_TO_WIDTH] * stride)
    features[:, 3 + F_AMPLITUDE] = -params[P_TO_DIP] * peak
    features[:, 6 + F_CENTRE] = strides[:, MID_SWING]
    features[:, 6 + F_INVERSE_SD] = 1.0 / (params[P_SWING_WIDTH] * swing)
    # The tails of the toe-off minimum and of the next heel strike's reach mid-swing:
    # the swing bump makes up for them, so that the peak is the profile's.
    next_dip = strides[:, NEXT_HEEL_STRIKE] + params[P_HS_DELAY] * stride
    tails = features[:, F_AMPLITUDE] * _bump_shape(
        (strides[:, MID_SWING] - next_dip) * features[:, F_INVERSE_SD]
    ) + features[:, 3 + F_AMPLITUDE] * _bump_shape(
        (strides[:, MID_SWING] - strides[:, TOE_OFF]) * features[:, 3 + F_INVERSE_SD]
    )
    features[:, 6 + F_AMPLITUDE] = peak - tails
    bumps_area = BUMP_AREA_SD * sum(
        features[:, b + F_AMPLITUDE] / features[:, b + F_INVERSE_SD] for b in range(0, F_PLATEAU, 3)
    )
    # Area of the plateau's shape over stance (``stance_window``): the ramp 1 - d + 2 d x
    # has unit area; a smoothstep S over a fraction a at the start takes
    # a ((1 - d) / 2 + 2 d a * 0.15) off it (the integral of u (1 - S(u)) is 0.15), one
    # over b at the end b ((1 + d) / 2 - 2 d b * 0.15).
    a, b, d = params[P_STANCE_ONSET], params[P_STANCE_TAPER], params[P_STANCE_DEEPENING]
    window = 1.0 - a * ((1.0 - d) / 2.0 + 0.3 * d * a) - b * ((1.0 + d) / 2.0 - 0.3 * d * b)
    features[:, F_PLATEAU] = bumps_area / (strides[:, STANCE_S] * window)
    return features


@kernel
def _bumps(features: np.ndarray, j: int, t_s: float) -> float:
    """Sum of stride ``j``'s three bumps at ``t_s``: Gaussian-like, compact support."""
    value = 0.0
    for b in range(0, F_PLATEAU, 3):
        x = (t_s - features[j, b + F_CENTRE]) * features[j, b + F_INVERSE_SD]
        y = 1.0 - x * x * (0.5 / BUMP_ORDER)
        if y > 0.0:
            y2 = y * y
            y4 = y2 * y2
            value += features[j, b + F_AMPLITUDE] * y4 * y4
    return value


@kernel
def _smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, a smoothstep between."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@kernel
def stance_window(phase: float, params: np.ndarray) -> float:
    """Shape of the stance plateau at stance ``phase`` (its mean over stance is about 1).

    It deepens linearly through stance, from 1 - d to 1 + d times its mean depth (d is
    ``P_STANCE_DEEPENING``: on real walks the shank turns faster as the heel rises than
    while the foot is flat), builds up with a smoothstep over the first
    ``P_STANCE_ONSET`` of stance (while the heel-strike minimum fades) and hands over to
    the toe-off minimum over the last ``P_STANCE_TAPER``, so the template is continuous
    at both events.
    """
    d = params[P_STANCE_DEEPENING]
    return (1.0 - d + 2.0 * d * phase) * _smoothstep(phase / params[P_STANCE_ONSET]) * (
        _smoothstep((1.0 - phase) / params[P_STANCE_TAPER]))


@kernel
def stride_gyro(
    strides: np.ndarray, features: np.ndarray, j: int, t_s: float, params: np.ndarray
) -> float:
    """Stride ``j``'s own part of the template at ``t_s`` (rad/s): its three bumps and
    its stance plateau. Over all time it integrates to zero (``gyro_features``)."""
    value = _bumps(features, j, t_s)
    if strides[j, HEEL_STRIKE] <= t_s < strides[j, TOE_OFF]:
        phase, rate = stance_clock(strides, j, t_s)
        value -= features[j, F_PLATEAU] * stance_window(phase, params) * rate
    return value


@kernel
def gyro_template(
    strides: np.ndarray, features: np.ndarray, index: int, t_s: float, params: np.ndarray
) -> float:
    """Noise-free shank sagittal angular velocity (rad/s) at ``t_s`` near stride ``index``."""
    value = 0.0
    for j in range(max(index - 1, 0), min(index + 2, strides.shape[0])):
        value += stride_gyro(strides, features, j, t_s, params)
    return value


@kernel
def lost(dropouts: np.ndarray, column: int, state: np.ndarray, cursor: int,
         t_s: float) -> bool:
    """Whether ``t_s`` falls in a dropout of the sensor whose intervals start in
    ``column`` of the dropout table; advances that sensor's cursor ``state[cursor]``
    (times only grow)."""
    d = int(state[cursor])
    while t_s >= dropouts[d, column + 1]:
        d += 1
    state[cursor] = d
    return t_s >= dropouts[d, column]


@kernel
def gyro_sample(
    strides: np.ndarray,
    features: np.ndarray,
    index: int,
    t_s: float,
    params: np.ndarray,
    state: np.ndarray,
    dropouts: np.ndarray,
    noise: np.ndarray,
    row: int,
) -> float:
    """The gyroscope's reading of the sample at nominal time ``t_s`` (NaN in a dropout).

    ``noise[row]`` holds the sample's draws. Advances the bias random walk and the
    dropout cursor.
    """
    draw = min(max(noise[row, N_JITTER], -JITTER_CLIP_SD), JITTER_CLIP_SD)
    when = t_s + params[P_JITTER_S] * draw
    sagittal = gyro_template(strides, features, index, when, params)
    yaw = yaw_rate(strides, index, when)
    value = params[P_SCALE] * (params[P_COS_TILT] * sagittal + params[P_SIN_TILT] * yaw)
    value += state[S_BIAS] + params[P_NOISE_SD] * noise[row, N_GYRO]
    state[S_BIAS] += params[P_BIAS_STEP] * noise[row, N_BIAS]
    value = min(max(value, -params[P_RANGE]), params[P_RANGE])
    if lost(dropouts, D_GYRO, state, S_GYRO_DROPOUT, t_s):
        return math.nan
    return value


@kernel
def heel_switch(strides: np.ndarray, index: int, t_s: float, params: np.ndarray,
                bounce: float) -> int:
    """1 while the switch reads heel contact, else 0; random within a bounce window."""
    closes = strides[index, HEEL_STRIKE] + params[P_CONTACT_DELAY_S]
    opens = strides[index, HEEL_OFF] + params[P_RELEASE_DELAY_S]
    window = params[P_BOUNCE_S]
    if closes <= t_s < closes + window or opens <= t_s < opens + window:
        return 1 if bounce > 0.0 else 0
    return 1 if closes <= t_s < opens else 0


@kernel
def heel_switch_sample(strides: np.ndarray, index: int, t_s: float, params: np.ndarray,
                       state: np.ndarray, dropouts: np.ndarray, bounce: float) -> float:
    """The heel switch's sample at ``t_s`` (``heel_switch``), NaN in one of its
    dropouts; advances its dropout cursor."""
    if lost(dropouts, D_HEEL, state, S_HEEL_DROPOUT, t_s):
        return math.nan
    return float(heel_switch(strides, index, t_s, params, bounce))


@kernel
def heel_load_n(strides: np.ndarray, j: int, t_s: float, params: np.ndarray) -> float:
    """True force under the heel (N) in stride ``j``: a trapezoid over heel contact on
    the stance clock."""
    if not strides[j, HEEL_STRIKE] <= t_s < strides[j, HEEL_OFF]:
        return 0.0
    phase, _ = stance_clock(strides, j, t_s)
    x = phase / params[P_HEEL_OFF_FRACTION]
    if x < 0.0 or x >= 1.0:
        return 0.0
    ramp = params[P_LOAD_RAMP]
    return params[P_FORCE_PEAK_N] * min(1.0, x / ramp, (1.0 - x) / ramp)


@kernel
def heel_sensor_load_n(
    load: float, strides: np.ndarray, j: int, t_s: float, params: np.ndarray
) -> float:
    """What a force sensor under the heel pad in an insole is loaded with (N) in stride
    ``j``: the true heel ``load`` (``heel_load_n``, which the caller also needs), or
    after mid heel contact the residual tail down to the release point, whichever is
    larger."""
    if not strides[j, HEEL_STRIKE] <= t_s < strides[j, TOE_OFF]:
        return load
    phase, _ = stance_clock(strides, j, t_s)
    heel_off = params[P_HEEL_OFF_FRACTION]
    release = params[P_RELEASE_FRACTION]
    if phase < 0.5 * heel_off or phase >= release:  # loading stays the true load's
        return load
    # At most the tail's reading at heel off: before it the line would climb over it,
    # and a heel that barely loads would read more than it is loaded with.
    return max(load, params[P_TAIL_N] * min(1.0, (release - phase) / (release - heel_off)))


@kernel
def heel_force(load_n: float, params: np.ndarray, noise: float) -> float:
    """The heel force sensor's reading (N) of a true ``load_n``: plus noise, never < 0."""
    return max(0.0, load_n + params[P_FORCE_NOISE_N] * noise)
