"""Walking mode: one channel's train per stride, started and ended by the gait.

Per stride a channel follows the envelope of clinical drop-foot stimulators (Odstock
ODFS, Bioness L300; DESIGN.md): a trigger starts the ramp up; the level holds until the
channel's stop event, which starts the extension (a set time longer at the same level,
against foot slap after heel strike); then the ramp down. Triggers are heel off (needs a
detector that reports it, e.g. from a heel switch), the gyro detector's entry into
pre-swing, detected toe off, mid swing, heel strike, or a predicted toe off
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
"""

from __future__ import annotations

import math

from controller.detect.events import Event, Phase
from controller.ports import StimCommand
from controller.stim.envelope import TIME_EPSILON_S, Envelope, Stage
from controller.stim.prediction import ToeOffPredictor
from controller.stim.settings import ChannelConfig

#: Triggers and stops that are a detector event.
_EVENT_OF = {
    "heel_off": Event.HEEL_OFF,
    "toe_off": Event.TOE_OFF,
    "mid_swing": Event.MID_SWING,
    "heel_strike": Event.HEEL_STRIKE,
}
#: Phases in which a predicted toe off may start a train (late stance).
_PREDICTION_PHASES = (Phase.STANCE, Phase.PRE_SWING)
#: Phases that confirm a predicted toe off is happening: the detector sees it coming
#: (pre-swing, some 50 ms before it) or past (swing), before it can date it.
_TOE_OFF_UNDER_WAY = (Phase.PRE_SWING, Phase.SWING)


class GaitChannel:
    """The walking-mode envelope of one channel, stepped once per sample."""

    def __init__(self, config: ChannelConfig, predictor: ToeOffPredictor) -> None:
        self.config = config
        self.envelope = Envelope(config)
        self.timeouts = 0
        self.unconfirmed = 0
        self.refused = 0
        self._predictor = predictor
        self._last_phase = Phase.UNKNOWN
        self._onset_s = 0.0
        self._used_prediction_s = math.nan  # the prediction that last started a train
        self._train_prediction_s = math.nan  # the toe off this train expects
        self._confirm_by_s = math.nan  # NaN unless this train awaits a detected toe off
        self._awaiting_swing = False  # a pre-swing start not yet followed by a swing

    def _event_trigger(self, trigger: str, phase: Phase, kinds: frozenset[Event]) -> bool:
        if trigger == "pre_swing":
            return phase == Phase.PRE_SWING and self._last_phase != Phase.PRE_SWING
        return trigger in _EVENT_OF and _EVENT_OF[trigger] in kinds

    def _prediction_due(self, t_s: float, phase: Phase) -> bool:
        """True once per prediction, from ``lead_ms`` before the predicted toe off."""
        cfg = self.config
        predicted_s = self._predictor.next_toe_off_s
        if math.isnan(predicted_s) or predicted_s == self._used_prediction_s:
            return False
        start_s = predicted_s - cfg.lead_ms / 1000.0
        stale_s = predicted_s + cfg.confirm_ms / 1000.0
        if phase not in _PREDICTION_PHASES or not start_s - TIME_EPSILON_S <= t_s <= stale_s:
            return False
        self._used_prediction_s = predicted_s
        return True

    def _trigger(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> str | None:
        """Why a train starts at ``t_s`` ("prediction" or the trigger's name), or None."""
        trigger: str = self.config.trigger
        if trigger == "predicted_toe_off":
            if self._prediction_due(t_s, phase):
                return "prediction"
            trigger = self.config.fallback_trigger
        return trigger if self._event_trigger(trigger, phase, kinds) else None

    def _rested(self, t_s: float) -> bool:
        """May a trigger start (or, during a ramp down, resume) a train at ``t_s``?

        Resuming keeps the train's onset, so it is refused once the train has run for
        its timeout: however often triggers come, no train outlasts timeout + ramp down.
        """
        cfg = self.config
        if self.envelope.stage == Stage.OFF:
            return t_s - self.envelope.ended_s >= cfg.min_off_ms / 1000.0 - TIME_EPSILON_S
        return cfg.min_off_ms == 0.0 and t_s - self._onset_s < cfg.timeout_ms / 1000.0

    def _start(self, t_s: float, why: str) -> None:
        if self.envelope.stage == Stage.OFF:
            self._onset_s = t_s
        # A fallback start may still end at a prediction, if one lies ahead.
        predicted_s = self._predictor.next_toe_off_s
        self._train_prediction_s = predicted_s if predicted_s >= t_s else math.nan
        self._confirm_by_s = math.nan
        self._awaiting_swing = why == "pre_swing"
        if why == "prediction":
            self._train_prediction_s = self._used_prediction_s
            self._confirm_by_s = self._used_prediction_s + self.config.confirm_ms / 1000.0
        self.envelope.start(t_s)

    def _stop_reached(self, t_s: float, kinds: frozenset[Event]) -> bool:
        stop = self.config.stop
        if stop == "predicted_toe_off":
            expected_s = self._train_prediction_s
            return Event.TOE_OFF in kinds or t_s >= expected_s - TIME_EPSILON_S
        return _EVENT_OF[stop] in kinds

    def _while_on(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> None:
        """Bounds and the stop event of a train that is up or holding."""
        env = self.envelope
        if t_s - self._onset_s >= self.config.timeout_ms / 1000.0 - TIME_EPSILON_S:
            self.timeouts += 1
            env.ramp_down(t_s)
        elif not math.isnan(self._confirm_by_s) and (
            Event.TOE_OFF in kinds or phase in _TOE_OFF_UNDER_WAY
        ):
            self._confirm_by_s = math.nan
        elif t_s >= self._confirm_by_s - TIME_EPSILON_S:
            self.unconfirmed += 1
            self._confirm_by_s = math.nan
            env.ramp_down(t_s)
        if self._awaiting_swing:
            self._check_swing_follows(t_s, phase, kinds)
        if env.rising_or_holding and self._stop_reached(t_s, kinds):
            env.extend(t_s)

    def _check_swing_follows(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> None:
        """End a pre-swing start that the detector takes back.

        A pre-swing that returns to stance without a toe off was no step (the onset of
        clonus or a spasm looks like a heel rise): the train ramps down at once instead of
        running to its timeout.
        """
        if Event.TOE_OFF in kinds or phase == Phase.SWING:
            self._awaiting_swing = False
        elif phase in (Phase.STANCE, Phase.LOADING):
            self._awaiting_swing = False
            self.unconfirmed += 1
            self.envelope.ramp_down(t_s)

    def step(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> StimCommand:
        """Advance to ``t_s`` given the detector's phase and the events now known."""
        env = self.envelope
        if phase == Phase.UNKNOWN:
            if env.stage in (Stage.RAMP_UP, Stage.HOLD, Stage.EXTENSION):
                env.ramp_down(t_s)
        elif env.stage in (Stage.OFF, Stage.RAMP_DOWN):
            why = self._trigger(t_s, phase, kinds)
            if why is not None and self._rested(t_s):
                self._start(t_s, why)
            elif why is not None:
                self.refused += 1
        elif env.stage in (Stage.RAMP_UP, Stage.HOLD, Stage.EXTENSION):
            self._while_on(t_s, phase, kinds)
        self._last_phase = phase
        env.advance(t_s)
        return env.command()
