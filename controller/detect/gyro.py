"""Gait-phase detection from a shank gyroscope: a causal, sample-by-sample state machine.

The input is the sagittal angular velocity of the shank (rad/s, positive = forward
rotation). Over one stride it shows a characteristic pattern (Aminian et al. 2002,
J Biomech 35:689; Catalfamo et al. 2010, Sensors 10:5683; Pappas et al. 2001): small
positive values in stance, a negative minimum at toe off, a large positive peak at mid
swing, and a negative minimum just after heel strike. The detector walks through

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
  ``pre_swing_timeout_ms`` the dip was a wobble: back to STANCE, no event.
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
samples. The kernel is numba-compiled and allocation free; ``GyroDetector`` wraps it for
one sample at a time and ``detect_batch`` runs the same kernel over a whole recording.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from pydantic import Field

from controller.detect.events import DetectedEvent, Event, Phase
from controller.ports import Sample
from controller.validation import ConfigModel


class GyroDetectorConfig(ConfigModel):
    """Thresholds and times of the shank-gyroscope detector; defaults fit any walker."""

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
    loading_time_ms: float = Field(
        120.0, ge=0.0, le=500.0,
        description="Duration of LOADING after the estimated heel strike.",
    )
    pre_swing_timeout_ms: float = Field(
        400.0, ge=50.0, le=2000.0,
        description="A pre-swing without a swing within this time returns to stance.",
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


# Integer codes the kernel returns (numba cannot return the enum members themselves).
_UNKNOWN = int(Phase.UNKNOWN)
_STANCE = int(Phase.STANCE)
_PRE_SWING = int(Phase.PRE_SWING)
_SWING = int(Phase.SWING)
_LOADING = int(Phase.LOADING)
_NONE = int(Event.NONE)
_HEEL_STRIKE = int(Event.HEEL_STRIKE)
_TOE_OFF = int(Event.TOE_OFF)
_MID_SWING = int(Event.MID_SWING)

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
_N_PARAMS = 18

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
_S_RING_START = 11  # slot of the oldest sample in the moving-average window
_S_RING_COUNT = 12  # number of samples in the window
_S_RING_VALUES = 13  # first slot of the window's values, then its times
_RING = 128  # window capacity: 60 ms at 2 kHz; a longer window keeps the newest samples
_S_RING_TIMES = _S_RING_VALUES + _RING
_N_STATE = _S_RING_TIMES + _RING
_WINDOW_GUARD_S = 1e-6  # keeps a sample exactly one window old out despite rounding


def make_params(config: GyroDetectorConfig) -> np.ndarray:
    """The kernel's parameter array for ``config`` (times converted to seconds)."""
    params = np.empty(_N_PARAMS)
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
    return params


@numba.njit(cache=True)
def _restart(state: np.ndarray) -> None:
    """Forget the stride in progress and the lock; keep the walker's swing-peak average."""
    state[_S_PHASE] = _STANCE
    state[_S_LOCKED] = 0.0
    state[_S_SWING_DESCENT] = 0.0
    state[_S_T_ENTER] = -np.inf
    state[_S_EXT_VALUE] = 0.0
    state[_S_EXT_T] = np.nan
    state[_S_T_LAST_BELOW] = -np.inf
    state[_S_T_LAST_TOE_OFF] = -np.inf
    state[_S_T_QUIET_SINCE] = np.inf


def new_state() -> np.ndarray:
    """The state of a detector that has seen no sample (not locked on)."""
    state = np.zeros(_N_STATE)
    _restart(state)
    state[_S_T_LAST_GOOD] = -np.inf
    state[_S_PEAK_AVERAGE] = 0.0
    state[_S_RING_START] = 0.0
    state[_S_RING_COUNT] = 0.0
    return state


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _enter(state: np.ndarray, phase: int, t_s: float, t_c: float, g: float) -> None:
    """Switch to ``phase`` at ``t_s``, starting its extremum tracking at (``t_c``, ``g``)."""
    state[_S_PHASE] = phase
    state[_S_T_ENTER] = t_s
    state[_S_SWING_DESCENT] = 0.0
    state[_S_EXT_VALUE] = g
    state[_S_EXT_T] = t_c


@numba.njit(cache=True)
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

    if phase == _STANCE:
        if state[_S_LOCKED] == 0.0 and t_s - state[_S_T_QUIET_SINCE] >= params[_P_LOCK_QUIET_S]:
            state[_S_LOCKED] = 1.0
        if (
            below
            and t_s - state[_S_T_LAST_BELOW] >= params[_P_MIN_STANCE_S]
            and t_c - state[_S_T_LAST_TOE_OFF] >= params[_P_REFRACTORY_S]
        ):
            _enter(state, _PRE_SWING, t_s, t_c, g)
        if below:
            state[_S_T_LAST_BELOW] = t_s
        return _NONE, np.nan

    if phase == _PRE_SWING:
        if below:
            state[_S_T_LAST_BELOW] = t_s
        if g < state[_S_EXT_VALUE]:
            state[_S_EXT_VALUE] = g
            state[_S_EXT_T] = t_c
        if g >= params[_P_SWING_ENTRY]:
            t_toe_off = state[_S_EXT_T]
            state[_S_T_LAST_TOE_OFF] = t_toe_off
            _enter(state, _SWING, t_s, t_c, g)
            return _TOE_OFF, t_toe_off
        if t_s - state[_S_T_ENTER] > params[_P_PRE_SWING_TIMEOUT_S]:
            _enter(state, _STANCE, t_s, t_c, g)
        return _NONE, np.nan

    if phase == _SWING:
        if t_s - state[_S_T_ENTER] > params[_P_MAX_SWING_S]:
            _restart(state)
            return _NONE, np.nan
        if state[_S_SWING_DESCENT] == 0.0:
            peak = state[_S_EXT_VALUE]
            if g > peak:
                state[_S_EXT_VALUE] = g
                state[_S_EXT_T] = t_c
                return _NONE, np.nan
            if g >= params[_P_CONFIRM_FRACTION] * peak:
                return _NONE, np.nan
            average = state[_S_PEAK_AVERAGE]
            threshold = max(params[_P_MIN_PEAK], params[_P_PEAK_FRACTION] * average)
            if average == 0.0:
                state[_S_PEAK_AVERAGE] = peak
            else:
                state[_S_PEAK_AVERAGE] = average + params[_P_AVG_WEIGHT] * (peak - average)
            if peak < threshold:
                _enter(state, _STANCE, t_s, t_c, g)
                return _NONE, np.nan
            t_mid_swing = state[_S_EXT_T]
            state[_S_LOCKED] = 1.0
            state[_S_SWING_DESCENT] = 1.0
            state[_S_EXT_VALUE] = g
            state[_S_EXT_T] = t_c
            return _MID_SWING, t_mid_swing
        if g < state[_S_EXT_VALUE]:
            state[_S_EXT_VALUE] = g
            state[_S_EXT_T] = t_c
            return _NONE, np.nan
        if (
            state[_S_EXT_VALUE] < params[_P_HS_MAX]
            and g - state[_S_EXT_VALUE] >= params[_P_HS_RISE]
        ):
            t_heel_strike = state[_S_EXT_T]
            _enter(state, _LOADING, t_s, t_heel_strike, g)
            return _HEEL_STRIKE, t_heel_strike
        return _NONE, np.nan

    # LOADING (the extremum time holds the heel strike). The heel-strike dip may still
    # be below the pre-swing threshold, which must hold off the next pre-swing.
    if below:
        state[_S_T_LAST_BELOW] = t_s
    if t_s - state[_S_EXT_T] >= params[_P_LOADING_S]:
        _enter(state, _STANCE, t_s, t_c, g)
    return _NONE, np.nan


@numba.njit(cache=True)
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
            return _UNKNOWN, _NONE, np.nan
        if missing:
            phase = int(state[_S_PHASE]) if state[_S_LOCKED] == 1.0 else _UNKNOWN
            return phase, _NONE, np.nan
    else:
        if gap_too_long:
            _restart(state)
        state[_S_T_LAST_GOOD] = t_s
    t_c, smoothed = _smooth(state, params[_P_SMOOTHING_S], t_s, gyro_rad_s)
    event, t_event = _machine(state, params, t_s, t_c, smoothed)
    if state[_S_LOCKED] == 0.0:
        return _UNKNOWN, _NONE, np.nan
    return int(state[_S_PHASE]), event, t_event


@numba.njit(cache=True)
def _run_batch(
    state: np.ndarray,
    params: np.ndarray,
    t_s: np.ndarray,
    gyro_rad_s: np.ndarray,
    phases: np.ndarray,
    event_index: np.ndarray,
    event_code: np.ndarray,
    event_t_est: np.ndarray,
) -> int:
    """Run ``gyro_step`` over a recording; fill the output arrays, return the event count."""
    count = 0
    for i in range(t_s.size):
        phase, event, t_event = gyro_step(state, params, t_s[i], gyro_rad_s[i])
        phases[i] = phase
        if event != _NONE:
            event_index[count] = i
            event_code[count] = event
            event_t_est[count] = t_event
            count += 1
    return count


def _check_rate(config: GyroDetectorConfig, sample_period_s: float) -> None:
    """Refuse a sample period for which every ordinary sample would count as a gap."""
    limit_s = config.unknown_after_missing_ms / 1000.0
    if not sample_period_s > 0.0:
        raise ValueError(f"sample period must be positive, got {sample_period_s} s")
    if limit_s < 1.5 * sample_period_s:
        raise ValueError(
            f"unknown_after_missing_ms = {config.unknown_after_missing_ms} is shorter than "
            f"1.5 sample periods ({1.5 * sample_period_s * 1000.0:.1f} ms): every sample "
            "would count as missing data"
        )


class GyroDetector:
    """The shank-gyroscope detector for a live loop, one sample per ``step``."""

    def __init__(self, config: GyroDetectorConfig, sample_rate_hz: float) -> None:
        if not sample_rate_hz > 0.0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        _check_rate(config, 1.0 / sample_rate_hz)
        self.config = config
        self.sample_rate_hz = sample_rate_hz
        self._params = make_params(config)
        self._state = new_state()
        self._phase = Phase.UNKNOWN

    @property
    def phase(self) -> Phase:
        """The phase reported at the last sample (UNKNOWN before the first)."""
        return self._phase

    def reset(self) -> None:
        """Forget everything, including the walker's swing-peak average."""
        self._state = new_state()
        self._phase = Phase.UNKNOWN

    def warm_up(self) -> None:
        """Compile (or load from the cache) the kernel before the loop; state unchanged."""
        gyro_step(self._state.copy(), self._params, 0.0, 0.0)

    def step(self, t_s: float, gyro_rad_s: float) -> tuple[Phase, list[DetectedEvent]]:
        """Process one sample (NaN = lost); return the phase and the events now known."""
        phase, event, t_est = gyro_step(self._state, self._params, t_s, gyro_rad_s)
        self._phase = Phase(phase)
        if event == _NONE:
            return self._phase, []
        return self._phase, [DetectedEvent(Event(event), t_s, t_est)]

    def process(self, sample: Sample) -> tuple[Phase, list[DetectedEvent]]:
        """The loop's entry point: ``step`` on the sample's shank gyroscope reading."""
        return self.step(sample.t_s, sample.gyro_rad_s)


def detect_batch(
    t_s: np.ndarray, gyro_rad_s: np.ndarray, config: GyroDetectorConfig
) -> tuple[np.ndarray, list[DetectedEvent]]:
    """Run a fresh detector over a whole recording with the same kernel as ``GyroDetector``.

    Returns the phase at every sample (int8 values of ``Phase``) and the events in order.
    """
    t = np.ascontiguousarray(t_s, dtype=np.float64)
    g = np.ascontiguousarray(gyro_rad_s, dtype=np.float64)
    if t.ndim != 1 or t.shape != g.shape:
        raise ValueError(
            f"t_s and gyro_rad_s must be 1-D and of equal length, got {t.shape} and {g.shape}"
        )
    if t.size > 1:
        _check_rate(config, float(np.median(np.diff(t))))
    n = t.size
    phases = np.empty(n, dtype=np.int8)
    event_index = np.empty(n, dtype=np.int64)
    event_code = np.empty(n, dtype=np.int64)
    event_t_est = np.empty(n)
    count = _run_batch(
        new_state(), make_params(config), t, g, phases, event_index, event_code, event_t_est
    )
    events = [
        DetectedEvent(Event(int(event_code[k])), float(t[event_index[k]]), float(event_t_est[k]))
        for k in range(count)
    ]
    return phases, events
