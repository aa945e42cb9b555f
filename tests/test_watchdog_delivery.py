"""What the watchdog hands the stimulator is what it checked: a command rebuilt from the
numbers it read once, never the caller's object (issue 13 item 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.ports import StimCommand
from controller.watchdog import SafetyLimits, Watchdog


class RecordingStimulator:
    """A Stimulator that reads every command it is given, as a driver would."""

    channels = 1

    def __init__(self) -> None:
        self.amplitudes_ma: list[float] = []
        self.types: list[type] = []

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        for command in commands:
            self.types.append(type(command))
            self.amplitudes_ma.append(command.amplitude_ma)

    def stop_all(self) -> None:
        pass


@dataclass(frozen=True)
class ShiftyCommand:
    """Every field a ``StimCommand`` has, but an amplitude that reads 1 mA the first
    time and 99 mA from then on (a caller's object that changes under the watchdog)."""

    channel: int
    on: bool
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float = 0.0
    anodic_width_ratio: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", 0)  # not a field: the watchdog knows every field

    @property
    def amplitude_ma(self) -> float:
        object.__setattr__(self, "reads", self.reads + 1)  # type: ignore[attr-defined]
        return 1.0 if self.reads == 1 else 99.0  # type: ignore[attr-defined]


def test_an_object_that_changes_between_reads_is_delivered_as_checked():
    stimulator = RecordingStimulator()
    dog = Watchdog(stimulator, SafetyLimits())
    command = ShiftyCommand(0, True, 300.0, 40.0)
    delivered = dog.submit(0.0, [command])  # type: ignore[list-item]

    assert stimulator.amplitudes_ma == [1.0]  # what the watchdog checked, not 99 mA
    assert stimulator.types == [StimCommand]
    assert delivered == [StimCommand(0, True, 1.0, 300.0, 40.0)]
    assert not dog.latched
