"""A trial's CSV files, written while the trial runs: ``samples.csv``, ``timing.csv`` and
``events.csv``.

The streams are log sinks (``controller.trial.writer``): the log writer process hands
them every block of rows the loop has published and each appends its text to its file
with ``os.write`` at once, so a kill of the trial at any moment leaves each file
readable up to its last complete line. (The files were opened, and their headers
written, by the trial's own process before the loop: an output that cannot be written
is found before anything starts.)

Formats are fixed (six decimals, names for phases and events) so that the same trial
gives the same bytes. Numbers are rendered by a compiled kernel
(``controller.trial.csvtext``), byte for byte what ``%.6f`` and ``%d`` give; NaN (a
missing value) is an empty field, also in the integer columns (a live trial can lack a
truth row).

``events.csv`` is sorted by time, then source, then event. A detected event becomes
known some time after the moment it estimates, so the stream holds each event back
until the rows published reach ``hold_s`` past it: the file then grows in sorted order
(an event detected later than that would be appended out of order, and only in a file
left by a kill: the trial's own end rewrites the file sorted, ``write_events_csv``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from controller.eventlog import EventRows, TrueEvents
from controller.events import EVENT_NAMES, PHASE_NAMES, Event
from controller.outputs import write_all
from controller.trial.csvtext import FLOAT6, INTEGER, NAME, CsvRenderer

#: Written as integers, as is the ``<channel>_stim_on`` flag of every further channel.
INTEGER_COLUMNS = frozenset({"heel_switch", "stim_on", "pulses", "skipped_periods"})
EVENTS_HEADER = b"time_s,source,event\n"
#: How long past an event's time the published rows must reach before it is streamed.
EVENT_HOLD_S = 0.5
#: Rows a ``CsvStream`` renders and writes at a time: a block the writer hands it (up to
#: a whole trial, when the writer is behind a simulation) goes out in pieces this long,
#: through a copy and a text buffer that are reused and stay in the CPU's cache, instead
#: of fresh arrays of the whole block, each page of which the kernel maps on first touch.
CHUNK_ROWS = 2048
#: Events ``write_events`` renders at a time.
EVENT_CHUNK = 8192


def column_kind(name: str) -> int:
    """How a column of a trial's CSV is written: a phase name, an integer, a float."""
    if name == "phase":
        return NAME
    if name in INTEGER_COLUMNS or name.endswith("_stim_on"):
        return INTEGER
    return FLOAT6


def header(columns: Sequence[str]) -> bytes:
    """The header line of a CSV file with ``columns``."""
    return (",".join(columns) + "\n").encode("utf-8")


def phase_names() -> list[str]:
    """Phase names by code, as the CSV writes them."""
    return [PHASE_NAMES[p] for p in sorted(PHASE_NAMES)]


class CsvStream:
    """Appends the rows of ``columns`` (out of every block the writer hands it) to the
    open file ``fd``, whose header is written."""

    def __init__(self, fd: int, columns: Sequence[str], path: Path | str = "") -> None:
        self.fd = fd
        self.path = path
        self.columns = tuple(columns)
        self._renderer = CsvRenderer(
            np.array([column_kind(name) for name in self.columns]), phase_names()
        )
        self._block = np.empty(len(self.columns) * CHUNK_ROWS)
        # Compile (or load) the kernels here, before the writer forks: the writer
        # process inherits their machine code (compiled there, they would map LLVM's).
        self.warm_up()

    def warm_up(self) -> None:
        """Render made-up rows that take every path of the renderer (a number, an empty
        cell, a cell copied from the row above, a hard cell Python formats, a phase
        name) into its buffer; nothing is written."""
        if not self.columns:
            return
        kinds = self._renderer.kinds
        values = np.zeros((len(self.columns), 4))  # rows 0 and 1: a number, copied
        values[:, 2] = np.nan
        values[kinds != NAME, 3] = np.inf
        self._renderer.rows(values)

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        n = len(rows[self.columns[0]]) if self.columns else 0
        width = len(self.columns)
        for start in range(0, n, CHUNK_ROWS):
            stop = min(n, start + CHUNK_ROWS)
            block = self._block[: width * (stop - start)].reshape(width, stop - start)
            for i, name in enumerate(self.columns):
                block[i] = rows[name][start:stop]
            write_all(self.fd, self._renderer.rows(block))

    def close(self) -> None:
        os.close(self.fd)


def event_line(t_s: float, source: str, event: str) -> str:
    """One line of ``events.csv``."""
    return f"{t_s:.6f},{source},{event}\n"


def event_lines(events: Iterable[tuple[float, str, str]]) -> bytes:
    """The lines of ``events.csv`` of ``events``, in their order."""
    return "".join(event_line(*event) for event in events).encode("utf-8")


def write_events(events: Iterable[tuple[float, str, str]], fd: int) -> None:
    """``events.csv`` whole to ``fd``: rows ``time_s,source,event`` sorted by time, then
    source, then event, rendered ``EVENT_CHUNK`` at a time (a day's 500,000 events as
    lines of text, joined and encoded whole, were some 70 MB at once)."""
    ordered = events if isinstance(events, EventRows) else sorted(events)
    write_all(fd, EVENTS_HEADER)
    for start in range(0, len(ordered), EVENT_CHUNK):
        write_all(fd, event_lines(ordered[start : start + EVENT_CHUNK]))


class EventSource(Protocol):
    """What ``EventStream`` reads: the recorder's detected events in shared memory
    (``TrialRecorder``: a ring for a windowed trial, read as it goes)."""

    def read_events_from(self, start: int) -> None:
        """The stream reads the events from ``start`` on."""
        ...

    def take_events(self, start: int) -> np.ndarray:
        """Copies of the events published from ``start`` on (known time, event code,
        estimated time), counted as read; ``RingOverrun`` if the loop may have
        overwritten any before they were read."""
        ...

    def stop_reading_events(self) -> None:
        """The stream reads no more events."""
        ...


class EventStream:
    """Appends true and detected events to ``events.csv`` (open as ``fd``) in sorted
    order as the trial's rows are published; see the module docstring.

    ``detected`` is the recorder (its published events: columns known time, event code,
    estimated time); ``true_events`` the ground truth known before the trial (the
    simulator's), each written once the rows reach it.
    """

    def __init__(
        self,
        fd: int,
        detected: EventSource,
        true_events: Sequence[tuple[float, str]],
        period_s: float,
        hold_s: float = EVENT_HOLD_S,
        path: Path | str = "",
    ) -> None:
        self.fd = fd
        self.path = path
        self._detected = detected
        self._seen = 0
        detected.read_events_from(0)
        self._pending: list[tuple[float, str, str]] = []
        # The true events as arrays (time, event code: ``TrueEvents``), not a list of
        # tuples: the log writer process reads them as the rows reach them, and
        # reading a Python object writes its reference count, which copies the page it
        # is on (the trial's process made the list): a day's 288,000 events at 1 kHz
        # were some 45 MB of the writer's own memory by the end. (Sorting a list of
        # them here kept some 225 bytes a stride alive in the trial's process.)
        true = TrueEvents.of(true_events)
        self._true_s = true.times_s
        self._true_code = true.codes
        self._next_true = 0
        self._period_s = period_s
        self._hold_s = hold_s
        self._rows = 0

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        self._rows = first + len(next(iter(rows.values()))) if rows else first
        self._flush(self._rows * self._period_s - self._hold_s)

    def close(self) -> None:
        try:
            self._flush(self._rows * self._period_s)
        finally:  # a full disk must not keep the file open
            self._detected.stop_reading_events()
            os.close(self.fd)

    def _flush(self, horizon_s: float) -> None:
        """Write every known event before ``horizon_s``, sorted."""
        events = self._detected.take_events(self._seen)
        for _, code, t_est in events.tolist():
            self._pending.append((t_est, "detected", EVENT_NAMES[Event(int(code))]))
        self._seen += len(events)
        end_s = self._rows * self._period_s
        reached = int(np.searchsorted(self._true_s, end_s, side="left"))
        if reached > self._next_true:
            names = EVENT_NAMES
            times = self._true_s[self._next_true : reached].tolist()
            codes = self._true_code[self._next_true : reached].tolist()
            self._pending += [(t_s, "true", names[Event(c)])
                              for t_s, c in zip(times, codes, strict=True)]
            self._next_true = reached
        self._pending.sort()
        ready = [e for e in self._pending if e[0] < horizon_s]
        if ready:
            self._pending = self._pending[len(ready):]
            self._emit(ready)

    def _emit(self, events: list[tuple[float, str, str]]) -> None:
        """Append ``events`` (sorted) to the file."""
        write_all(self.fd, event_lines(events))
