"""The progress line of a sweep: trials done, a bar, time taken and an estimate of time left.

The estimate is the pace of the trials finished in this run (wall time per trial, which
already accounts for the workers running side by side) times the trials still to run;
trials finished by an earlier run count as done but not towards the pace. On a terminal
the line is redrawn in place; in a log (CI) a line is printed at most every
``log_every_s`` seconds and at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts finished trials out of ``total`` and shows it on ``stream``."""

    def __init__(
        self,
        total: int,
        already_done: int,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every_s: float = 10.0,
    ) -> None:
        self.total = total
        self.done = already_done
        self.ran = 0
        self.failed = 0
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._log_every_s = log_every_s
        self._last_log = -float("inf")
        self._logged_done = -1
        self._live = stream.isatty()

    def eta_s(self) -> float | None:
        """Estimated seconds left, or ``None`` before the first trial of this run ends."""
        if self.ran == 0:
            return None
        pace = (self._clock() - self._start) / self.ran
        return pace * (self.total - self.done)

    def line(self) -> str:
        """The progress text, e.g. ``57/200 [######------] 28 %, 12 s, ~31 s left``."""
        fraction = self.done / self.total if self.total else 1.0
        filled = round(fraction * BAR_WIDTH)
        eta = self.eta_s()
        left = "estimating time left" if eta is None else f"~{format_duration(eta)} left"
        if self.done == self.total:
            left = "done"
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"sweep {self.done}/{self.total} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
            f"{fraction * 100:3.0f} %, {format_duration(self._clock() - self._start)}"
            f"{failed}, {left}"
        )

    def advance(self, failed: bool = False) -> None:
        """One more trial finished (or failed) in this run."""
        self.done += 1
        self.ran += 1
        self.failed += int(failed)
        self.show()

    def show(self) -> None:
        """Draw the line (in place on a terminal, rate-limited in a log)."""
        now = self._clock()
        if self._live:
            self._stream.write(f"\r{self.line()}\x1b[K")
        elif now - self._last_log >= self._log_every_s or self.done == self.total:
            self._log()
            self._last_log = now
        self._stream.flush()

    def _log(self) -> None:
        self._stream.write(self.line() + "\n")
        self._logged_done = self.done

    def finish(self) -> None:
        """End the in-place line (terminal), or log the final count if not yet (log)."""
        if self._live:
            self._stream.write("\n")
        elif self._logged_done != self.done:
            self._log()
        self._stream.flush()
