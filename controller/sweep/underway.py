"""How far the trials a sweep is running have got, for its progress line.

A sweep's line counted finished trials only, so a sweep of one or two long trials showed
nothing moving for minutes. Each worker now writes the fraction of its trial simulated so
far (samples run by the compiled loop, after each of its blocks) into one slot per
trial of a shared array (``multiprocessing.RawArray``: the sweep's own process for
``--workers 1``, handed to the local worker processes when they start); the sweep
adds the fractions of the trials not yet finished to the finished ones on a terminal's
line (``Progress.under_way``), at most every ``TICK_S``. The log lines outside a terminal
still count finished trials only. Trials on a Dask cluster report nothing within
themselves (their workers share no memory with the sweep): their line moves per trial.

The array holds plain doubles written by one process each and read by another without a
lock: a reader may see a slot's previous fraction, never a torn one (an aligned 8-byte
store on x86-64 and ARM64), and a fraction only has to be about right.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from controller.progress import Progress

#: The line is redrawn at most this often with the work under way.
TICK_S = 0.5
#: A trial's fraction stays below this until the trial's result arrives.
UNFINISHED = 0.99

# In a worker (or the sweep's own process for ``--workers 1``): the shared fractions and
# what to call after writing one (the sweep's own process redraws its line from there).
_shares: Any = None
_written: Callable[[], None] | None = None


def use_shares(shares: Any, written: Callable[[], None] | None = None) -> None:
    """Report this process's trials into ``shares`` (None: report nothing), then call
    ``written`` (a worker process: nothing; the sweep's own: redraw its line)."""
    global _shares, _written
    _shares, _written = shares, written


def reporter(index: int) -> Callable[[int, int], None] | None:
    """What a trial with this task ``index`` calls with its samples done and its total
    (``run_simulated_trial``'s ``samples_done``); None when nothing listens."""
    shares = _shares
    if shares is None:
        return None
    written = _written

    def report(done: int, total: int) -> None:
        shares[index] = min(UNFINISHED, done / total) if total else 0.0
        if written is not None:
            written()

    return report


class UnderWay:
    """The fractions of a sweep's ``tasks`` trials done so far, shown on ``progress``."""

    def __init__(self, tasks: int, progress: Progress,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shares = multiprocessing.RawArray("d", max(1, tasks))
        self._finished = [False] * tasks
        self._progress = progress
        self._clock = clock
        self._shown_at = -float("inf")

    def running(self) -> float:
        """Trials' worth of the work under way: the fractions of unfinished trials."""
        return sum(f for f, done in zip(self.shares, self._finished, strict=False) if not done)

    def tick(self) -> None:
        """Redraw the line with the work under way, unless it was redrawn less than
        ``TICK_S`` ago."""
        now = self._clock()
        if now - self._shown_at < TICK_S:
            return
        self._shown_at = now
        self._progress.under_way(self.running())

    def finished(self, index: int) -> float:
        """Task ``index`` has its result: its fraction no longer counts. Returns the
        work still under way."""
        self._finished[index] = True
        return self.running()
