"""Peroneal stimulation scheduler: when to stimulate, at what level, for each stride.

Per stride the channel follows the envelope of clinical drop-foot stimulators (Odstock
ODFS, Bioness L300; see DESIGN.md): a trigger (entry into pre-swing, or a detected toe
off) starts a ramp up to the set amplitude; the level holds through swing; a detected
heel strike starts the extension, which holds the level a set time longer to prevent
foot slap; then a ramp down to zero. A timeout bounds the continuous stimulation when no
heel strike comes (the detector lost the walker), and an unknown gait phase ramps down at
once. Ramps act on amplitude, which avoids the calf stretch reflex a sudden contraction
can provoke.

The scheduler only asks; the watchdog decides what reaches the stimulator.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import Field

from controller.detect.events import Event, Phase
from controller.ports import StimCommand
from controller.validation import ConfigModel

_TIME_EPSILON_S = 1e-9


class ChannelConfig(ConfigModel):
    """Stimulation parameters of one channel and the shape of its per-stride envelope."""

    enabled: bool = True
    channel: int = Field(0, ge=0, le=7)
    amplitude_ma: float = Field(35.0, ge=0.0, le=100.0)
    pulse_width_us: float = Field(300.0, ge=10.0, le=1000.0)
    frequency_hz: float = Field(40.0, ge=1.0, le=100.0)
    trigger: Literal["pre_swing", "toe_off"] = "pre_swing"
    ramp_up_ms: float = Field(60.0, ge=0.0, le=2000.0)
    ramp_down_ms: float = Field(100.0, ge=0.0, le=2000.0)
    extension_ms: float = Field(100.0, ge=0.0, le=1000.0)
    timeout_ms: float = Field(1500.0, ge=100.0, le=5000.0)


class StimConfig(ConfigModel):
    """The stimulation of a trial: so far one peroneal channel."""

    enabled: bool = True
    peroneal: ChannelConfig = ChannelConfig()


class Stage(IntEnum):
    """Where a channel is in its per-stride envelope."""

    OFF = 0
    RAMP_UP = 1
    HOLD = 2
    EXTENSION = 3
    RAMP_DOWN = 4


class ChannelScheduler:
    """Envelope state machine of one channel, stepped once per sample."""

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.stage = Stage.OFF
        self.level = 0.0  # fraction of the set amplitude, 0..1
        self.timeouts = 0
        self._stage_start_s = 0.0
        self._stage_start_level = 0.0
        self._onset_s = 0.0
        self._last_phase = Phase.UNKNOWN

    def _enter(self, stage: Stage, t_s: float) -> None:
        self.stage = stage
        self._stage_start_s = t_s
        self._stage_start_level = self.level

    def _triggered(self, phase: Phase, events: tuple[Event, ...]) -> bool:
        if self.config.trigger == "toe_off":
            return Event.TOE_OFF in events
        return phase == Phase.PRE_SWING and self._last_phase != Phase.PRE_SWING

    def step(self, t_s: float, phase: Phase, events: tuple[Event, ...]) -> StimCommand:
        """Advance to ``t_s`` given the detector's phase and events; return the command."""
        cfg = self.config
        stimulating = self.stage != Stage.OFF
        if self._triggered(phase, events) and self.stage in (Stage.OFF, Stage.RAMP_DOWN):
            if not stimulating:
                self._onset_s = t_s
            self._enter(Stage.RAMP_UP, t_s)
        elif stimulating and self.stage != Stage.RAMP_DOWN:
            if phase == Phase.UNKNOWN:
                self._enter(Stage.RAMP_DOWN, t_s)
            elif t_s - self._onset_s >= cfg.timeout_ms / 1000.0 - _TIME_EPSILON_S:
                self.timeouts += 1
                self._enter(Stage.RAMP_DOWN, t_s)
            elif Event.HEEL_STRIKE in events and self.stage in (Stage.RAMP_UP, Stage.HOLD):
                self._enter(Stage.EXTENSION, t_s)
        self._last_phase = phase
        self._advance_level(t_s)
        if self.level <= 0.0:
            return StimCommand.off(cfg.channel)
        return StimCommand(
            cfg.channel, True, cfg.amplitude_ma * self.level, cfg.pulse_width_us, cfg.frequency_hz
        )

    def _progress(self, t_s: float, duration_ms: float) -> float:
        """Fraction 0..1 of a stage of ``duration_ms`` elapsed at ``t_s``.

        A stage counts as complete within a nanosecond of its end, so that rounding in
        sample times cannot leave a ramp at 1e-14 mA for one more sample.
        """
        elapsed_s = t_s - self._stage_start_s
        duration_s = duration_ms / 1000.0
        if elapsed_s >= duration_s - _TIME_EPSILON_S:
            return 1.0
        return elapsed_s / duration_s

    def _advance_level(self, t_s: float) -> None:
        """Move the envelope level along the current stage's ramp or timer."""
        cfg = self.config
        start = self._stage_start_level
        if self.stage == Stage.RAMP_UP:
            self.level = start + (1.0 - start) * self._progress(t_s, cfg.ramp_up_ms)
            if self.level >= 1.0:
                self._enter(Stage.HOLD, t_s)
        elif self.stage == Stage.EXTENSION and self._progress(t_s, cfg.extension_ms) >= 1.0:
            self._enter(Stage.RAMP_DOWN, t_s)
            self._advance_level(t_s)
        elif self.stage == Stage.RAMP_DOWN:
            self.level = start * (1.0 - self._progress(t_s, cfg.ramp_down_ms))
            if self.level <= 0.0:
                self._enter(Stage.OFF, t_s)


class StimScheduler:
    """All channels of a trial; a disabled stimulation config yields only "off"."""

    def __init__(self, config: StimConfig) -> None:
        self.config = config
        self._channels = (
            [ChannelScheduler(config.peroneal)]
            if config.enabled and config.peroneal.enabled
            else []
        )
        self._idle = [StimCommand.off(config.peroneal.channel)]

    @property
    def timeouts(self) -> int:
        """How many trains the timeout ended (no heel strike came in time)."""
        return sum(ch.timeouts for ch in self._channels)

    def step(self, t_s: float, phase: Phase, events: tuple[Event, ...]) -> list[StimCommand]:
        """Commands for every channel at ``t_s``."""
        if not self._channels:
            return self._idle
        return [ch.step(t_s, phase, events) for ch in self._channels]
