"""Pacing of the loop: a virtual clock for simulation, a wall clock for real time.

The loop asks the clock to wait until each sample's deadline. The virtual clock returns
at once, so a simulated trial runs as fast as the machine allows while its timestamps stay
exactly k * period; the wall clock sleeps until the deadline (a later issue refines it
with a spin phase and deadline accounting).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Waits until a trial time (seconds since the start of the trial)."""

    def start(self) -> None: ...

    def wait_until(self, t_s: float) -> float:
        """Block until ``t_s``; return how late the deadline was met, in seconds."""
        ...


class VirtualClock:
    """Simulated time: every deadline is met at once and exactly."""

    def start(self) -> None:
        """Nothing to do: virtual time starts at zero."""

    def wait_until(self, t_s: float) -> float:
        return 0.0


class WallClock:
    """Real time from ``time.perf_counter``; sleeps until each deadline."""

    def __init__(self) -> None:
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def wait_until(self, t_s: float) -> float:
        remaining = self._t0 + t_s - time.perf_counter()
        if remaining > 0.0:
            time.sleep(remaining)
        return max(0.0, time.perf_counter() - (self._t0 + t_s))
