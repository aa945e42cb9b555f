"""Pacing of the loop: a virtual clock for simulation, a wall clock for real time.

The loop asks the clock to wait until each sample's deadline and, once the commands are
out, what time it is now. The virtual clock returns at once, so a simulated trial runs as
fast as the machine allows while its timestamps stay exactly k * period (and every
deadline is met by construction: lateness and latency are exact zeros). The wall clock
waits in two steps, because neither alone is good enough on an ordinary Linux machine:

1. ``time.sleep`` until ``spin_s`` before the deadline. Sleeping gives the core to
   other work and keeps this process cheap for the scheduler, but the kernel wakes a
   sleeper late: by the thread's timer slack (50 us by default on Linux, lowered to 1 ns
   by ``controller.hotpath.realtime_section``) plus the wake-up latency, tens of
   microseconds typically and more under load.
2. Spin on ``time.perf_counter`` for the last ``spin_s``, which absorbs that wake-up
   error and leaves a lateness of about one ``perf_counter`` call (well under 1 us).

A longer spin absorbs later wake-ups but burns more of a core (``spin_s`` / period of it).
What happens when a deadline was missed anyway (skip, never burst) is the business of
``controller.deadlines``, not of the clock: the clock only says how late it is.
"""

from __future__ import annotations

import time
from typing import Protocol

#: Default spin window of the wall clock: above the 99.9th percentile of the sleep
#: overshoot measured on the project's 2-core machine with 1 ns timer slack (about
#: 50 us at p99, up to 200 us at p99.9 under load from other processes).
DEFAULT_SPIN_S = 200e-6


class Clock(Protocol):
    """Waits until a trial time (seconds since the start of the trial).

    ``kind`` names the clock in the summary's ``timing`` block: ``virtual``, ``wall`` or
    ``board``.
    """

    kind: str

    @property
    def not_measured(self) -> str | None:
        """Why this clock does not measure the loop's lateness (its ``wait_until``
        returns NaN), as ``summary.json`` ``timing.not_measured`` says it; None when it
        does."""
        ...

    def start(self) -> None:
        """Trial time starts: the loop calls it last before its first sample, once
        everything else is ready (a board-paced clock connects to the board here)."""
        ...

    def wait_until(self, t_s: float) -> float:
        """Block until ``t_s``; return how late the deadline was met, in seconds (NaN
        when this clock cannot tell: ``not_measured``)."""
        ...

    def now(self) -> float:
        """The current trial time in seconds."""
        ...


class VirtualClock:
    """Simulated time: every deadline is met at once and exactly; work takes no time."""

    kind = "virtual"
    not_measured: str | None = None  # every deadline is met exactly, by definition

    def __init__(self) -> None:
        self._t_s = 0.0

    def start(self) -> None:
        """Virtual time starts at zero."""
        self._t_s = 0.0

    def wait_until(self, t_s: float) -> float:
        self._t_s = max(self._t_s, t_s)
        return 0.0

    def now(self) -> float:
        return self._t_s


class WallClock:
    """Real time from ``time.perf_counter``: sleep, then spin the last ``spin_s``."""

    kind = "wall"
    not_measured: str | None = None

    def __init__(self, spin_s: float = DEFAULT_SPIN_S) -> None:
        if not 0.0 <= spin_s <= 0.1:
            raise ValueError(f"spin_s must be within 0..0.1 s, got {spin_s!r}")
        self.spin_s = spin_s
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def wait_until(self, t_s: float) -> float:
        deadline = self._t0 + t_s
        now = time.perf_counter()
        if deadline - now > self.spin_s:
            time.sleep(deadline - now - self.spin_s)
        while now < deadline:
            now = time.perf_counter()
        return now - deadline

    def now(self) -> float:
        return time.perf_counter() - self._t0
