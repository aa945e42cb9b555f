"""Stimulators for tests of the watchdog and the loop: they keep what reached them."""

from __future__ import annotations

from collections.abc import Sequence

from controller.ports import StimCommand


class RecordingStimulator:
    """A Stimulator that remembers what reached it."""

    channels = 2

    def __init__(self) -> None:
        self.applied: list[tuple[float, list[StimCommand]]] = []
        self.stops = 0

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self.applied.append((t_s, list(commands)))

    def stop_all(self) -> None:
        self.stops += 1
