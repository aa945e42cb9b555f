"""The envelope of one stimulation train: ramp up, hold, extension, ramp down.

Every mode drives the same envelope; only what moves it from stage to stage differs
(gait events in walking mode, timers in training and test mode). The level is a fraction
0..1 of the channel's set pulse; a ramp scales either the amplitude or the pulse width
(``ChannelConfig.ramp_parameter``). Odstock's ODFS sets its output level with pulse
width, most other devices with current; both grade the charge per pulse, and a gradual
rise avoids the calf stretch reflex a sudden contraction can provoke (DESIGN.md).
"""

from __future__ import annotations

import math
from enum import IntEnum

from controller.ports import StimCommand
from controller.stim.settings import ChannelConfig

#: A stage counts as complete within a nanosecond of its end, so that rounding in sample
#: times cannot leave a ramp at 1e-14 mA for one more sample.
TIME_EPSILON_S = 1e-9


class Stage(IntEnum):
    """Where a channel is in its envelope."""

    OFF = 0
    RAMP_UP = 1
    HOLD = 2
    EXTENSION = 3
    RAMP_DOWN = 4


class Envelope:
    """Stage and level of one channel's train, advanced once per sample.

    ``start``, ``extend`` and ``ramp_down`` move the stage at time ``t_s``; ``advance``
    then moves the level along the stage's ramp or timer to ``t_s``, and ``command``
    is the pulse that level asks for.
    """

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.stage = Stage.OFF
        self.level = 0.0
        self.ended_s = -math.inf  # when the last train reached zero
        self._stage_start_s = 0.0
        self._stage_start_level = 0.0

    @property
    def rising_or_holding(self) -> bool:
        """Ramping up or at the set level: a stop event may start the extension."""
        return self.stage in (Stage.RAMP_UP, Stage.HOLD)

    def _enter(self, stage: Stage, t_s: float) -> None:
        self.stage = stage
        self._stage_start_s = t_s
        self._stage_start_level = self.level

    def start(self, t_s: float) -> None:
        """Ramp up from the present level (zero, or part-way down a ramp)."""
        self._enter(Stage.RAMP_UP, t_s)

    def extend(self, t_s: float) -> None:
        """Hold the present level for ``extension_ms``, then ramp down."""
        self._enter(Stage.EXTENSION, t_s)

    def ramp_down(self, t_s: float) -> None:
        """Ramp down to zero from the present level, now."""
        self._enter(Stage.RAMP_DOWN, t_s)

    def _progress(self, t_s: float, duration_ms: float) -> float:
        """Fraction 0..1 of a stage of ``duration_ms`` elapsed at ``t_s``."""
        elapsed_s = t_s - self._stage_start_s
        duration_s = duration_ms / 1000.0
        if elapsed_s >= duration_s - TIME_EPSILON_S:
            return 1.0
        return elapsed_s / duration_s

    def advance(self, t_s: float) -> None:
        """Move the level along the current stage's ramp or timer to ``t_s``."""
        cfg = self.config
        start = self._stage_start_level
        if self.stage == Stage.RAMP_UP:
            self.level = start + (1.0 - start) * self._progress(t_s, cfg.ramp_up_ms)
            if self.level >= 1.0:
                self._enter(Stage.HOLD, t_s)
        elif self.stage == Stage.EXTENSION and self._progress(t_s, cfg.extension_ms) >= 1.0:
            self._enter(Stage.RAMP_DOWN, t_s)
            self.advance(t_s)
        elif self.stage == Stage.RAMP_DOWN:
            self.level = start * (1.0 - self._progress(t_s, cfg.ramp_down_ms))
            if self.level <= 0.0:
                self._enter(Stage.OFF, t_s)
                self.ended_s = t_s

    def command(self) -> StimCommand:
        """The command for the present level: "off" at zero."""
        cfg = self.config
        if self.level <= 0.0:
            return StimCommand.off(cfg.channel)
        amplitude_ma, pulse_width_us = cfg.amplitude_ma, cfg.pulse_width_us
        if cfg.ramp_parameter == "amplitude":
            amplitude_ma *= self.level
        else:
            pulse_width_us *= self.level
        return StimCommand(
            cfg.channel, True, amplitude_ma, pulse_width_us, cfg.frequency_hz,
            cfg.interphase_gap_us, cfg.anodic_width_ratio,
        )
