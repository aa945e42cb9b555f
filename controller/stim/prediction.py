"""Predicting the next toe off from the walker's recent stride times.

A detector confirms toe off only once the shank swings forward, about 100 ms after the
foot has left the ground, and the muscle then needs its electromechanical delay and
activation time (tens of ms each, DESIGN.md) before it lifts the foot. Stimulation timed
by the detected toe off is therefore late for the very moment it is needed. Gait is
periodic, so the next toe off is predicted as the last one plus the walker's stride time,
and a channel can start a set lead before it: the stride-time approach of Breen et al.
(IFESS 2003), who timed each stride's stimulus from the previous stride time, and of the
gait-cycle index of Azevedo Coste et al. 2014 (J NeuroEng Rehabil 11:118).

The stride time is the median of the last ``history_strides`` intervals between toe
offs, dated at the detector's estimate of when each toe off happened (not when it was
confirmed), so a single missed or spurious toe off does not shift it; a gap longer than
``max_stride_ms`` is a pause and restarts the history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from controller.detect.events import DetectedEvent, Event
from controller.stim.settings import PredictionConfig


def event_kind(event: Event | DetectedEvent) -> Event:
    """The kind of an event given bare or with its times."""
    return event.event if isinstance(event, DetectedEvent) else event


def event_time_s(event: Event | DetectedEvent, t_s: float) -> float:
    """When an event happened: the detector's estimate, or ``t_s`` for a bare event."""
    return event.t_est_s if isinstance(event, DetectedEvent) else t_s


class ToeOffPredictor:
    """The walker's next toe off, from the toe offs detected so far."""

    def __init__(self, config: PredictionConfig) -> None:
        self.config = config
        self._strides_s: deque[float] = deque(maxlen=config.history_strides)
        self._last_toe_off_s = math.nan
        self.stride_s = math.nan
        """The walker's stride time (median of the history), NaN until known."""
        self.next_toe_off_s = math.nan
        """Predicted time of the next toe off; NaN while there is no prediction."""

    def observe(self, t_s: float, events: Sequence[Event | DetectedEvent]) -> None:
        """Take in the events that became known at ``t_s``."""
        for event in events:
            if event_kind(event) != Event.TOE_OFF:
                continue
            toe_off_s = event_time_s(event, t_s)
            interval_s = toe_off_s - self._last_toe_off_s
            if interval_s > self.config.max_stride_ms / 1000.0:
                self._strides_s.clear()
            elif interval_s > 0.0:
                self._strides_s.append(interval_s)
            self._last_toe_off_s = toe_off_s
            self.stride_s = (
                float(np.median(self._strides_s))
                if len(self._strides_s) >= self.config.min_strides
                else math.nan
            )
            self.next_toe_off_s = self._last_toe_off_s + self.stride_s
