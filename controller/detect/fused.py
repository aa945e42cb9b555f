"""Gait-phase detection from a gyroscope and a heel switch together, with fallback.

The two sensors are good at different things. The heel switch sees contact directly:
its heel strike is exact to the debounce, and its heel off is the clinical trigger; but
it cannot see the toes leave the ground. The gyroscope sees toe off and mid swing (and
heel strike, later and less exactly), and it keeps working when the switch wears out or
slips. So each event has a primary source:

    heel strike, heel off -> heel sensor        toe off, mid swing -> gyroscope

Both kernels run on every sample (``gyro_step`` and ``heel_step`` on their own state).
An event from its primary source is reported at once. A toe off the gyroscope sees while
a working heel sensor is loaded is no toe off (a spasm, clonus, a kick while seated): it
is dropped, and so are the mid swing and heel strike of a swing that was not let
through. The same event from the other
source waits up to ``fallback_wait_ms`` for the primary one and is reported in its place
if the primary stays silent; events of one kind within ``merge_window_ms`` of each other
are one event, reported once. This is the fallback for a single missed event. The wait
counts from the secondary event's arrival, or, for a toe off the gyroscope is on its way
to report (in its pre-swing, or in a swing it has not yet confirmed), from the
gyroscope's own date for it when that is later: the heel's toe off is an estimate that
may be known before the toes leave the ground, the gyroscope's comes up to ~150 ms after
them, and counted from the estimate alone the wait let the estimate (36-132 ms early)
stand in for the gyroscope's toe off on 5 of 12 steps after a clonus.

A source is failed while its own phase is UNKNOWN (dropout, saturation, heel lifted for
too long, not locked on) or while it stays silent over ``silent_strides`` strides that
the other source sees: a switch stuck closed reads as standing, a gyroscope stuck at a
constant reads as quiet, and only the other sensor can tell. (A gyroscope stride counts
when its swing lasted ``min_swing_ms``, so spasms while standing do not fail the heel
switch.) A failed source's events are ignored and the other one is used alone, with no
wait; it is trusted again from its next event. With both failed, the phase is UNKNOWN
and the stimulator is told so.

The phase, with both sources healthy: LOADING at heel strike, STANCE after
``loading_time_ms``, PRE_SWING when the gyroscope enters pre-swing (the push-off; back
to STANCE if both sources say stance again: a wobble), SWING at toe off. Heel off is
reported as an event (the scheduler's ``heel_off`` trigger: the Odstock timing) but does
not open the pre-swing: the heel rises at the start of terminal stance, about 31 % of
the gait cycle, pre-swing starts near 50 % (Perry 1992). On the simulated healthy
walker the heel rises 265 ms before toe off; a pre-swing opened there started the
peroneal train so early that it was on 80 % of the time (heel off to heel strike, plus
extension and ramp down), and the watchdog latched its duty-cycle fault after 10.9 s
of `fes sim --patient healthy`. With one source healthy, the phase is that source's
phase (the heel sensor alone opens its pre-swing at heel off: it has nothing else).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from controller import events
from controller.detect import gyro, heel, outbox
from controller.kernels import kernel, pack
from controller.validation import ConfigModel


class FusionConfig(ConfigModel):
    """How the fused detector combines the gyroscope and the heel sensor."""

    fallback_wait_ms: float = Field(
        150.0, ge=0.0, le=1000.0,
        description="An event from the secondary source waits this long for the primary "
        "one before it is reported in its place (a toe off: from the gyroscope's own date "
        "for the toe off it is on its way to, when later).",
    )
    merge_window_ms: float = Field(
        300.0, ge=20.0, le=1000.0,
        description="Events of one kind estimated within this of each other are one event.",
    )
    silent_strides: int = Field(
        2, ge=1, le=20,
        description="A source silent over this many strides seen by the other is failed.",
    )
    loading_time_ms: float = Field(
        120.0, ge=0.0, le=500.0,
        description="Duration of LOADING after heel strike.",
    )
    min_swing_ms: float = Field(
        250.0, ge=0.0, le=1000.0,
        description="A gyroscope stride counts as walking (against a silent heel sensor) "
        "only if its swing lasted this long.",
    )


_N_CODES = 5  # event codes 0..4

_GYRO = 0
_HEEL = 1
#: Primary source of each event code (index = code; NONE unused).
_PRIMARY = np.array([_HEEL, _HEEL, _HEEL, _GYRO, _GYRO])

# Parameter array: the fusion's own slots, then the gyroscope's, then the heel sensor's.
PARAM_NAMES = ("wait_s", "merge_s", "silent_strides", "loading_s", "min_swing_s")
(_P_WAIT_S, _P_MERGE_S, _P_SILENT_STRIDES, _P_LOADING_S, _P_MIN_SWING_S) = range(
    len(PARAM_NAMES)
)
_P_GYRO = len(PARAM_NAMES)
_P_HEEL = _P_GYRO + gyro.N_PARAMS
N_PARAMS = _P_HEEL + heel.N_PARAMS

# State array: the fusion's own scalars and its three rows of one slot per event code,
# then the gyroscope kernel's state, then the heel kernel's.
STATE_NAMES = (
    "phase",  # fused phase machine (used while both sources are healthy)
    "t_heel_strike",  # last reported heel strike (for LOADING)
    "gyro_silence",  # heel strikes since the gyroscope's last event
    "heel_silence",  # gyroscope strides since the heel sensor's last event
    "gyro_toe_off",  # the gyroscope's last toe off (reported or not)
)
(_S_PHASE, _S_T_HEEL_STRIKE, _S_GYRO_SILENCE, _S_HEEL_SILENCE, _S_GYRO_TOE_OFF) = range(
    len(STATE_NAMES)
)
_S_LAST = len(STATE_NAMES)  # + code: estimated time of the last reported event of each kind
_S_PENDING_T = _S_LAST + _N_CODES  # + code: pending secondary event's time (NaN: none)
_S_PENDING_SINCE = _S_PENDING_T + _N_CODES  # + code: when it arrived
_S_GYRO = _S_PENDING_SINCE + _N_CODES
_S_HEEL = _S_GYRO + gyro.N_STATE
N_STATE = _S_HEEL + heel.N_STATE


def make_params(
    gyro_config: gyro.GyroDetectorConfig,
    heel_config: heel.HeelDetectorConfig,
    heel_input: heel.HeelInput,
    config: FusionConfig,
) -> np.ndarray:
    """The fused kernel's parameter array (the two sensors' arrays included)."""
    own = pack(PARAM_NAMES, {
        "wait_s": config.fallback_wait_ms / 1000.0,
        "merge_s": config.merge_window_ms / 1000.0,
        "silent_strides": config.silent_strides,
        "loading_s": config.loading_time_ms / 1000.0,
        "min_swing_s": config.min_swing_ms / 1000.0,
    })
    return np.concatenate(
        [own, gyro.make_params(gyro_config), heel.make_params(heel_config, heel_input)]
    )


def new_state() -> np.ndarray:
    """The state of a fused detector that has seen no sample."""
    state = np.zeros(N_STATE)
    state[_S_PHASE] = events.UNKNOWN
    state[_S_T_HEEL_STRIKE] = -np.inf
    state[_S_GYRO_TOE_OFF] = -np.inf
    state[_S_LAST : _S_LAST + _N_CODES] = -np.inf
    state[_S_PENDING_T : _S_PENDING_T + _N_CODES] = np.nan
    state[_S_GYRO:_S_HEEL] = gyro.new_state()
    state[_S_HEEL:] = heel.new_state()
    return state


@kernel
def _report(state: np.ndarray, params: np.ndarray, out: np.ndarray, code: int, t: float) -> None:
    """Report an event unless one of its kind was reported within the merge window."""
    state[_S_PENDING_T + code] = np.nan
    if abs(t - state[_S_LAST + code]) < params[_P_MERGE_S]:
        return
    state[_S_LAST + code] = t
    outbox.push(out, code, t)
    if code == events.HEEL_STRIKE:
        state[_S_T_HEEL_STRIKE] = t
        state[_S_PHASE] = events.LOADING
    elif code == events.TOE_OFF:
        state[_S_PHASE] = events.SWING


@kernel
def _impossible(g_event: int, h_phase: int, fused_phase: int) -> bool:
    """Whether a gyroscope event contradicts a working heel sensor: no toe off while the
    heel is loaded, no mid swing or heel strike of a swing that was not let through."""
    if g_event == events.TOE_OFF:
        return h_phase in (events.STANCE, events.LOADING)
    if g_event in (events.MID_SWING, events.HEEL_STRIKE):
        return fused_phase != events.SWING
    return False


@kernel
def _healthy(source: int, gyro_ok: bool, heel_ok: bool) -> bool:
    """Whether ``source`` is trusted at this sample."""
    return gyro_ok if source == _GYRO else heel_ok


@kernel
def _route(
    state: np.ndarray,
    params: np.ndarray,
    out: np.ndarray,
    t_s: float,
    source: int,
    code: int,
    t_est: float,
    gyro_ok: bool,
    heel_ok: bool,
) -> None:
    """Report an event of its primary source (or of any source when the primary is
    failed); hold one of the secondary source as pending."""
    if code == events.NONE:
        return
    primary = _PRIMARY[code]
    if source == primary or not _healthy(primary, gyro_ok, heel_ok):
        _report(state, params, out, code, t_est)
    else:
        state[_S_PENDING_T + code] = t_est
        state[_S_PENDING_SINCE + code] = t_s


@kernel
def _wait_start(state: np.ndarray, params: np.ndarray, code: int, gyro_ok: bool) -> float:
    """When the wait of a pending event started: at its arrival, or, for a toe off that a
    working gyroscope is on its way to report, at the gyroscope's own date for it when
    that is later. The heel's toe off is an estimate from the stance, often known before
    the toes leave the ground; the gyroscope's comes once the shank has swung forward,
    up to ~150 ms after it (the severe walker). Counted from the estimate's arrival, the
    wait ran out first on 5 of 12 toe offs after the clonus (docs/detection.md)."""
    since = state[_S_PENDING_SINCE + code]
    if code != events.TOE_OFF or not gyro_ok:
        return since
    under_way = gyro.toe_off_under_way(state[_S_GYRO:_S_HEEL], params[_P_GYRO:_P_HEEL])
    return under_way if under_way > since else since  # NaN: none under way


@kernel
def _release_pending(
    state: np.ndarray,
    params: np.ndarray,
    out: np.ndarray,
    t_s: float,
    gyro_ok: bool,
    heel_ok: bool,
) -> None:
    """Report the pending events whose primary source stayed silent or failed."""
    for code in range(1, _N_CODES):
        if int(out[0]) >= outbox.MAX_EVENTS:
            return  # the rest waits for the next sample, dated as it was
        t_pending = state[_S_PENDING_T + code]
        if math.isnan(t_pending):
            continue
        waited = t_s - _wait_start(state, params, code, gyro_ok) >= params[_P_WAIT_S]
        if waited or not _healthy(_PRIMARY[code], gyro_ok, heel_ok):
            _report(state, params, out, code, t_pending)


@kernel
def _both_phase(
    state: np.ndarray, params: np.ndarray, t_s: float, g_phase: int, h_phase: int
) -> int:
    """Advance the fused phase machine (both sources healthy) by one sample."""
    phase = int(state[_S_PHASE])
    if phase == events.UNKNOWN:  # both were failed or one was used alone: start from the heel
        phase = h_phase
    if phase == events.LOADING and t_s - state[_S_T_HEEL_STRIKE] >= params[_P_LOADING_S]:
        phase = events.STANCE
    if phase == events.STANCE and g_phase == events.PRE_SWING:
        phase = events.PRE_SWING
    elif (
        phase == events.PRE_SWING
        and g_phase == events.STANCE
        and h_phase in (events.STANCE, events.LOADING)
    ):
        phase = events.STANCE
    state[_S_PHASE] = phase
    return phase


@kernel
def fused_step(
    state: np.ndarray,
    params: np.ndarray,
    t_s: float,
    gyro_rad_s: float,
    heel_level: float,
    out: np.ndarray,
) -> int:
    """Process one sample of both sensors; write the events into ``out`` (an emptied
    outbox) and return the phase."""
    g_phase, g_event, g_t = gyro.gyro_step(state[_S_GYRO:_S_HEEL], params[_P_GYRO:_P_HEEL],
                                           t_s, gyro_rad_s)
    h_phase, h_event, h_t = heel.heel_step(state[_S_HEEL:], params[_P_HEEL:], t_s, heel_level)
    if g_phase == events.UNKNOWN:
        g_event = events.NONE  # not locked on, or its mounting not yet confirmed
    if g_event != events.NONE:
        state[_S_GYRO_SILENCE] = 0.0
        if g_event == events.TOE_OFF:
            state[_S_GYRO_TOE_OFF] = g_t
        elif (
            g_event == events.HEEL_STRIKE
            and g_t - state[_S_GYRO_TOE_OFF] >= params[_P_MIN_SWING_S]
        ):
            state[_S_HEEL_SILENCE] += 1.0
    if h_event != events.NONE:
        state[_S_HEEL_SILENCE] = 0.0
        if h_event == events.HEEL_STRIKE:
            state[_S_GYRO_SILENCE] += 1.0
    silent = params[_P_SILENT_STRIDES]
    gyro_ok = g_phase != events.UNKNOWN and state[_S_GYRO_SILENCE] < silent
    heel_ok = h_phase != events.UNKNOWN and state[_S_HEEL_SILENCE] < silent
    if heel_ok and _impossible(g_event, h_phase, int(state[_S_PHASE])):
        g_event = events.NONE

    _route(state, params, out, t_s, _GYRO, g_event, g_t, gyro_ok, heel_ok)
    _route(state, params, out, t_s, _HEEL, h_event, h_t, gyro_ok, heel_ok)
    _release_pending(state, params, out, t_s, gyro_ok, heel_ok)

    if gyro_ok and heel_ok:
        return _both_phase(state, params, t_s, g_phase, h_phase)
    phase = g_phase if gyro_ok else (h_phase if heel_ok else events.UNKNOWN)
    state[_S_PHASE] = events.UNKNOWN  # the fused machine restarts when both are healthy again
    return phase


def gyro_state(state: np.ndarray) -> np.ndarray:
    """The gyroscope kernel's part of a fused state (a view)."""
    return state[_S_GYRO:_S_HEEL]


def gyro_params(params: np.ndarray) -> np.ndarray:
    """The gyroscope kernel's part of a fused parameter array (a view)."""
    return params[_P_GYRO:_P_HEEL]


def missing_limit_s(
    gyro_config: gyro.GyroDetectorConfig, heel_config: heel.HeelDetectorConfig
) -> float:
    """Shortest gap limit of the two sensors, in seconds."""
    return min(gyro.missing_limit_s(gyro_config), heel.missing_limit_s(heel_config))
