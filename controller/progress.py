"""The progress of long work on stderr, drawn by tqdm: work done, a bar, the pace and the
time left. One helper for every command that can run long: the trials of a sweep, the
samples of a long ``fes sim``, the file ``fes report`` or ``fes detect`` reads, the
recordings ``python -m controller.detect.evaluate`` reads (docs/cli.md, "Long work").

On a terminal tqdm redraws one line in place; with ``after_s`` the line appears only once
the work has taken that long (quick work shows nothing, and tqdm is not even imported).
Anywhere else (CI, a file, a pipe) a redrawn line would pile up carriage returns, so:

* with ``log`` (a sweep: hours in a CI log or under nohup) the same text is printed as
  lines of their own, sparsely: at the start, each time the count crosses another tenth
  of the total, when ``log_every_s`` seconds have passed since the last line and some
  work has finished since, and at the end. A 1,000-trial sweep logs about a dozen lines,
  however long it runs;
* without ``log`` nothing is shown: a command's output stays what scripts and tests read.
  ``progress`` (every other long work: a long ``fes sim``, ``fes report`` or ``fes
  detect`` of a long recording) logs in the same way, but only once the work has run
  ``LOG_EVERY_S`` (``log_after_s``): quick work prints nothing, and a CI log of a
  day-long ``fes sim`` (32 s) or of the report of an hour's trial is not silent
  throughout.

``quiet`` shows nothing anywhere (a trial run by a sweep's worker: the sweep counts it).

Work under way counts on a terminal's line too (``under_way``: the fraction of each
trial a sweep's workers have simulated so far, so a sweep of one long trial moves
within it, ``4.37/10``); the log lines, ``done`` and the failures count finished work
only.

Progress never goes to stdout: a command's stdout is its result.

The time left is the average pace of the work done in this run (tqdm's rate, not
smoothed) times the work still to do; work done by an earlier run counts as done but
not towards the pace (tqdm's ``initial``). Work that failed is counted as done and named
after the count (``3 failed``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

#: In a log: a line at least every this many seconds while work finishes.
LOG_EVERY_S = 30.0
#: In a log: a line each time the count crosses one of this many equal steps.
LOG_STEPS = 10
#: On a terminal, work that may be quick shows its line only after this long.
AFTER_S = 2.0


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
    """Counts work done out of ``total`` (``unit``s, named ``desc``) and shows it on
    ``stream`` (see the module docstring)."""

    def __init__(
        self,
        total: float,
        already_done: float,
        stream: TextIO,
        *,
        desc: str,
        unit: str,
        unit_scale: bool = False,
        log: bool = True,
        after_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        log_every_s: float = LOG_EVERY_S,
        log_steps: int = LOG_STEPS,
        quiet: bool = False,
        log_after_s: float = 0.0,
    ) -> None:
        self.failed = 0
        self._stream = stream
        self._live = not quiet and _is_terminal(stream)
        # Nothing is drawn or logged if quiet, or outside a terminal without ``log``.
        self._shown = self._live or (log and not quiet)
        self._options: dict[str, Any] = {
            "total": total, "desc": desc, "unit": unit, "unit_scale": unit_scale,
        }
        self._n = already_done
        self._under_way = 0.0  # work begun, not finished: on a terminal's line only
        self._already_done = already_done
        self._clock = clock
        self._start = clock()
        self._after_s = after_s
        self._log_every_s = log_every_s
        self._log_steps = log_steps
        self._log_after_s = log_after_s  # in a log: no line before the work took this long
        self._logged: tuple[float, float] | None = None  # (count, time) of the last line
        self._bar: Any = None  # tqdm, made once something is to be shown
        if self._shown and (after_s <= 0.0 if self._live else log_after_s <= 0.0):
            self._make_bar()

    @property
    def done(self) -> float:
        """Work done, by this run or an earlier one."""
        return self._n

    def line(self) -> str:
        """The progress text, e.g. ``sweep:  60%|######    | 6/10 [00:06<00:12,
        3.00s/trial]``."""
        bar = self._make_bar()
        bar.n = self._count_shown()
        return str(bar)

    def show(self) -> None:
        """Draw the current count: at once on a terminal (once ``after_s`` has passed),
        as a log line if one is due."""
        if not self._shown:
            return
        if self._live:
            if self._due_on_terminal():
                self._make_bar().refresh()
        elif self._log_due():
            self._log()

    def advance(self, amount: float = 1, failed: bool = False) -> None:
        """``amount`` more work done (or failed) in this run."""
        self._n += amount
        if failed:
            self.failed += 1
            if self._bar is not None:
                self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
        if not self._shown:
            return
        if not self._live:  # a log: a line when one is due (the bar is made for it)
            self.show()
            return
        if self._bar is None:
            if not self._due_on_terminal():
                return
            self._make_bar().refresh()
        else:
            self._bar.n = self._count_shown()  # then drawn as ``update`` would draw
            self._bar.update(0)

    def under_way(self, amount: float, redraw: bool = True) -> None:
        """Work begun and not finished amounts to ``amount`` (in ``unit``s): drawn on a
        terminal (once ``after_s`` has passed; with ``redraw``), added to the finished
        work; nothing else counts it. Set it to what is still under way without the
        work about to be counted before each ``advance`` (``redraw`` False: its
        ``advance`` draws)."""
        self._under_way = max(0.0, amount)
        if not (redraw and self._live) or (self._bar is None and not self._due_on_terminal()):
            return
        bar = self._make_bar()
        bar.n = self._count_shown()
        bar.refresh()

    def _count_shown(self) -> float:
        """Finished work plus the work under way on a terminal, rounded down to
        hundredths of a unit (``4.37``; ``4`` when nothing is under way)."""
        if not self._live or self._under_way <= 0.0:
            return self._n
        shown = math.floor((self._n + self._under_way) * 100.0) / 100.0
        return int(shown) if shown == int(shown) else shown

    def finish(self) -> None:
        """Close the bar (terminal), or log the final count if not yet (log)."""
        if not self._shown:
            return
        if not self._live and (self._logged[0] != self.done if self._logged is not None
                               else self._log_after_s <= 0.0):
            self._log()
        if self._bar is not None:
            self._bar.close()

    def _due_on_terminal(self) -> bool:
        return self._clock() - self._start >= self._after_s

    def _make_bar(self) -> Any:
        if self._bar is not None:
            return self._bar
        from tqdm import tqdm

        # Made silent (its delay never ends), given the count so far, then let draw on a
        # terminal; outside one it never draws: ``_log`` prints.
        self._bar = tqdm(
            **self._options, initial=self._already_done, file=self._stream, smoothing=0.0,
            dynamic_ncols=True, delay=math.inf,
        )
        self._bar._time = self._clock  # tqdm's own clock, set before it is first read
        self._bar.start_t = self._start
        self._bar.last_print_t = self._clock()
        self._bar.n = self._count_shown()
        if self._live:
            self._bar.delay = 0.0
        if self.failed:
            self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
        return self._bar

    def _log_due(self) -> bool:
        if self._logged is None:
            return self._clock() - self._start >= self._log_after_s
        count, at = self._logged
        total = self._options["total"] or 1
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextmanager
def progress(
    total: float, desc: str, unit: str, *, unit_scale: bool = False,
    stream: TextIO | None = None, after_s: float | None = None, quiet: bool = False,
) -> Iterator[Progress]:
    """Progress of work that may take long, on ``stream`` (stderr): a line on a terminal
    once it has taken ``after_s`` (``AFTER_S``); elsewhere (a log) whole lines once it
    has taken ``LOG_EVERY_S``, then as a sweep logs them; nothing if ``quiet``; closed
    at the end."""
    shown = Progress(
        total, 0, stream or sys.stderr, desc=desc, unit=unit, unit_scale=unit_scale,
        log=True, after_s=AFTER_S if after_s is None else after_s, quiet=quiet,
        log_after_s=LOG_EVERY_S,
    )
    try:
        yield shown
    finally:
        shown.finish()
