"""Safety watchdog: the only path from the controller to a ``Stimulator``.

It trusts nothing upstream. Every command is checked against hard limits before it
reaches the output; any breach (a value over a limit, a non-finite or negative value, an
unknown channel, time running backwards, stimulation on for longer than the continuous
on-time limit) turns every output off and latches a fault. While a fault is latched the
watchdog delivers only "off", whatever it is asked, until ``reset`` is called.

The absolute limits below are compiled into this module: a config may lower them, never
raise them (``SafetyLimits`` rejects a higher value). Sources: amplitude 100 mA and pulse
width 1000 us are the maxima of clinical surface drop-foot stimulators (DESIGN.md: 10-100
mA, 100-350 us typical, some devices up to 1000 us); 100 Hz is twice the top of the
clinical 20-50 Hz range; 5 s continuous on-time is openEMSstim's bound on one command.

This module imports only ``controller.ports``: it sees commands, never the detector or
the scheduler that produced them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from controller.ports import StimCommand, Stimulator
from controller.validation import ConfigModel

ABSOLUTE_MAX_AMPLITUDE_MA = 100.0
ABSOLUTE_MAX_PULSE_WIDTH_US = 1000.0
ABSOLUTE_MAX_FREQUENCY_HZ = 100.0
ABSOLUTE_MAX_CONTINUOUS_ON_MS = 5000.0


class SafetyLimits(ConfigModel):
    """Limits of one installation; each may be set at or below its absolute maximum."""

    max_amplitude_ma: float = Field(60.0, gt=0.0, le=ABSOLUTE_MAX_AMPLITUDE_MA)
    max_pulse_width_us: float = Field(500.0, gt=0.0, le=ABSOLUTE_MAX_PULSE_WIDTH_US)
    max_frequency_hz: float = Field(60.0, gt=0.0, le=ABSOLUTE_MAX_FREQUENCY_HZ)
    max_continuous_on_ms: float = Field(3000.0, gt=0.0, le=ABSOLUTE_MAX_CONTINUOUS_ON_MS)


@dataclass(frozen=True, slots=True)
class Intervention:
    """A command the watchdog did not pass unchanged, and why."""

    t_s: float
    rule: str
    channel: int
    requested: str
    delivered: str


def _describe(command: StimCommand) -> str:
    if not command.on:
        return "off"
    return (
        f"on {command.amplitude_ma:.3g} mA {command.pulse_width_us:.4g} us "
        f"{command.frequency_hz:.4g} Hz"
    )


class Watchdog:
    """Checks every command, delivers only what is within limits, latches faults."""

    def __init__(self, stimulator: Stimulator, limits: SafetyLimits) -> None:
        self._stimulator = stimulator
        self.limits = limits
        self.fault: Intervention | None = None
        self.interventions: list[Intervention] = []
        self.faults = 0
        self.clamped_commands = 0
        self._last_t_s = -math.inf
        self._on_since_s: dict[int, float] = {}

    @property
    def latched(self) -> bool:
        """True while a fault holds every output off."""
        return self.fault is not None

    def _breach(self, t_s: float, command: StimCommand) -> str | None:
        """The rule ``command`` breaks at ``t_s``, or None when it is safe."""
        lim = self.limits
        values = (command.amplitude_ma, command.pulse_width_us, command.frequency_hz)
        if not all(math.isfinite(v) for v in values) or not math.isfinite(t_s):
            return "non_finite_value"
        if not 0 <= command.channel < self._stimulator.channels:
            return "unknown_channel"
        if t_s <= self._last_t_s:
            return "time_not_increasing"
        if not command.on:
            return None
        if min(values) < 0.0:
            return "negative_value"
        if command.amplitude_ma > lim.max_amplitude_ma:
            return "max_amplitude_ma"
        if command.pulse_width_us > lim.max_pulse_width_us:
            return "max_pulse_width_us"
        if command.frequency_hz > lim.max_frequency_hz:
            return "max_frequency_hz"
        since = self._on_since_s.get(command.channel, t_s)
        if (t_s - since) * 1000.0 > lim.max_continuous_on_ms:
            return "max_continuous_on_ms"
        return None

    def submit(self, t_s: float, commands: Sequence[StimCommand]) -> list[StimCommand]:
        """Check ``commands`` requested at ``t_s``; deliver and return what is allowed."""
        delivered: list[StimCommand] = []
        for command in commands:
            rule = None if self.latched else self._breach(t_s, command)
            if rule is not None:
                self._latch(t_s, rule, command)
            if self.latched:
                safe = StimCommand.off(command.channel if command.channel >= 0 else 0)
                if command != safe:
                    self.clamped_commands += 1
                    if rule is None:
                        self._log(t_s, "fault_latched", command, safe)
                delivered.append(safe)
                continue
            self._track_on_time(t_s, command)
            delivered.append(command)
        if math.isfinite(t_s):
            self._last_t_s = max(self._last_t_s, t_s)
        if self.latched:
            self._stimulator.stop_all()
            return delivered
        self._stimulator.apply(t_s, delivered)
        return delivered

    def _track_on_time(self, t_s: float, command: StimCommand) -> None:
        if command.delivers:
            self._on_since_s.setdefault(command.channel, t_s)
        else:
            self._on_since_s.pop(command.channel, None)

    def _log(self, t_s: float, rule: str, requested: StimCommand, delivered: StimCommand) -> None:
        self.interventions.append(
            Intervention(t_s, rule, requested.channel, _describe(requested), _describe(delivered))
        )

    def _latch(self, t_s: float, rule: str, command: StimCommand) -> None:
        self.faults += 1
        self._log(t_s, rule, command, StimCommand.off(0))
        self.fault = self.interventions[-1]
        self._stimulator.stop_all()

    def loop_overrun(self, t_s: float, lateness_s: float) -> None:
        """Latch a fault: the commands of the sample at ``t_s`` are ``lateness_s`` late.

        The loop calls this, before submitting them, when a sample's commands would
        reach the stimulator later than ``loop.max_overrun_ms`` after its deadline:
        commands that late are stale, so every output goes off until ``reset``. The
        intervention's channel is -1 (all channels).
        """
        if self.latched:
            return
        self.faults += 1
        self.fault = Intervention(
            t_s, "loop_overrun", -1, f"sample {lateness_s * 1e3:.3g} ms late", "off"
        )
        self.interventions.append(self.fault)
        self._stimulator.stop_all()

    def reset(self) -> None:
        """Clear a latched fault; outputs stay off until the next valid command."""
        self.fault = None
        self._on_since_s.clear()

    def stop_all(self) -> None:
        """Turn every output off now (shutdown, e-stop); does not latch a fault."""
        self._on_since_s.clear()
        self._stimulator.stop_all()
