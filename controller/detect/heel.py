"""Gait-phase detection from a heel switch or a heel force sensor: a causal state machine.

A heel switch (or a force sensor under the heel) tells one thing directly: whether the
heel is loaded. Heel strike is the moment it becomes loaded, heel off the moment it is
unloaded; clinical drop-foot stimulators have triggered on exactly these two edges for
decades (Liberson et al. 1961; Odstock ODFS; Bioness L300, see DESIGN.md). The detector
walks through

    LOADING -> STANCE -> PRE_SWING -> SWING -> LOADING

Rules, and the reason for each:

* Contact has hysteresis and a debounce. A force sensor is in contact at or above
  ``contact_force_n`` and released below ``release_force_n`` (a switch is simply 0 or
  1); a change counts once it has held for ``debounce_ms``, and it is dated at its first
  sample, so the debounce adds latency, not bias. Bounces shorter than the debounce
  within a change do not move its date (the first touch is the heel strike). Switch
  bounce and force noise around one threshold cannot produce a train of edges.
* A force sensor's contact level can follow the walker's own heel loading: with
  ``contact_peak_fraction`` set, contact is at that fraction of a running heel peak (a
  peak hold decaying with time constant ``heel_peak_memory_s``), never below
  ``contact_floor_n`` nor above ``contact_force_n``, and release at the same fraction
  of it as ``release_force_n`` is of ``contact_force_n``. A heel that loads normally
  (peak far above contact / fraction) is read at the fixed levels, exactly as without
  it; a heel that barely loads (a flat landing, a sensor beside the heel) is read at a
  level it reaches, down to the floor, which stays above what a dragged foot reads in
  swing. On the 10 gaitpdb feet that barely load, 0.35 / 12 N / 2 s (chosen on the Ga
  study) found 86.1 % of heel strikes instead of 59.7 % (docs/detection.md). Four numbers
  of state, no buffer; the peak's decay factor is computed again only when the sample
  period changes (an exponential every sample cost 5-11 ns more, on a kernel of 15-19).
* HEEL_OFF (-> PRE_SWING) needs a contact of at least ``min_contact_ms`` before it. In
  clonus the heel taps the ground 4-8 times a second (contacts of 60-120 ms), so only
  the first release after a real stance can open a pre-swing, never a train of them.
* The heel switch cannot see the toes leave the ground. TOE_OFF is dated
  ``toe_off_delay_stride_fraction`` of the walker's mean stride (heel strike to heel
  strike) after heel off, the duration of push-off in the same units as the stride; or,
  with ``toe_off_stance_fraction`` set, that fraction of the mean stride after the
  stride's heel strike (the stance) when that is later. The stance is the steadier
  of the two: on 165 gaitpdb walkers the heel releases 12-26 % of the stride before toe
  off (quartiles), while toe off falls at 62-69 % of the stride (quartiles; medians
  63.8 % on the controls, 66.4 % with Parkinson's disease: docs/detection.md); the delay
  after heel off remains the earliest date, for a heel that stays down longer than usual
  (a slow stride). Either way it becomes known only once the heel has stayed off for
  ``min_unloaded_ms`` as well: a shorter lift (clonus, a weight shift) returns to STANCE
  with no toe off and no heel strike. Until a stride has been measured,
  ``assumed_stride_ms`` stands in for it. A stance begun without a heel strike (at
  lock-on) has no start for the stance rule: its toe off is dated
  ``toe_off_lockon_stride_fraction`` of the stride after heel off (0.2, the old
  switch rule; the short delay alone put the simulated walkers' first toe off
  124-142 ms early). With ``toe_off_stance_waits_for_stride`` (the switch), so is every
  toe off before the first stride (heel strike to heel strike) has been measured: 65 %
  of the assumed stride after the first heel strike put the second toe off of the
  simulated walks 158 ms early to 136 ms late, where the fused detector reports it
  while the gyroscope's mounting check runs; from heel off it is within 30 ms. The force
  sensor keeps the stance rule from its first heel strike: waiting lowered its gaitpdb
  toe-off recall (Ga study 88.5 -> 88.3 %, unseen controls 95.6 -> 95.5 %, unseen PD
  90.8 -> 90.6 %; from 0.2 after heel off, 88.8, 95.1 and 90.7 %).
* A lift of at least ``min_unloaded_ms`` that ends before the toe off is due: once the
  walker's stride has been measured it is no step either (a heel raised in a turn or a
  stop; counting it as one added false steps on the gaitpdb walkers). Before that, the
  due date rests on the assumed stride, and the contact is a step: its toe off is
  reported by the contact's confirmation at the latest (the heel strike follows on the
  next sample), dated at the end of push-off (``toe_off_delay_stride_fraction`` after
  heel off) if that is earlier. A stride (heel strike to heel strike) that holds a lift
  taken for no step is not measured: it may hold two. Without these two rules, a gaitpdb
  heel read as a switch closing at 2 N (about what a real foot switch closes at) that
  opened less than 240 ms before landing, or closed briefly in mid-swing, made the first
  measured stride span two, and every other heel strike was then lost for the rest of
  the walk (SiCo12 right: 65 of 131 found, 127 with them; docs/detection.md).
* The mean stride corrects itself: a swing-long lift ending before the toe off is due,
  on a stride after one that held such a lift, is a step too, and the mean stride is
  measured again from it. A first measured stride that spans two (at 50-100 N a gaitpdb
  heel closes the switch for 50-150 ms on some steps, too short for a heel off) dated
  every toe off after the next landing, each landing was taken for no step, and the
  doubled mean stood for the whole walk (GaPt24_01 right at 50 N: 39 of 114 heel strikes
  found, 66 with it). A heel raised once in a stop or a turn is still no step.
* HEEL_STRIKE (-> LOADING) is the first contact after toe off; STANCE follows
  ``loading_time_ms`` later.
* A heel unloaded for longer than ``max_unloaded_ms`` is no walking: the switch failed
  open, or the leg is lifted. The phase becomes UNKNOWN (the stimulator is told) until
  the heel has been loaded again for ``lock_contact_ms``, which is also how the detector
  locks on at the start; a contact after a lift of at least ``min_unloaded_ms`` locks
  it on at once, as a heel strike. A switch that fails closed reads as standing: STANCE, no
  stimulation, which is safe; the fused detector notices it against the gyroscope.
* A missing sample (NaN) holds the phase for up to ``unknown_after_missing_ms``; a
  longer gap gives UNKNOWN and the detector must lock on again.

At most one event is reported per sample: a contact that completes its debounce on the
sample at which toe off becomes known is confirmed on the next sample, still dated at
its first sample. Like the gyroscope kernel, the kernel is numba-compiled and allocation
free, and all times are compared with the sample timestamps, so one configuration works
at any sample rate. ``HEEL_SWITCH`` and ``HEEL_FORCE`` are the configurations of the two
kinds of sensor.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from controller import events
from controller.detect.stride import stride_average
from controller.kernels import in_python, kernel, pack
from controller.validation import ConfigModel

HeelInput = Literal["switch", "force"]


class HeelDetectorConfig(ConfigModel):
    """Thresholds and times of the heel switch / heel force detector."""

    contact_force_n: float = Field(
        20.0, ge=0.5, le=2000.0,
        description="Heel force at or above this is contact (force sensor only).",
    )
    release_force_n: float = Field(
        10.0, ge=0.0, le=2000.0,
        description="Heel force below this is released (force sensor only; hysteresis).",
    )
    contact_peak_fraction: float = Field(
        0.0, ge=0.0, le=1.0,
        description="The contact level follows the heel: this fraction of the running heel "
        "peak, never below contact_floor_n nor above contact_force_n, release scaled with "
        "it (force sensor only; 0: fixed at contact_force_n).",
    )
    contact_floor_n: float = Field(
        12.0, ge=0.5, le=2000.0,
        description="Lowest contact level the heel peak can bring (force sensor only): "
        "above what the heel reads in swing; at or above contact_force_n the level is fixed.",
    )
    heel_peak_memory_s: float = Field(
        2.0, ge=0.1, le=60.0,
        description="Time constant of the running heel peak's decay (force sensor only; "
        "used when contact_peak_fraction is set).",
    )
    debounce_ms: float = Field(
        20.0, ge=0.0, le=200.0,
        description="A change of contact counts once it has lasted this long.",
    )
    min_contact_ms: float = Field(
        150.0, ge=0.0, le=1000.0,
        description="A heel off counts only after a contact at least this long.",
    )
    min_unloaded_ms: float = Field(
        200.0, ge=0.0, le=1000.0,
        description="Toe off becomes known only after the heel has been off this long; a "
        "shorter lift is not a step. Before the walker's first stride is measured, or "
        "when the stride before held a lift this long taken for no step, a contact after "
        "a lift this long is a step even if its toe off was not yet due.",
    )
    toe_off_delay_stride_fraction: float = Field(
        0.2, ge=0.0, le=0.5,
        description="Toe off is dated this fraction of the mean stride after heel off "
        "(at the earliest, when toe_off_stance_fraction is set).",
    )
    toe_off_stance_fraction: float = Field(
        0.0, ge=0.0, le=0.9,
        description="Toe off is dated this fraction of the mean stride after the stride's "
        "heel strike, never before heel off plus toe_off_delay_stride_fraction (0: from "
        "heel off only).",
    )
    toe_off_lockon_stride_fraction: float = Field(
        0.2, ge=0.0, le=0.5,
        description="With toe_off_stance_fraction set, a toe off whose stance began "
        "without a heel strike (at lock-on), or, with toe_off_stance_waits_for_stride, "
        "before the walker's first stride was measured, is dated this fraction of the "
        "mean stride (assumed_stride_ms until measured) after heel off.",
    )
    toe_off_stance_waits_for_stride: bool = Field(
        True,
        description="With toe_off_stance_fraction set, toe off is dated from heel strike "
        "only once a stride (heel strike to heel strike) has been measured; until then "
        "by toe_off_lockon_stride_fraction after heel off (false: from the first heel "
        "strike, on assumed_stride_ms).",
    )
    assumed_stride_ms: float = Field(
        1200.0, ge=500.0, le=3000.0,
        description="Stride time used before the walker's own has been measured.",
    )
    stride_average_strides: int = Field(
        4, ge=1, le=50,
        description="Memory of the running mean stride time, in strides.",
    )
    loading_time_ms: float = Field(
        120.0, ge=0.0, le=500.0,
        description="Duration of LOADING after heel strike.",
    )
    max_unloaded_ms: float = Field(
        1500.0, ge=300.0, le=5000.0,
        description="A heel off for longer than this makes the detector UNKNOWN.",
    )
    lock_contact_ms: float = Field(
        200.0, ge=0.0, le=2000.0,
        description="Continuous contact needed to lock on (at the start, after UNKNOWN).",
    )
    unknown_after_missing_ms: float = Field(
        100.0, ge=20.0, le=2000.0,
        description="Missing data for longer than this gives UNKNOWN.",
    )

    @field_validator("release_force_n")
    @classmethod
    def _hysteresis(cls, release_force_n: float, info: ValidationInfo) -> float:
        contact = info.data.get("contact_force_n")
        if contact is not None and release_force_n > contact:
            raise ValueError(
                f"release_force_n ({release_force_n:g}) must not exceed "
                f"contact_force_n ({contact:g})"
            )
        return release_force_n


#: A heel switch: open at heel rise, as in the simulated limb and clinical foot switches.
#: Toe off is dated from heel strike, as on the force sensor, at the stance fraction the
#: gaitpdb Ga study chooses for its heel force read as a switch closing at 20 N; the old
#: rule (20 % of the stride after heel off, kept for the toe offs after lock-on and
#: before the first measured stride) found 64-83 % of the unseen toe offs
#: (docs/detection.md).
HEEL_SWITCH = HeelDetectorConfig(toe_off_delay_stride_fraction=0.07,
                                 toe_off_stance_fraction=0.65)
#: A force sensor under the heel released at 10 N: toe off is dated from heel strike, at
#: the stance fraction chosen on the gaitpdb Ga study (docs/detection.md), at the earliest
#: the delay after heel off measured on one control, which also dates the toe off after
#: lock-on (0.2 there moves its gaitpdb rows by up to 0.4 points: kept as chosen); its
#: stance rule does not wait for a measured stride (waiting lowered its gaitpdb rows).
#: Its contact level follows the heel's own peak (0.35 of it, 12-20 N, release at half):
#: chosen on the Ga study for the feet that barely load the heel.
HEEL_FORCE = HeelDetectorConfig(toe_off_delay_stride_fraction=0.07,
                                toe_off_stance_fraction=0.64,
                                toe_off_lockon_stride_fraction=0.07,
                                toe_off_stance_waits_for_stride=False,
                                contact_peak_fraction=0.35)

# Slots of the parameter array (SI units).
PARAM_NAMES = (
    "contact_level",  # contact at or above this level (N, or 0.5 for a switch)
    "release_level",  # released below this level
    "peak_fraction",  # contact at this fraction of the running heel peak (0: fixed)
    "floor_level",  # the adaptive contact level's lowest value
    "peak_memory_s",  # time constant of the running peak's decay
    "debounce_s",
    "min_contact_s",
    "min_unloaded_s",
    "toe_off_fraction",  # toe off after heel off, fraction of the mean stride
    "stance_fraction",  # toe off after heel strike, fraction of the mean stride (0: off)
    "lockon_fraction",  # toe off after heel off when no heel strike began the stance
    "stance_waits",  # 1: the stance rule waits for a measured stride
    "assumed_stride_s",
    "average_weight",  # weight of a new stride in the running mean
    "loading_s",
    "max_unloaded_s",
    "lock_contact_s",
    "missing_s",
)
(
    _P_CONTACT,
    _P_RELEASE,
    _P_PEAK_FRACTION,
    _P_FLOOR,
    _P_PEAK_MEMORY_S,
    _P_DEBOUNCE_S,
    _P_MIN_CONTACT_S,
    _P_MIN_UNLOADED_S,
    _P_TO_FRACTION,
    _P_STANCE_FRACTION,
    _P_LOCKON_FRACTION,
    _P_STANCE_WAITS,
    _P_ASSUMED_STRIDE_S,
    _P_AVG_WEIGHT,
    _P_LOADING_S,
    _P_MAX_UNLOADED_S,
    _P_LOCK_CONTACT_S,
    _P_MISSING_S,
) = range(len(PARAM_NAMES))
N_PARAMS = len(PARAM_NAMES)

# Slots of the state array.
STATE_NAMES = (
    "phase",
    "locked",
    "contact",  # debounced contact, 0.0 or 1.0
    "t_pending",  # start of the current run of samples that differ (NaN: none)
    "t_first",  # first differing sample of the change under way, bounces included
    "t_last_diff",  # last differing sample
    "t_contact",  # time the current or last contact began
    "t_release",  # time the current or last release began (-inf: none seen)
    "t_last_hs",  # time of the last heel strike (-inf: none)
    "stride_average",  # running mean stride time (0: none measured)
    "t_toe_off_due",  # estimated toe off of the current pre-swing
    "t_last_good",
    "heel_peak",  # running heel peak (force sensor with an adaptive level)
    "t_heel_peak",  # time it was last updated (-inf: never)
    "peak_step_s",  # the last time step the peak decayed over
    "peak_step_decay",  # its decay factor (reused while the sample period holds)
    "lift_in_stride",  # since the last heel strike, a lift taken for no step: 1, 2 if swing-long
    "lift_in_last_stride",  # 1: the stride before held a swing-long one
)
(
    _S_PHASE,
    _S_LOCKED,
    _S_CONTACT,
    _S_T_PENDING,
    _S_T_FIRST,
    _S_T_LAST_DIFF,
    _S_T_CONTACT,
    _S_T_RELEASE,
    _S_T_LAST_HS,
    _S_STRIDE_AVERAGE,
    _S_T_TOE_OFF_DUE,
    _S_T_LAST_GOOD,
    _S_HEEL_PEAK,
    _S_T_HEEL_PEAK,
    _S_PEAK_STEP_S,
    _S_PEAK_STEP_DECAY,
    _S_LIFT_IN_STRIDE,
    _S_LIFT_IN_LAST_STRIDE,
) = range(len(STATE_NAMES))
#: Time steps this close share one decay factor: a fixed sample rate's timestamps differ
#: by one period up to rounding, so the exponential is computed once, not every sample.
_STEP_MATCH_S = 1e-9
N_STATE = len(STATE_NAMES)
#: Keeps a debounce of exactly n sample periods at n periods despite rounding.
_TIME_GUARD_S = 1e-6


def make_params(config: HeelDetectorConfig, heel_input: HeelInput) -> np.ndarray:
    """The kernel's parameter array: ``heel_input`` says whether the signal is a 0/1
    switch or a force in newtons."""
    c = config
    switch = heel_input == "switch"
    return pack(PARAM_NAMES, {
        "contact_level": 0.5 if switch else c.contact_force_n,
        "release_level": 0.5 if switch else c.release_force_n,
        "peak_fraction": 0.0 if switch else c.contact_peak_fraction,
        "floor_level": c.contact_floor_n,
        "peak_memory_s": c.heel_peak_memory_s,
        "debounce_s": c.debounce_ms / 1000.0,
        "min_contact_s": c.min_contact_ms / 1000.0,
        "min_unloaded_s": c.min_unloaded_ms / 1000.0,
        "toe_off_fraction": c.toe_off_delay_stride_fraction,
        "stance_fraction": c.toe_off_stance_fraction,
        "lockon_fraction": c.toe_off_lockon_stride_fraction,
        "stance_waits": 1.0 if c.toe_off_stance_waits_for_stride else 0.0,
        "assumed_stride_s": c.assumed_stride_ms / 1000.0,
        "average_weight": 1.0 / c.stride_average_strides,
        "loading_s": c.loading_time_ms / 1000.0,
        "max_unloaded_s": c.max_unloaded_ms / 1000.0,
        "lock_contact_s": c.lock_contact_ms / 1000.0,
        "missing_s": c.unknown_after_missing_ms / 1000.0,
    })


@kernel
def _restart(state: np.ndarray) -> None:
    """Forget the stride in progress and the lock; keep the mean stride time."""
    state[_S_PHASE] = events.STANCE
    state[_S_LOCKED] = 0.0
    state[_S_CONTACT] = 0.0
    state[_S_T_PENDING] = np.nan
    state[_S_T_FIRST] = np.nan
    state[_S_T_LAST_DIFF] = -np.inf
    state[_S_T_CONTACT] = np.inf
    state[_S_T_RELEASE] = -np.inf
    state[_S_T_LAST_HS] = -np.inf
    state[_S_T_TOE_OFF_DUE] = np.nan
    state[_S_LIFT_IN_STRIDE] = 0.0
    state[_S_LIFT_IN_LAST_STRIDE] = 0.0


def new_state() -> np.ndarray:
    """The state of a detector that has seen no sample (not locked on)."""
    state = np.zeros(N_STATE)
    in_python(_restart)(state)
    state[_S_T_LAST_GOOD] = -np.inf
    state[_S_T_HEEL_PEAK] = -np.inf
    state[_S_PEAK_STEP_S] = np.nan
    return state


@kernel
def contact_levels(
    state: np.ndarray, params: np.ndarray, t_s: float, level: float
) -> tuple[float, float]:
    """The contact and release levels for the sample ``level`` at ``t_s``: the fixed
    ones, or, with a peak fraction, that fraction of the running heel peak (updated
    here) between the floor and the fixed contact level, release scaled with it."""
    contact = params[_P_CONTACT]
    fraction = params[_P_PEAK_FRACTION]
    if fraction == 0.0:
        return contact, params[_P_RELEASE]
    step_s = t_s - state[_S_T_HEEL_PEAK]
    if not abs(step_s - state[_S_PEAK_STEP_S]) <= _STEP_MATCH_S:
        state[_S_PEAK_STEP_S] = step_s
        state[_S_PEAK_STEP_DECAY] = math.exp(-step_s / params[_P_PEAK_MEMORY_S])
    peak = max(level, state[_S_HEEL_PEAK] * state[_S_PEAK_STEP_DECAY])
    state[_S_HEEL_PEAK] = peak
    state[_S_T_HEEL_PEAK] = t_s
    adaptive = min(contact, max(params[_P_FLOOR], fraction * peak))
    return adaptive, params[_P_RELEASE] * adaptive / contact


@kernel
def _track(state: np.ndarray, params: np.ndarray, t_s: float, level: float) -> None:
    """Note where a change of contact (with hysteresis) starts, is interrupted, resumes."""
    contact, release = contact_levels(state, params, t_s, level)
    differs = level < release if state[_S_CONTACT] == 1.0 else level >= contact
    if not differs:
        state[_S_T_PENDING] = np.nan
        return
    if math.isnan(state[_S_T_PENDING]):
        state[_S_T_PENDING] = t_s
        if t_s - state[_S_T_LAST_DIFF] > params[_P_DEBOUNCE_S] + _TIME_GUARD_S:
            state[_S_T_FIRST] = t_s  # not a bounce of a change under way: a new one
    state[_S_T_LAST_DIFF] = t_s


@kernel
def _debounced(state: np.ndarray, params: np.ndarray, t_s: float) -> bool:
    """Whether a change is pending and has held for the debounce time at ``t_s``."""
    t_run = state[_S_T_PENDING]
    return not math.isnan(t_run) and t_s - t_run >= params[_P_DEBOUNCE_S] - _TIME_GUARD_S


@kernel
def _confirmed(state: np.ndarray, params: np.ndarray, t_s: float) -> float:
    """If a pending change has held for the debounce time, apply it; return its first
    sample's time (NaN when nothing changed)."""
    if not _debounced(state, params, t_s):
        return np.nan
    t_change = state[_S_T_FIRST]
    state[_S_T_PENDING] = np.nan
    state[_S_T_LAST_DIFF] = -np.inf
    if state[_S_CONTACT] == 1.0:
        state[_S_CONTACT] = 0.0
        state[_S_T_RELEASE] = t_change
    else:
        state[_S_CONTACT] = 1.0
        state[_S_T_CONTACT] = t_change
    return t_change


@kernel
def _stride_s(state: np.ndarray, params: np.ndarray) -> float:
    """The walker's mean stride, or the assumed one before any was measured."""
    average = state[_S_STRIDE_AVERAGE]
    return average if average > 0.0 else params[_P_ASSUMED_STRIDE_S]


@kernel
def _heel_strike(state: np.ndarray, params: np.ndarray, t_change: float) -> None:
    """Enter LOADING at a heel strike and feed the stride time into the average, unless
    a lift in it was taken for no step (the stride may hold two)."""
    if state[_S_LIFT_IN_STRIDE] == 0.0:
        state[_S_STRIDE_AVERAGE] = stride_average(
            state[_S_STRIDE_AVERAGE], t_change - state[_S_T_LAST_HS], params[_P_AVG_WEIGHT]
        )
    state[_S_LIFT_IN_LAST_STRIDE] = 1.0 if state[_S_LIFT_IN_STRIDE] == 2.0 else 0.0
    state[_S_LIFT_IN_STRIDE] = 0.0
    state[_S_T_LAST_HS] = t_change
    state[_S_PHASE] = events.LOADING


@kernel
def _timers(state: np.ndarray, params: np.ndarray, t_s: float) -> tuple[int, float]:
    """Events and phase changes that time alone brings: toe off, end of loading; and the
    toe off a landing before its due date reveals (before the first measured stride, or
    when the stride before also held a lift taken for no step: the mean stride is then
    wrong, and is measured again from this step)."""
    phase = int(state[_S_PHASE])
    if phase == events.LOADING and t_s - state[_S_T_LAST_HS] >= params[_P_LOADING_S]:
        state[_S_PHASE] = events.STANCE
    elif phase == events.PRE_SWING:
        t_release = state[_S_T_RELEASE]
        pending = not math.isnan(state[_S_T_PENDING])  # a contact under way
        # Before a stride is measured, or when the stride before also held a swing-long
        # lift taken for no step, a contact after a swing-long lift is a step.
        doubted = (state[_S_STRIDE_AVERAGE] == 0.0
                   or state[_S_LIFT_IN_LAST_STRIDE] == 1.0)
        landing = (pending and doubted
                   and state[_S_T_FIRST] - t_release >= params[_P_MIN_UNLOADED_S])
        if (landing and _debounced(state, params, t_s)) or t_s >= max(
            state[_S_T_TOE_OFF_DUE], t_release + params[_P_MIN_UNLOADED_S]
        ):
            t_toe_off = state[_S_T_TOE_OFF_DUE]
            if pending:
                t_toe_off = min(t_toe_off, state[_S_T_FIRST])
            if landing:  # the toes left before it: at the end of push-off at the latest
                t_toe_off = min(
                    t_toe_off, t_release + params[_P_TO_FRACTION] * _stride_s(state, params)
                )
                state[_S_STRIDE_AVERAGE] = 0.0  # this stride restarts the mean
            state[_S_PHASE] = events.SWING
            return events.TOE_OFF, t_toe_off
    return events.NONE, np.nan


@kernel
def _toe_off_due(state: np.ndarray, params: np.ndarray, t_heel_off: float) -> float:
    """When the toe off of a pre-swing that began at ``t_heel_off`` is dated: the delay
    fraction after heel off; or, when the stance fraction is set, that fraction after
    the stance's heel strike if that is later. A stance begun without one (at lock-on),
    or, when the stance rule waits for a stride, before any stride was measured, is
    dated the lock-on fraction after heel off: the stance rule has no start to count
    from, or only the assumed stride to scale it by, and the short delay alone would
    date it early."""
    stride_s = _stride_s(state, params)
    t_push_off = t_heel_off + params[_P_TO_FRACTION] * stride_s
    if params[_P_STANCE_FRACTION] == 0.0:
        return t_push_off
    t_strike = state[_S_T_LAST_HS]
    unmeasured = params[_P_STANCE_WAITS] == 1.0 and state[_S_STRIDE_AVERAGE] == 0.0
    if t_strike == -np.inf or unmeasured:
        return t_heel_off + params[_P_LOCKON_FRACTION] * stride_s
    return max(t_push_off, t_strike + params[_P_STANCE_FRACTION] * stride_s)


@kernel
def _edge(state: np.ndarray, params: np.ndarray, t_change: float) -> tuple[int, float]:
    """A confirmed change of contact at ``t_change``: heel strike, heel off or neither."""
    phase = int(state[_S_PHASE])
    if state[_S_CONTACT] == 1.0:
        if phase == events.SWING:
            _heel_strike(state, params, t_change)
            return events.HEEL_STRIKE, t_change
        if phase == events.PRE_SWING:
            state[_S_PHASE] = events.STANCE  # a lift too short to be a step
            swing_long = t_change - state[_S_T_RELEASE] >= params[_P_MIN_UNLOADED_S]
            state[_S_LIFT_IN_STRIDE] = max(state[_S_LIFT_IN_STRIDE], 2.0 if swing_long else 1.0)
        return events.NONE, np.nan
    contact_s = t_change - state[_S_T_CONTACT]
    if phase in (events.STANCE, events.LOADING) and contact_s >= params[_P_MIN_CONTACT_S]:
        state[_S_PHASE] = events.PRE_SWING
        state[_S_T_TOE_OFF_DUE] = _toe_off_due(state, params, t_change)
        return events.HEEL_OFF, t_change
    return events.NONE, np.nan


@kernel
def _lock(state: np.ndarray, params: np.ndarray, t_s: float) -> tuple[int, int, float]:
    """Not locked on: follow the contact until it can be trusted."""
    t_change = _confirmed(state, params, t_s)
    if state[_S_CONTACT] == 0.0:
        return events.UNKNOWN, events.NONE, np.nan
    released = state[_S_T_RELEASE] > -np.inf  # a lift was seen, not just the start
    if released and t_change - state[_S_T_RELEASE] >= params[_P_MIN_UNLOADED_S]:
        state[_S_LOCKED] = 1.0  # contact after a lift as long as a swing: a heel strike
        _heel_strike(state, params, t_change)
        return events.LOADING, events.HEEL_STRIKE, t_change
    if t_s - state[_S_T_CONTACT] >= params[_P_LOCK_CONTACT_S]:
        state[_S_LOCKED] = 1.0
        state[_S_PHASE] = events.STANCE
        return events.STANCE, events.NONE, np.nan
    return events.UNKNOWN, events.NONE, np.nan


@kernel
def heel_step(
    state: np.ndarray, params: np.ndarray, t_s: float, level: float
) -> tuple[int, int, float]:
    """Process one heel sample (switch 0/1 or force in N, NaN = lost); return (phase,
    event code, estimated event time), as ``gyro_step`` does."""
    gap_too_long = t_s - state[_S_T_LAST_GOOD] > params[_P_MISSING_S]
    if math.isnan(level):
        if gap_too_long:
            _restart(state)
            return events.UNKNOWN, events.NONE, np.nan
        phase = int(state[_S_PHASE]) if state[_S_LOCKED] == 1.0 else events.UNKNOWN
        return phase, events.NONE, np.nan
    if gap_too_long:
        _restart(state)
    state[_S_T_LAST_GOOD] = t_s

    _track(state, params, t_s, level)
    if state[_S_LOCKED] == 0.0:
        return _lock(state, params, t_s)

    event, t_event = _timers(state, params, t_s)
    if event == events.NONE:
        t_change = _confirmed(state, params, t_s)
        if not math.isnan(t_change):
            event, t_event = _edge(state, params, t_change)
    if state[_S_CONTACT] == 0.0 and t_s - state[_S_T_RELEASE] > params[_P_MAX_UNLOADED_S]:
        _restart(state)
        return events.UNKNOWN, events.NONE, np.nan
    return int(state[_S_PHASE]), event, t_event


def adaptive_floor_n(config: HeelDetectorConfig) -> float | None:
    """The lowest contact force a force sensor read with ``config`` is taken at (the
    floor of a level that follows the heel), or None when the level is fixed at
    ``contact_force_n``."""
    if config.contact_peak_fraction > 0.0 and config.contact_floor_n < config.contact_force_n:
        return config.contact_floor_n
    return None


def missing_limit_s(config: HeelDetectorConfig) -> float:
    """Longest gap in the data that holds the phase, in seconds."""
    return config.unknown_after_missing_ms / 1000.0
