"""Gait-phase detection from a shank or foot gyroscope: a causal, sample-by-sample
state machine.

The input is the sagittal angular velocity of the shank (rad/s, positive = forward
rotation), or of the foot (same sign: positive in swing). Over one stride the shank
shows a characteristic pattern (Aminian et al. 2002, J Biomech 35:689; Catalfamo et al.
2010, Sensors 10:5683; Pappas et al. 2001): small positive values in stance, a
negative minimum at toe off, a large positive peak at mid swing, and a negative minimum
just after heel strike. The detector walks through

    STANCE -> PRE_SWING -> SWING -> LOADING -> STANCE

and reports each event once it is certain of it, together with the time at which the
event happened (the extremum that defines it). The difference is the detection latency;
the scheduler acts on the phase, the metrics compare the estimated times with the truth.

Rules, and the reason for each:

* STANCE -> PRE_SWING when the signal drops below ``pre_swing_threshold_rad_s``, but
  only after the signal has stayed above it for ``min_stance_ms`` and at least
  ``refractory_ms`` after the previous toe off. A clonus or tremor that dips every
  100-250 ms therefore cannot start a pre-swing again and again, and one stride gives at
  most one toe off.
* PRE_SWING tracks the minimum. TOE_OFF (at the time of that minimum) becomes known when
  the signal rises through ``swing_entry_rad_s`` on its way to the swing peak -> SWING.
  The entry level sits above the amplitude of clonus (4-8 Hz, below 1 rad/s) and below
  the swing peak of pathological gait (1.5-2 rad/s). Without such a rise within
  ``pre_swing_timeout_ms`` of the deepest point so far, the dip was a wobble: back to
  STANCE, no event. (Timing from the minimum, not from the entry, keeps a long,
  deepening heel-off ramp in pre-swing until its toe off.)
* SWING tracks the maximum. Once the signal has fallen below
  ``mid_swing_confirm_fraction`` of it, the peak is judged: it must reach the adaptive
  threshold ``max(min_swing_peak_rad_s, swing_peak_fraction * average)``, where the
  average is a running mean over about ``peak_average_strides`` recent swing peaks of
  this walker. A peak that passes gives MID_SWING (at the time of the maximum); one that
  fails was no swing (a shuffle, a kick while seated): back to STANCE. Both feed the
  average, so the threshold follows a walker who slows down instead of locking them out.
* After mid swing the minimum is tracked; HEEL_STRIKE (at the time of the minimum) is
  known when that minimum is below ``heel_strike_max_rad_s`` and the signal has risen
  from it by ``heel_strike_rise_rad_s`` -> LOADING, and STANCE ``loading_time_ms`` after
  the estimated heel strike.
* Where on the curve an event is dated depends on where the sensor sits. On the shank
  the toe-off and heel-strike minima are the events (Aminian 2002). On the foot (instep
  or shoe; Mariani et al. 2010, J Biomech 43:2999) the pre-swing minimum is the fastest
  rotation of push-off, and contact comes at the start of the fast "foot slap" rotation
  after terminal swing: in the labelled recordings of Voisard et al. (IPOL 2023; method
  in J NeuroEng Rehabil 2024, doi:10.1186/s12984-024-01405-x) toe off lies 20-40 ms after
  that minimum, heel strike 20-40 ms before the slap's minimum. So a foot configuration
  dates toe off where the rising signal crosses ``toe_off_rise_fraction`` of the
  minimum, and heel strike where the signal falls through minus
  ``heel_strike_level_fraction`` of the stride's swing peak after mid swing
  (``heel_strike_estimate = "level"``), which is also known with almost no latency.
  Both levels scale with the stride itself, so the small first and last steps of a
  walk are dated like the others.
* The refractory time between two toe offs follows the walker's cadence: it is the
  larger of ``refractory_ms`` and ``refractory_stride_fraction`` of the running mean
  stride time (toe off to toe off, over ``peak_average_strides`` strides), so a slow
  walker's spasm shortly after a step cannot open a second swing.
* A swing that has not ended ``max_swing_ms`` after it began means the detector is
  confused: UNKNOWN, so that stimulation never stays on for long on a wrong belief.

UNKNOWN is also the phase before the detector has locked on, and after the gyroscope
sample has been missing (NaN) or saturated for longer than ``unknown_after_missing_ms``;
the state machine then restarts. It locks on after ``lock_quiet_ms`` of quiet stance
(``|gyro| <= quiet_threshold_rad_s``, e.g. standing before the first step) or at the
first confirmed mid swing, whichever comes first. The state machine runs the whole time;
only the phase it reports and the events are withheld until it is locked on. Shorter
gaps hold the current phase; saturated samples within them still drive the state
machine, because a clipped value is a lower bound of the true magnitude.

Each event is produced by a state transition, and the kernel makes at most one
transition per sample. Two events can never fall on one sample: toe off needs a rise
after the pre-swing minimum, mid swing a fall after the swing maximum and heel strike a
rise after a minimum that is only tracked from the mid-swing sample on. So one event
slot per sample is enough and no detection is delayed by it.

The state machine sees a moving average of the last ``smoothing_ms`` of samples and
dates it at the mean time of the samples it averages. A boxcar is symmetric, so the
extremum times carry no filter delay, while white sensor noise is averaged over the
same time span at 100 Hz and at 1000 Hz (the thresholds are crossed about half a window
later than on the raw signal).

All times are in milliseconds in the config and are compared with the sample
timestamps, so one configuration works at any sample rate and with jittered or dropped
samples. The kernel is numba-compiled and allocation free; ``controller.detect.detector``
wraps it for one sample at a time (the loop) and for whole recordings (the same kernel).
``GyroDetectorConfig()`` is the shank configuration, ``FOOT`` the foot one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from controller.detect import events
from controller.detect.jit import kernel
from controller.detect.stride import running_mean, stride_average
from controller.validation import ConfigModel


class GyroDetectorConfig(ConfigModel):
    """Thresholds and times of the gyroscope detector; the defaults are the shank's and
    fit any walker (``FOOT`` is the foot's)."""

    pre_swing_threshold_rad_s: float = Field(
        -0.3, ge=-5.0, le=-0.1,
        description="Signal below this in stance starts a pre-swing.",
    )
    swing_entry_rad_s: float = Field(
        1.0, ge=0.3, le=5.0,
        description="Rising through this after the pre-swing minimum confirms toe off.",
    )
    min_swing_peak_rad_s: float = Field(
        1.1, ge=0.5, le=10.0,
        description="Floor of the adaptive swing-peak threshold.",
    )
    swing_peak_fraction: float = Field(
        0.4, ge=0.1, le=0.9,
        description="Adaptive threshold as a fraction of the running mean swing peak.",
    )
    peak_average_strides: int = Field(
        4, ge=1, le=50,
        description="Memory of the running mean of swing peaks, in strides.",
    )
    mid_swing_confirm_fraction: float = Field(
        0.7, ge=0.2, le=0.95,
        description="Mid swing is confirmed when the signal falls below this fraction "
        "of the swing peak.",
    )
    heel_strike_max_rad_s: float = Field(
        0.0, ge=-3.0, le=1.0,
        description="The minimum after mid swing must lie below this to be a heel strike.",
    )
    heel_strike_rise_rad_s: float = Field(
        0.25, ge=0.05, le=2.0,
        description="Rise from the post-swing minimum that confirms heel strike.",
    )
    heel_strike_estimate: Literal["minimum", "level"] = Field(
        "minimum",
        description="Date heel strike at the post-swing minimum (shank) or where the "
        "signal falls through a level below zero after mid swing (foot).",
    )
    heel_strike_level_fraction: float = Field(
        0.35, ge=0.05, le=2.0,
        description="That level, as a fraction of the stride's swing peak (used when "
        "heel_strike_estimate is 'level').",
    )
    toe_off_rise_fraction: float = Field(
        0.0, ge=0.0, le=0.9,
        description="Toe off is dated where the signal rising after the pre-swing minimum "
        "crosses this fraction of it (0: at the minimum).",
    )
    loading_time_ms: float = Field(
        120.0, ge=0.0, le=500.0,
        description="Duration of LOADING after the estimated heel strike.",
    )
    pre_swing_timeout_ms: float = Field(
        400.0, ge=50.0, le=2000.0,
        description="A pre-swing without a swing within this time of its minimum returns "
        "to stance.",
    )
    max_swing_ms: float = Field(
        1000.0, ge=200.0, le=3000.0,
        description="A swing longer than this makes the detector UNKNOWN.",
    )
    min_stance_ms: float = Field(
        200.0, ge=0.0, le=1000.0,
        description="The signal must stay above the pre-swing threshold this long before "
        "a new pre-swing.",
    )
    refractory_ms: float = Field(
        500.0, ge=0.0, le=2000.0,
        description="Minimum time between two toe offs (one event of each kind per stride).",
    )
    refractory_stride_fraction: float = Field(
        0.5, ge=0.0, le=0.9,
        description="Minimum time between two toe offs as a fraction of the walker's mean "
        "stride time (the larger of this and refractory_ms applies).",
    )
    lock_quiet_ms: float = Field(
        300.0, ge=50.0, le=2000.0,
        description="Quiet stance needed to lock on without a swing.",
    )
    quiet_threshold_rad_s: float = Field(
        1.0, ge=0.1, le=3.0,
        description="|gyro| at or below this counts as quiet for locking on.",
    )
    unknown_after_missing_ms: float = Field(
        100.0, ge=20.0, le=2000.0,
        description="Missing or saturated data for longer than this gives UNKNOWN.",
    )
    smoothing_ms: float = Field(
        30.0, ge=0.0, le=60.0,
        description="Width of the moving average the state machine sees (0: raw samples).",
    )
    saturation_rad_s: float = Field(
        34.0, ge=2.0, le=100.0,
        description="|gyro| at or above this is saturated (34 rad/s: a 2000 deg/s sensor).",
    )


# Index of the parameter array (SI units: seconds, rad/s).
_P_PRE_SWING = 0
_P_SWING_ENTRY = 1
_P_MIN_PEAK = 2
_P_PEAK_FRACTION = 3
_P_AVG_WEIGHT = 4
_P_CONFIRM_FRACTION = 5
_P_HS_MAX = 6
_P_HS_RISE = 7
_P_LOADING_S = 8
_P_PRE_SWING_TIMEOUT_S = 9
_P_MAX_SWING_S = 10
_P_MIN_STANCE_S = 11
_P_REFRACTORY_S = 12
_P_LOCK_QUIET_S = 13
_P_QUIET = 14
_P_MISSING_S = 15
_P_SATURATION = 16
_P_SMOOTHING_S = 17
_P_HS_BY_LEVEL = 18  # 1.0: heel strike where the signal falls through a level
_P_HS_LEVEL_FRACTION = 19
_P_TO_RISE_FRACTION = 20
_P_REFRACTORY_STRIDE_FRACTION = 21
N_PARAMS = 22

# Index of the state array.
_S_PHASE = 0  # phase of the state machine (also while not locked on)
_S_LOCKED = 1  # 1.0 once the reported phase can be trusted
_S_SWING_DESCENT = 2  # 1.0 in SWING after mid swing was confirmed
_S_T_ENTER = 3  # time the current phase began
_S_EXT_VALUE = 4  # tracked extremum (minimum or maximum) of the current phase
_S_EXT_T = 5  # time of that extremum
_S_T_LAST_BELOW = 6  # last time the signal was below the pre-swing threshold
_S_T_LAST_TOE_OFF = 7  # estimated time of the last toe off
_S_T_QUIET_SINCE = 8  # start of the current run of quiet samples (inf: not quiet)
_S_T_LAST_GOOD = 9  # time of the last sample that was neither NaN nor saturated
_S_PEAK_AVERAGE = 10  # running mean of swing peaks (0: none seen yet)
_S_STRIDE_AVERAGE = 11  # running mean of toe-off to toe-off intervals (0: none yet)
_S_CROSS_T = 12  # time of the level crossing that dates the pending event (NaN: none)
_S_PREV_T = 13  # centre time of the previous smoothed sample (NaN after a restart)
_S_PREV_G = 14  # its smoothed value
_S_HS_LEVEL = 15  # heel-strike level of the current stride (level estimate)
_S_RING_START = 16  # slot of the oldest sample in the moving-average window
_S_RING_COUNT = 17  # number of samples in the window
_S_RING_VALUES = 18  # first slot of the window's values, then its times
_RING = 128  # window capacity: 60 ms at 2 kHz; a longer window keeps the newest samples
_S_RING_TIMES = _S_RING_VALUES + _RING
N_STATE = _S_RING_TIMES + _RING
_WINDOW_GUARD_S = 1e-6  # keeps a sample exactly one window old out despite rounding


def make_params(config: GyroDetectorConfig) -> np.ndarray:
    """The kernel's parameter array for ``config`` (times converted to seconds)."""
    params = np.empty(N_PARAMS)
    params[_P_PRE_SWING] = config.pre_swing_threshold_rad_s
    params[_P_SWING_ENTRY] = config.swing_entry_rad_s
    params[_P_MIN_PEAK] = config.min_swing_peak_rad_s
    params[_P_PEAK_FRACTION] = config.swing_peak_fraction
    params[_P_AVG_WEIGHT] = 1.0 / config.peak_average_strides
    params[_P_CONFIRM_FRACTION] = config.mid_swing_confirm_fraction
    params[_P_HS_MAX] = config.heel_strike_max_rad_s
    params[_P_HS_RISE] = config.heel_strike_rise_rad_s
    params[_P_LOADING_S] = config.loading_time_ms / 1000.0
    params[_P_PRE_SWING_TIMEOUT_S] = config.pre_swing_timeout_ms / 1000.0
    params[_P_MAX_SWING_S] = config.max_swing_ms / 1000.0
    params[_P_MIN_STANCE_S] = config.min_stance_ms / 1000.0
    params[_P_REFRACTORY_S] = config.refractory_ms / 1000.0
    params[_P_LOCK_QUIET_S] = config.lock_quiet_ms / 1000.0
    params[_P_QUIET] = config.quiet_threshold_rad_s
    params[_P_MISSING_S] = config.unknown_after_missing_ms / 1000.0
    params[_P_SATURATION] = config.saturation_rad_s
    params[_P_SMOOTHING_S] = config.smoothing_ms / 1000.0
    params[_P_HS_BY_LEVEL] = 1.0 if config.heel_strike_estimate == "level" else 0.0
    params[_P_HS_LEVEL_FRACTION] = config.heel_strike_level_fraction
    params[_P_TO_RISE_FRACTION] = config.toe_off_rise_fraction
    params[_P_REFRACTORY_STRIDE_FRACTION] = config.refractory_stride_fraction
    return params


@kernel
def _restart(state: np.ndarray) -> None:
    """Forget the stride in progress and the lock; keep the walker's averages."""
    state[_S_PHASE] = events.STANCE
    state[_S_LOCKED] = 0.0
    state[_S_SWING_DESCENT] = 0.0
    state[_S_T_ENTER] = -np.inf
    state[_S_EXT_VALUE] = 0.0
    state[_S_EXT_T] = np.nan
    state[_S_T_LAST_BELOW] = -np.inf
    state[_S_T_LAST_TOE_OFF] = -np.inf
    state[_S_T_QUIET_SINCE] = np.inf
    state[_S_CROSS_T] = np.nan
    state[_S_PREV_T] = np.nan
    state[_S_PREV_G] = np.nan


def new_state() -> np.ndarray:
    """The state of a detector that has seen no sample (not locked on)."""
    state = np.zeros(N_STATE)
    _restart(state)
    state[_S_T_LAST_GOOD] = -np.inf
    return state


@kernel
def _smooth(state: np.ndarray, window_s: float, t_s: float, g: float) -> tuple[float, float]:
    """Add a sample to the moving-average window; return (centre time, mean value).

    The window holds the samples of the last ``window_s`` seconds, (t - window, t]. A
    boxcar is symmetric, so its output belongs to the mean time of the samples in it:
    extremum times taken at that centre carry no filter delay, while white sensor noise
    is averaged over a fixed time span whatever the sample rate.
    """
    start = int(state[_S_RING_START])
    count = int(state[_S_RING_COUNT])
    if count == _RING:
        start = (start + 1) % _RING
        count -= 1
    slot = (start + count) % _RING
    state[_S_RING_VALUES + slot] = g
    state[_S_RING_TIMES + slot] = t_s
    count += 1
    while count > 1 and state[_S_RING_TIMES + start] <= t_s - window_s + _WINDOW_GUARD_S:
        start = (start + 1) % _RING
        count -= 1
    state[_S_RING_START] = start
    state[_S_RING_COUNT] = count
    total_g = 0.0
    total_t = 0.0
    for k in range(count):
        slot = (start + k) % _RING
        total_g += state[_S_RING_VALUES + slot]
        total_t += state[_S_RING_TIMES + slot] - t_s
    return t_s + total_t / count, total_g / count


@kernel
def _enter(state: np.ndarray, phase: int, t_s: float, t_c: float, g: float) -> None:
    """Switch to ``phase`` at ``t_s``, starting its extremum tracking at (``t_c``, ``g``)."""
    state[_S_PHASE] = phase
    state[_S_T_ENTER] = t_s
    state[_S_SWING_DESCENT] = 0.0
    state[_S_EXT_VALUE] = g
    state[_S_EXT_T] = t_c
    state[_S_CROSS_T] = np.nan


@kernel
def _crossing(state: np.ndarray, t_c: float, g: float, level: float) -> float:
    """Time at which the smoothed signal crossed ``level`` between the previous sample
    and this one, by linear interpolation (this sample's time if there is no previous)."""
    t_prev = state[_S_PREV_T]
    g_prev = state[_S_PREV_G]
    if math.isnan(t_prev) or g == g_prev:
        return t_c
    weight = min(1.0, max(0.0, (level - g_prev) / (g - g_prev)))
    return t_prev + weight * (t_c - t_prev)


@kernel
def _refractory_s(state: np.ndarray, params: np.ndarray) -> float:
    """Minimum time between toe offs: fixed floor or a fraction of the mean stride."""
    return max(
        params[_P_REFRACTORY_S],
        params[_P_REFRACTORY_STRIDE_FRACTION] * state[_S_STRIDE_AVERAGE],
    )


@kernel
def _pre_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float, below: bool
) -> tuple[int, float]:
    """PRE_SWING: track the minimum; toe off once the signal rises into swing."""
    if below:
        state[_S_T_LAST_BELOW] = t_s
    fraction = params[_P_TO_RISE_FRACTION]
    if g < state[_S_EXT_VALUE]:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
        state[_S_CROSS_T] = np.nan
    elif fraction > 0.0 and math.isnan(state[_S_CROSS_T]):
        level = fraction * state[_S_EXT_VALUE]
        if g >= level:
            state[_S_CROSS_T] = _crossing(state, t_c, g, level)
    if g >= params[_P_SWING_ENTRY]:
        t_toe_off = state[_S_CROSS_T] if fraction > 0.0 else state[_S_EXT_T]
        state[_S_STRIDE_AVERAGE] = stride_average(
            state[_S_STRIDE_AVERAGE], t_toe_off - state[_S_T_LAST_TOE_OFF], params[_P_AVG_WEIGHT]
        )
        state[_S_T_LAST_TOE_OFF] = t_toe_off
        _enter(state, events.SWING, t_s, t_c, g)
        return events.TOE_OFF, t_toe_off
    if t_s - state[_S_EXT_T] > params[_P_PRE_SWING_TIMEOUT_S]:
        _enter(state, events.STANCE, t_s, t_c, g)
    return events.NONE, np.nan


@kernel
def _swing_peak(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """SWING before mid swing: track the peak, judge it once the signal has fallen."""
    peak = state[_S_EXT_VALUE]
    if g > peak:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
        return events.NONE, np.nan
    if g >= params[_P_CONFIRM_FRACTION] * peak:
        return events.NONE, np.nan
    average = state[_S_PEAK_AVERAGE]
    threshold = max(params[_P_MIN_PEAK], params[_P_PEAK_FRACTION] * average)
    state[_S_PEAK_AVERAGE] = running_mean(average, peak, params[_P_AVG_WEIGHT])
    if peak < threshold:
        _enter(state, events.STANCE, t_s, t_c, g)
        return events.NONE, np.nan
    t_mid_swing = state[_S_EXT_T]
    state[_S_LOCKED] = 1.0
    state[_S_SWING_DESCENT] = 1.0
    state[_S_EXT_VALUE] = g
    state[_S_EXT_T] = t_c
    state[_S_HS_LEVEL] = -params[_P_HS_LEVEL_FRACTION] * peak
    level = state[_S_HS_LEVEL]
    if params[_P_HS_BY_LEVEL] == 1.0 and g < level:
        # Fell through the heel-strike level on this very sample: date it now, report
        # it at the next sample (one event per sample).
        state[_S_CROSS_T] = _crossing(state, t_c, g, level)
    return events.MID_SWING, t_mid_swing


@kernel
def _terminal_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """SWING after mid swing: wait for heel strike (by level or by minimum and rise)."""
    t_heel_strike = np.nan
    if params[_P_HS_BY_LEVEL] == 1.0:
        level = state[_S_HS_LEVEL]
        if not math.isnan(state[_S_CROSS_T]):
            t_heel_strike = state[_S_CROSS_T]
        elif g < level:
            t_heel_strike = _crossing(state, t_c, g, level)
    elif g < state[_S_EXT_VALUE]:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
    elif (
        state[_S_EXT_VALUE] < params[_P_HS_MAX]
        and g - state[_S_EXT_VALUE] >= params[_P_HS_RISE]
    ):
        t_heel_strike = state[_S_EXT_T]
    if math.isnan(t_heel_strike):
        return events.NONE, np.nan
    _enter(state, events.LOADING, t_s, t_heel_strike, g)
    return events.HEEL_STRIKE, t_heel_strike


@kernel
def _machine(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """Advance the state machine by one sample; return (event code, event time).

    ``g`` is the smoothed signal and ``t_c`` the time it belongs to (the window centre);
    extremum times are taken there, timeouts run on the sample time ``t_s``.
    """
    phase = int(state[_S_PHASE])

    if abs(g) <= params[_P_QUIET]:
        if state[_S_T_QUIET_SINCE] == np.inf:
            state[_S_T_QUIET_SINCE] = t_s
    else:
        state[_S_T_QUIET_SINCE] = np.inf
    below = g < params[_P_PRE_SWING]

    if phase == events.STANCE:
        if state[_S_LOCKED] == 0.0 and t_s - state[_S_T_QUIET_SINCE] >= params[_P_LOCK_QUIET_S]:
            state[_S_LOCKED] = 1.0
        if (
            below
            and t_s - state[_S_T_LAST_BELOW] >= params[_P_MIN_STANCE_S]
            and t_c - state[_S_T_LAST_TOE_OFF] >= _refractory_s(state, params)
        ):
            _enter(state, events.PRE_SWING, t_s, t_c, g)
        if below:
            state[_S_T_LAST_BELOW] = t_s
        return events.NONE, np.nan

    if phase == events.PRE_SWING:
        return _pre_swing(state, params, t_s, t_c, g, below)

    if phase == events.SWING:
        if t_s - state[_S_T_ENTER] > params[_P_MAX_SWING_S]:
            _restart(state)
            return events.NONE, np.nan
        if state[_S_SWING_DESCENT] == 0.0:
            return _swing_peak(state, params, t_s, t_c, g)
        return _terminal_swing(state, params, t_s, t_c, g)

    # LOADING (the extremum time holds the heel strike). The heel-strike dip may still
    # be below the pre-swing threshold, which must hold off the next pre-swing.
    if below:
        state[_S_T_LAST_BELOW] = t_s
    if t_s - state[_S_EXT_T] >= params[_P_LOADING_S]:
        _enter(state, events.STANCE, t_s, t_c, g)
    return events.NONE, np.nan


@kernel
def gyro_step(
    state: np.ndarray, params: np.ndarray, t_s: float, gyro_rad_s: float
) -> tuple[int, int, float]:
    """Process one gyroscope sample; return (phase, event code, estimated event time).

    ``state`` (from ``new_state``) is updated in place; ``params`` come from
    ``make_params``. The event code is ``Event.NONE`` (and the time NaN) when no event
    became known at this sample. Phase and event are the integer values of ``Phase`` and
    ``Event``.
    """
    saturated = abs(gyro_rad_s) >= params[_P_SATURATION]
    missing = math.isnan(gyro_rad_s)
    gap_too_long = t_s - state[_S_T_LAST_GOOD] > params[_P_MISSING_S]
    if missing or saturated:
        if gap_too_long:
            _restart(state)
            return events.UNKNOWN, events.NONE, np.nan
        if missing:
            phase = int(state[_S_PHASE]) if state[_S_LOCKED] == 1.0 else events.UNKNOWN
            return phase, events.NONE, np.nan
    else:
        if gap_too_long:
            _restart(state)
        state[_S_T_LAST_GOOD] = t_s
    t_c, smoothed = _smooth(state, params[_P_SMOOTHING_S], t_s, gyro_rad_s)
    event, t_event = _machine(state, params, t_s, t_c, smoothed)
    state[_S_PREV_T] = t_c
    state[_S_PREV_G] = smoothed
    if state[_S_LOCKED] == 0.0:
        return events.UNKNOWN, events.NONE, np.nan
    return int(state[_S_PHASE]), event, t_event


def missing_limit_s(config: GyroDetectorConfig) -> float:
    """Longest gap in the data that holds the phase, in seconds."""
    return config.unknown_after_missing_ms / 1000.0


#: The foot (instep or shoe) configuration; the field defaults are the shank's. Measured
#: on the Voisard et al. 2023 recordings (see docs/detection.md), and why each value differs:
FOOT = GyroDetectorConfig(
    # Push-off drives the foot to -5..-12 rad/s, and its stance is flat (near 0) but
    # rings for up to ~150 ms after the slap: enter pre-swing only well below zero, and
    # only after a longer loading phase, with no extra quiet stance required (a fast
    # walker's foot starts to roll off soon after it lands).
    pre_swing_threshold_rad_s=-1.5,
    min_stance_ms=0.0,
    loading_time_ms=200.0,
    # The swing of the foot has two or three humps: judge its peak only once the
    # signal has fallen well below it.
    mid_swing_confirm_fraction=0.3,
    # Event dating on the foot curve (see the module docstring).
    heel_strike_estimate="level",
    heel_strike_level_fraction=0.35,
    toe_off_rise_fraction=0.6,
)
