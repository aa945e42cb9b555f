"""The stimulation scheduler: every channel's command at every sample, by mode.

Walking mode runs the walking-mode envelope (``controller.stim.walking``) on every
enabled channel (peroneal, and any others with their own triggers and windows, e.g. calf
for push-off in pre-swing, hamstrings in terminal swing), all sharing one toe-off
predictor of the walker (``controller.stim.prediction``). Training mode cycles every
enabled channel on and off; test mode bursts once on one channel
(``controller.stim.timed``).

``StimScheduler`` is the loop's object for all that: a thin shell over the kernel
``controller.stim.schedule.schedule_step`` and its arrays. A compiled loop calls that
kernel on ``mode`` and ``kernel_arrays`` itself; the counters of ``timeouts`` and
``reports`` are read from the state, so they are right after either path ran.

The scheduler only asks; the watchdog decides what reaches the stimulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.detect import outbox
from controller.events import DetectedEvent, Event, Phase
from controller.ports import StimCommand, command_of_row
from controller.stim import walking
from controller.stim.schedule import (
    MODE_WALKING,
    make_params,
    mode_code,
    new_commands,
    new_state,
    schedule_step_for,
    stimulating_channels,
)
from controller.stim.settings import (
    OFFSET_REFERENCE,
    ONSET_REFERENCE,
    ChannelConfig,
    StimConfig,
)

__all__ = ["ChannelConfig", "ChannelReport", "StimConfig", "StimScheduler"]


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


def fill_outbox(t_s: float, events: Sequence[Event | DetectedEvent], out: np.ndarray) -> None:
    """Write ``events`` into the outbox ``out`` as a detection kernel would: a
    ``DetectedEvent`` dated at its estimated time, a bare event at ``t_s``. ``out`` must
    hold them all (``outbox.SIZE`` holds ``outbox.MAX_EVENTS``)."""
    out[0] = len(events)
    for k, event in enumerate(events):
        if isinstance(event, DetectedEvent):
            out[1 + 2 * k] = event.event
            out[2 + 2 * k] = event.t_est_s
        else:
            out[1 + 2 * k] = event
            out[2 + 2 * k] = t_s


class StimScheduler:
    """All channels of a trial; a disabled stimulation config yields only "off"."""

    def __init__(self, config: StimConfig) -> None:
        self.config = config
        self._channels = stimulating_channels(config)
        self._params = make_params(config)
        self._state = new_state(config)
        self._commands = new_commands(self._params)
        self._events = outbox.new_outbox()
        rows = self._commands.tolist()
        self._last_rows: list[list[float]] = rows
        self._last_commands = [command_of_row(row) for row in rows]
        self.mode = mode_code(config)
        self._walking = self.mode == MODE_WALKING
        self._step = schedule_step_for(self.mode)

    @property
    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(params, state, commands)``: the live arrays this scheduler steps, for a
        compiled loop to call ``schedule_step(mode, params, state, t_s, phase, events,
        commands)`` on instead of ``step`` (``mode``: this scheduler's ``mode``)."""
        return self._params, self._state, self._commands

    def _counts(self, column: int) -> list[int]:
        """A walking-mode counter of every stimulating channel (0 in the timed modes)."""
        if not self._walking:
            return [0] * len(self._channels)
        return [int(s[column]) for s in self._state[1 : 1 + len(self._channels)]]

    @property
    def timeouts(self) -> int:
        """How many trains the timeout ended (no stop event came in time)."""
        return sum(self._counts(walking.S_TIMEOUTS))

    def reports(self) -> list[ChannelReport]:
        """One report per stimulating channel, peroneal first."""
        walking_mode = self.config.mode == "walking"
        counters = zip(
            self._counts(walking.S_TIMEOUTS),
            self._counts(walking.S_UNCONFIRMED),
            self._counts(walking.S_REFUSED),
            strict=True,
        )
        reports = []
        for (name, cfg), (timeouts, unconfirmed, refused) in zip(
            self._channels, counters, strict=True
        ):
            reports.append(
                ChannelReport(
                    name=name,
                    channel=cfg.channel,
                    trigger=cfg.trigger if walking_mode else self.config.mode,
                    onset_reference=ONSET_REFERENCE[cfg.trigger] if walking_mode else None,
                    offset_reference=OFFSET_REFERENCE[cfg.stop] if walking_mode else None,
                    onset_lead_s=cfg.lead_ms / 1000.0
                    if walking_mode and cfg.trigger == "predicted_toe_off"
                    else 0.0,
                    offset_delay_s=(cfg.extension_ms + cfg.ramp_down_ms) / 1000.0,
                    timeouts=timeouts,
                    unconfirmed=unconfirmed,
                    refused=refused,
                )
            )
        return reports

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernel before the loop, on scratch
        copies of the arrays: the scheduler is left unchanged."""
        self._step(
            self._params, self._state.copy(), 0.0, int(Phase.UNKNOWN), outbox.new_outbox(),
            self._commands.copy(),
        )

    def step(
        self, t_s: float, phase: Phase, events: Sequence[Event | DetectedEvent]
    ) -> list[StimCommand]:
        """Commands for every channel at ``t_s``: one per stimulating channel, or "off"
        on the peroneal channel when none stimulates.

        ``events`` are those that became known at ``t_s``, bare or as ``DetectedEvent``
        (whose estimated time dates a toe off for the prediction; a bare event is dated
        ``t_s``).
        """
        if len(events) > outbox.MAX_EVENTS:
            self._events = np.zeros(1 + 2 * len(events))
        fill_outbox(t_s, events, self._events)
        self._step(self._params, self._state, t_s, int(phase), self._events, self._commands)
        rows = self._commands.tolist()
        for i, row in enumerate(rows):
            if row != self._last_rows[i]:
                self._last_commands[i] = command_of_row(row)
        self._last_rows = rows
        return list(self._last_commands)
