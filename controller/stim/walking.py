"""Walking mode: one channel's train per stride, started and ended by the gait.

Per stride a channel follows the envelope of clinical drop-foot stimulators (Odstock
ODFS, Bioness L300; DESIGN.md): a trigger starts the ramp up; the level holds until the
channel's stop event, which starts the extension (a set time longer at the same level,
against foot slap after heel strike); then the ramp down. Triggers are heel off (needs a
detector that reports it, e.g. from a heel switch), the gyro detector's entry into
pre-swing (or into a swing that had none: a first step from standing has no push-off, and
the detector reports its swing once it has lasted longer than a beat of clonus), detected
toe off, mid swing, heel strike, or a predicted toe off
(``controller.stim.prediction``) minus a lead, so that the muscle is already contracting
when the foot leaves the ground.

Bounds, each for a reason:

* timeout: a train ends ``timeout_ms`` after its onset if no stop event came (the
  detector lost the walker);
* an UNKNOWN gait phase ramps down at once, and nothing starts a train while it lasts;
* a train started on a prediction ramps down unless, by ``confirm_ms`` after the
  predicted toe off, the detector has seen the toe off coming (pre-swing), happen
  (swing) or detected it: otherwise the walker has stopped and no toe off is coming;
* ``min_off_ms``: a trigger that comes sooner after the previous train ended is refused
  (muscle rest; a chattering detector cannot retrigger at will). With 0, a trigger
  during a ramp down ramps up again from the present level, as the same train (its
  timeout still counts from the first onset).

``walking_step`` is a kernel on one channel's parameter and state rows: the envelope's
columns (``controller.stim.envelope``), then this module's. The events are the outbox of
the detector (``controller.detect.outbox``).
"""

from __future__ import annotations

import math

import numpy as np

from controller import events as ev
from controller.kernels import kernel, pack
from controller.stim import envelope
from controller.stim.envelope import TIME_EPSILON_S
from controller.stim.settings import ChannelConfig

# Trigger and stop codes in the parameter row. A trigger or stop that is a detector
# event carries that event's code (``controller.events``); the others follow.
NO_TRIGGER = ev.NONE  # a fallback trigger of "none"
PRE_SWING_ENTRY = 5  # the detector's phase enters pre-swing (or a swing that had none)
PREDICTED_TOE_OFF = 6  # the lead before (trigger), or the time of (stop), a prediction
TRIGGER_CODES = {
    "none": NO_TRIGGER,
    "heel_strike": ev.HEEL_STRIKE,
    "heel_off": ev.HEEL_OFF,
    "toe_off": ev.TOE_OFF,
    "mid_swing": ev.MID_SWING,
    "pre_swing": PRE_SWING_ENTRY,
    "predicted_toe_off": PREDICTED_TOE_OFF,
}

# Parameter row: the envelope's columns, then these.
PARAM_NAMES = (
    "trigger",
    "fallback_trigger",
    "stop",
    "lead_s",
    "confirm_s",
    "timeout_s",
    "min_off_s",
)
(
    P_TRIGGER,
    P_FALLBACK_TRIGGER,
    P_STOP,
    P_LEAD_S,
    P_CONFIRM_S,
    P_TIMEOUT_S,
    P_MIN_OFF_S,
) = range(envelope.PARAMS_SIZE, envelope.PARAMS_SIZE + len(PARAM_NAMES))
PARAMS_SIZE = envelope.PARAMS_SIZE + len(PARAM_NAMES)

# State row: the envelope's columns, then these.
STATE_NAMES = (
    "timeouts",  # trains the timeout ended
    "unconfirmed",  # trains ended because the toe off they expected never came
    "refused",  # triggers refused for the minimum off-time
    "last_phase",
    "onset_s",
    "used_prediction_s",  # the prediction that last started a train
    "train_prediction_s",  # the toe off this train expects
    "confirm_by_s",  # NaN unless this train awaits a detected toe off
    "awaiting_swing",  # 1: a pre-swing start not yet followed by a swing
)
(
    S_TIMEOUTS,
    S_UNCONFIRMED,
    S_REFUSED,
    S_LAST_PHASE,
    S_ONSET_S,
    S_USED_PREDICTION_S,
    S_TRAIN_PREDICTION_S,
    S_CONFIRM_BY_S,
    S_AWAITING_SWING,
) = range(envelope.STATE_SIZE, envelope.STATE_SIZE + len(STATE_NAMES))
STATE_SIZE = envelope.STATE_SIZE + len(STATE_NAMES)

def make_params(config: ChannelConfig) -> np.ndarray:
    """A walking-mode channel's parameter row, from ``config``."""
    own = pack(PARAM_NAMES, {
        "trigger": TRIGGER_CODES[config.trigger],
        "fallback_trigger": TRIGGER_CODES[config.fallback_trigger],
        "stop": TRIGGER_CODES[config.stop],
        "lead_s": config.lead_ms / 1000.0,
        "confirm_s": config.confirm_ms / 1000.0,
        "timeout_s": config.timeout_ms / 1000.0,
        "min_off_s": config.min_off_ms / 1000.0,
    })
    return np.concatenate([envelope.make_params(config), own])


def init_state(s: np.ndarray) -> None:
    """A walking-mode channel before the first sample."""
    envelope.init_state(s)
    s[S_TIMEOUTS] = 0.0
    s[S_UNCONFIRMED] = 0.0
    s[S_REFUSED] = 0.0
    s[S_LAST_PHASE] = ev.UNKNOWN
    s[S_ONSET_S] = 0.0
    s[S_USED_PREDICTION_S] = math.nan
    s[S_TRAIN_PREDICTION_S] = math.nan
    s[S_CONFIRM_BY_S] = math.nan
    s[S_AWAITING_SWING] = 0.0


@kernel
def has_event(events: np.ndarray, code: int) -> bool:
    """Whether the outbox ``events`` holds an event of ``code`` (never NONE)."""
    count = int(events[0])
    k = 0
    while k < count and events[1 + 2 * k] != code:
        k += 1
    return code != ev.NONE and k < count


@kernel
def _event_trigger(s: np.ndarray, trigger: int, phase: int, events: np.ndarray) -> bool:
    if trigger == PRE_SWING_ENTRY:
        last = s[S_LAST_PHASE]
        if phase == ev.PRE_SWING:
            return last != ev.PRE_SWING
        # A swing without a pre-swing (a first step from standing): as soon as it counts.
        return phase == ev.SWING and (last == ev.STANCE or last == ev.LOADING)
    return has_event(events, trigger)


@kernel
def _prediction_due(
    p: np.ndarray, s: np.ndarray, t_s: float, phase: int, predicted_s: float
) -> bool:
    """True once per prediction, from ``lead_ms`` before the predicted toe off, in late
    stance (stance or pre-swing)."""
    if math.isnan(predicted_s) or predicted_s == s[S_USED_PREDICTION_S]:
        return False
    start_s = predicted_s - p[P_LEAD_S]
    stale_s = predicted_s + p[P_CONFIRM_S]
    if phase != ev.STANCE and phase != ev.PRE_SWING:
        return False
    if not start_s - TIME_EPSILON_S <= t_s <= stale_s:
        return False
    s[S_USED_PREDICTION_S] = predicted_s
    return True


@kernel
def _trigger(
    p: np.ndarray, s: np.ndarray, t_s: float, phase: int, events: np.ndarray,
    predicted_s: float,
) -> int:
    """Why a train starts at ``t_s`` (``PREDICTED_TOE_OFF`` or the trigger's code), or
    ``NO_TRIGGER``."""
    trigger = int(p[P_TRIGGER])
    if trigger == PREDICTED_TOE_OFF:
        if _prediction_due(p, s, t_s, phase, predicted_s):
            return PREDICTED_TOE_OFF
        trigger = int(p[P_FALLBACK_TRIGGER])
    return trigger if _event_trigger(s, trigger, phase, events) else NO_TRIGGER


@kernel
def _rested(p: np.ndarray, s: np.ndarray, t_s: float) -> bool:
    """May a trigger start (or, during a ramp down, resume) a train at ``t_s``?

    Resuming keeps the train's onset, so it is refused once the train has run for
    its timeout: however often triggers come, no train outlasts timeout + ramp down.
    """
    if s[envelope.S_STAGE] == envelope.OFF:
        return t_s - s[envelope.S_ENDED_S] >= p[P_MIN_OFF_S] - TIME_EPSILON_S
    return p[P_MIN_OFF_S] == 0.0 and t_s - s[S_ONSET_S] < p[P_TIMEOUT_S]


@kernel
def _start(p: np.ndarray, s: np.ndarray, t_s: float, why: int, predicted_s: float) -> None:
    if s[envelope.S_STAGE] == envelope.OFF:
        s[S_ONSET_S] = t_s
    # A fallback start may still end at a prediction, if one lies ahead.
    s[S_TRAIN_PREDICTION_S] = predicted_s if predicted_s >= t_s else math.nan
    s[S_CONFIRM_BY_S] = math.nan
    s[S_AWAITING_SWING] = 1.0 if why == PRE_SWING_ENTRY else 0.0
    if why == PREDICTED_TOE_OFF:
        s[S_TRAIN_PREDICTION_S] = s[S_USED_PREDICTION_S]
        s[S_CONFIRM_BY_S] = s[S_USED_PREDICTION_S] + p[P_CONFIRM_S]
    envelope.start(s, t_s)


@kernel
def _stop_reached(p: np.ndarray, s: np.ndarray, t_s: float, events: np.ndarray) -> bool:
    stop = int(p[P_STOP])
    if stop == PREDICTED_TOE_OFF:
        expected_s = s[S_TRAIN_PREDICTION_S]
        return has_event(events, ev.TOE_OFF) or t_s >= expected_s - TIME_EPSILON_S
    return has_event(events, stop)


@kernel
def _check_swing_follows(s: np.ndarray, t_s: float, phase: int, events: np.ndarray) -> None:
    """End a pre-swing start that the detector takes back.

    A pre-swing that returns to stance without a toe off was no step (the onset of
    clonus or a spasm looks like a heel rise): the train ramps down at once instead of
    running to its timeout.
    """
    if has_event(events, ev.TOE_OFF) or phase == ev.SWING:
        s[S_AWAITING_SWING] = 0.0
    elif phase == ev.STANCE or phase == ev.LOADING:
        s[S_AWAITING_SWING] = 0.0
        s[S_UNCONFIRMED] += 1.0
        envelope.ramp_down(s, t_s)


@kernel
def _while_on(p: np.ndarray, s: np.ndarray, t_s: float, phase: int, events: np.ndarray) -> None:
    """Bounds and the stop event of a train that is up or holding.

    A train on a prediction is confirmed by the detector seeing the toe off coming
    (pre-swing, some 50 ms before it) or past (swing), before it can date it.
    """
    if t_s - s[S_ONSET_S] >= p[P_TIMEOUT_S] - TIME_EPSILON_S:
        s[S_TIMEOUTS] += 1.0
        envelope.ramp_down(s, t_s)
    elif not math.isnan(s[S_CONFIRM_BY_S]) and (
        has_event(events, ev.TOE_OFF) or phase == ev.PRE_SWING or phase == ev.SWING
    ):
        s[S_CONFIRM_BY_S] = math.nan
    elif t_s >= s[S_CONFIRM_BY_S] - TIME_EPSILON_S:
        s[S_UNCONFIRMED] += 1.0
        s[S_CONFIRM_BY_S] = math.nan
        envelope.ramp_down(s, t_s)
    if s[S_AWAITING_SWING] != 0.0:
        _check_swing_follows(s, t_s, phase, events)
    if envelope.rising_or_holding(s) and _stop_reached(p, s, t_s, events):
        envelope.extend(s, t_s)


@kernel
def walking_step(
    p: np.ndarray, s: np.ndarray, t_s: float, phase: int, events: np.ndarray,
    predicted_s: float,
) -> None:
    """Advance a channel to ``t_s`` given the detector's phase, the events now known and
    the predicted next toe off (NaN: none)."""
    if phase == ev.UNKNOWN:
        if envelope.stimulating(s):
            envelope.ramp_down(s, t_s)
    elif not envelope.stimulating(s):
        why = _trigger(p, s, t_s, phase, events, predicted_s)
        if why != NO_TRIGGER and _rested(p, s, t_s):
            _start(p, s, t_s, why, predicted_s)
        elif why != NO_TRIGGER:
            s[S_REFUSED] += 1.0
    else:
        _while_on(p, s, t_s, phase, events)
    s[S_LAST_PHASE] = phase
    envelope.advance(p, s, t_s)
