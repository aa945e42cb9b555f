"""Training and test mode: trains timed by the clock, not by the gait.

Training (the "exercise" mode of the Odstock ODFS Pace and of the WalkAide) strengthens
the muscle while seated: every enabled channel ramps up, holds for ``on_ms``, ramps down
and rests for ``off_ms``, over and over. Test mode is the ODFS test button: a single
burst on one channel, so that a bench engineer or clinician can set the amplitude while
watching the muscle. Gait phase and events are ignored in both (the patient is not
walking); the continuous on-time of a cycle is checked against the safety limit when the
config is loaded instead of being cut by the walking timeout.
"""

from __future__ import annotations

import math

from controller.detect.events import Event, Phase
from controller.ports import StimCommand
from controller.stim.envelope import TIME_EPSILON_S, Envelope, Stage
from controller.stim.settings import ChannelConfig


class TimedChannel:
    """Trains at fixed times: from ``start_ms``, ``on_ms`` at full level per train, then
    ``off_ms`` of rest before the next (``off_ms=None``: a single train)."""

    timeouts = 0
    unconfirmed = 0
    refused = 0

    def __init__(
        self, config: ChannelConfig, start_ms: float, on_ms: float, off_ms: float | None
    ) -> None:
        self.config = config
        self.envelope = Envelope(config)
        self._next_start_s = start_ms / 1000.0
        self._hold_s = (config.ramp_up_ms + on_ms) / 1000.0
        self._cycle_s = (
            math.inf
            if off_ms is None
            else self._hold_s + (config.ramp_down_ms + off_ms) / 1000.0
        )
        self._release_s = math.inf

    def step(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> StimCommand:
        """Advance to ``t_s``; ``phase`` and ``kinds`` are ignored."""
        env = self.envelope
        if env.stage == Stage.OFF and t_s >= self._next_start_s - TIME_EPSILON_S:
            env.start(t_s)
            self._release_s = self._next_start_s + self._hold_s
            self._next_start_s += self._cycle_s
        elif env.rising_or_holding and t_s >= self._release_s - TIME_EPSILON_S:
            env.ramp_down(t_s)
        env.advance(t_s)
        return env.command()
