"""The progress of a sweep, drawn by tqdm: trials done, a bar, the pace and the time left.

On a terminal tqdm redraws one line in place. In a log (CI, a file, a pipe: anything
that is not a terminal) a redrawn line would pile up carriage returns, so the same text
is printed as lines of their own, sparsely: at the start, each time the count crosses
another tenth of the total, when ``log_every_s`` seconds have passed since the last line
and some trial has finished since, and at the end. A 1,000-trial sweep logs about a
dozen lines, however long it runs.

The time left is the average pace of the trials finished in this run (tqdm's rate, not
smoothed) times the trials still to run; trials finished by an earlier run count as
done but not towards the pace (tqdm's ``initial``). Trials that raised are counted as
done and named after the count (``3 failed``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

#: In a log: a line at least every this many seconds while trials finish.
LOG_EVERY_S = 30.0
#: In a log: a line each time the count crosses one of this many equal steps.
LOG_STEPS = 10


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
    """Counts finished trials out of ``total`` and shows them on ``stream``."""

    def __init__(
        self,
        total: int,
        already_done: int,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.time,
        log_every_s: float = LOG_EVERY_S,
        log_steps: int = LOG_STEPS,
    ) -> None:
        self.failed = 0
        self._stream = stream
        self._live = stream.isatty()
        # Outside a terminal tqdm never draws (its delay never ends): ``_log`` prints.
        self._bar = tqdm(
            total=total, initial=already_done, desc="sweep", unit="trial", file=stream,
            smoothing=0.0, dynamic_ncols=True, delay=0.0 if self._live else math.inf,
        )
        self._bar._time = clock  # tqdm's own clock, set before it is first read below
        self._bar.start_t = self._bar.last_print_t = clock()
        self._clock = clock
        self._log_every_s = log_every_s
        self._log_steps = log_steps
        self._logged: tuple[int, float] | None = None  # (count, time) of the last line

    @property
    def done(self) -> int:
        """Trials finished, by this run or an earlier one."""
        return int(self._bar.n)

    def line(self) -> str:
        """The progress text, e.g. ``sweep:  60%|######    | 6/10 [00:06<00:12,
        3.00s/trial]``."""
        return str(self._bar)

    def show(self) -> None:
        """Draw the current count: at once on a terminal, as a log line if one is due."""
        if self._live:
            self._bar.refresh()
        elif self._log_due():
            self._log()

    def advance(self, failed: bool = False) -> None:
        """One more trial finished (or failed) in this run."""
        if failed:
            self.failed += 1
            self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
        self._bar.update(1)
        if not self._live:
            self.show()

    def finish(self) -> None:
        """Close the bar (terminal), or log the final count if not yet (log)."""
        if not self._live and (self._logged is None or self._logged[0] != self.done):
            self._log()
        self._bar.close()

    def _log_due(self) -> bool:
        if self._logged is None:
            return True
        count, at = self._logged
        total = self._bar.total or 1
        step = self.done * self._log_steps // total
        return self.done != count and (
            step > count * self._log_steps // total
            or self._clock() - at >= self._log_every_s
            or self.done == total
        )

    def _log(self) -> None:
        self._stream.write(self.line() + "\n")
        self._stream.flush()
        self._logged = (self.done, self._clock())
