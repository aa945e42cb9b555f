"""The stimulation scheduler: every channel's command at every sample, by mode.

Walking mode runs one ``GaitChannel`` per enabled channel (peroneal, and any others with
their own triggers and windows, e.g. calf for push-off in pre-swing, hamstrings in
terminal swing), all sharing one ``ToeOffPredictor`` of the walker. Training mode cycles
every enabled channel on and off; test mode bursts once on one channel
(``controller.stim.timed``).

The scheduler only asks; the watchdog decides what reaches the stimulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.detect.events import DetectedEvent, Event, Phase
from controller.ports import StimCommand
from controller.stim.prediction import ToeOffPredictor, event_kind
from controller.stim.settings import (
    OFFSET_REFERENCE,
    ONSET_REFERENCE,
    ChannelConfig,
    StimConfig,
)
from controller.stim.timed import TimedChannel
from controller.stim.walking import GaitChannel

__all__ = ["ChannelConfig", "ChannelReport", "StimConfig", "StimScheduler"]


class StimChannel(Protocol):
    """What the scheduler needs of a channel in any mode."""

    config: ChannelConfig
    timeouts: int
    unconfirmed: int
    refused: int

    def step(self, t_s: float, phase: Phase, kinds: frozenset[Event]) -> StimCommand: ...


@dataclass(frozen=True, slots=True)
class ChannelReport:
    """How one channel was asked to behave and what its bounds did, for the summary.

    ``onset_reference`` and ``offset_reference`` are the true gait events its onsets and
    ends are scored against (None outside walking mode); ``onset_lead_s`` is how long
    before its reference an onset is meant to come (the lead of a predicted toe off) and
    ``offset_delay_s`` how long after the stop event a train is meant to end (extension +
    ramp down), so that scoring can allow for both.
    """

    name: str
    channel: int
    trigger: str
    onset_reference: Event | None
    offset_reference: Event | None
    onset_lead_s: float
    offset_delay_s: float
    timeouts: int
    unconfirmed: int
    refused: int


def _channels(config: StimConfig, predictor: ToeOffPredictor) -> list[tuple[str, StimChannel]]:
    active = config.active_channels()
    if config.mode == "training":
        tr = config.training
        return [(n, TimedChannel(ch, tr.start_ms, tr.on_ms, tr.off_ms)) for n, ch in active]
    if config.mode == "test":
        test = config.test
        return [
            (n, TimedChannel(ch, test.start_ms, test.on_ms, None))
            for n, ch in active
            if n == test.channel_name
        ]
    return [(n, GaitChannel(ch, predictor)) for n, ch in active]


class StimScheduler:
    """All channels of a trial; a disabled stimulation config yields only "off"."""

    def __init__(self, config: StimConfig) -> None:
        self.config = config
        self.predictor = ToeOffPredictor(config.prediction)
        self._channels = _channels(config, self.predictor)
        self._idle = [StimCommand.off(config.peroneal.channel)]

    @property
    def timeouts(self) -> int:
        """How many trains the timeout ended (no stop event came in time)."""
        return sum(ch.timeouts for _, ch in self._channels)

    def reports(self) -> list[ChannelReport]:
        """One report per stimulating channel, peroneal first."""
        walking = self.config.mode == "walking"
        reports = []
        for name, ch in self._channels:
            cfg = ch.config
            reports.append(
                ChannelReport(
                    name=name,
                    channel=cfg.channel,
                    trigger=cfg.trigger if walking else self.config.mode,
                    onset_reference=ONSET_REFERENCE[cfg.trigger] if walking else None,
                    offset_reference=OFFSET_REFERENCE[cfg.stop] if walking else None,
                    onset_lead_s=cfg.lead_ms / 1000.0
                    if walking and cfg.trigger == "predicted_toe_off"
                    else 0.0,
                    offset_delay_s=(cfg.extension_ms + cfg.ramp_down_ms) / 1000.0,
                    timeouts=ch.timeouts,
                    unconfirmed=ch.unconfirmed,
                    refused=ch.refused,
                )
            )
        return reports

    def step(
        self, t_s: float, phase: Phase, events: Sequence[Event | DetectedEvent]
    ) -> list[StimCommand]:
        """Commands for every stimulating channel at ``t_s``.

        ``events`` are those that became known at ``t_s``, bare or as ``DetectedEvent``
        (whose estimated time dates a toe off for the prediction; a bare event is dated
        ``t_s``).
        """
        if not self._channels:
            return self._idle
        self.predictor.observe(t_s, events)
        kinds = frozenset(event_kind(e) for e in events)
        return [ch.step(t_s, phase, kinds) for _, ch in self._channels]
