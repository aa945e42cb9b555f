"""In-memory record of a trial, one row per sample, in preallocated columns.

The loop appends without allocating per sample beyond the detected-event list. The
columns live in shared memory and a shared counter is raised after the row it counts is
complete, so the log writer process (``controller.trial.writer``) streams the rows to
``samples.csv`` while the loop runs, without a lock. Detected events are also copied
into a shared table (``events``: known time, event code, estimated time), each published
as soon as it is written (before the rows it was detected at), for the stream of
``events.csv``, which says in ``counts`` how far it has read them (``take_events``).

All columns are rows of one table (``table``: column index by name in ``index``), so a
compiled loop (``controller.trial.compiled_loop``) records into the same memory as ``record``.
A table with fewer rows than the trial's samples is a ring (a long trial: sample k at row
k modulo the rows, written by a compiled loop or ``record``, ``controller.trial.window``);
its detected events are then a ring too (``event_ring``: event n at row n modulo its
rows), read by the stream as the rows are by the writer: a loop on the virtual clock
waits until the stream has read the events it would overwrite, a paced loop never waits
and a stream a whole ring behind it has lost events (``RingOverrun``: a failure of the
trial's output, as for the rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from controller.eventlog import DetectedEvents
from controller.events import DetectedEvent, Phase
from controller.ports import Sample, StimCommand
from controller.sharedmem import (
    RingOverrun,
    ring_overwritten,
    ring_rows,
    shared_empty,
    shared_zeros,
)

SENSOR_COLUMNS = ("time_s", "gyro_rad_s", "heel_switch", "heel_force_n")
STIM_COLUMNS = ("stim_on", "amplitude_ma", "pulse_width_us", "frequency_hz")
#: The first rows of ``TrialRecorder.table``, filled for every sample in this order; the
#: command columns of each recorded channel follow.
SAMPLE_ROWS = (*SENSOR_COLUMNS, "phase")
#: Entries of ``TrialRecorder.counts``: rows published, detected events published,
#: detected events read by the stream of ``events.csv`` (``NOT_READ`` while none reads).
ROWS_PUBLISHED, EVENTS_PUBLISHED, EVENTS_READ = 0, 1, 2
#: ``counts[EVENTS_READ]`` while no stream reads the events: nothing waits for one.
NOT_READ = 2**62
#: Columns of ``TrialRecorder.events``.
EVENT_KNOWN_S, EVENT_CODE, EVENT_EST_S = 0, 1, 2
#: One row of the shared event table per this many samples (50 a second at 1 kHz; a gait
#: detector reports a handful per stride). Beyond it the stream of a trial kept whole
#: stops adding events; the list (and the events.csv written at the end of the trial)
#: keeps them all. A windowed trial's table is a ring (``event_ring``).
SAMPLES_PER_EVENT = 20


def stim_column_prefix(name: str) -> str:
    """Prefix of a channel's command columns: none for peroneal, ``<name>_`` otherwise."""
    return "" if name == "peroneal" else f"{name}_"


class TrialRecorder:
    """Columns of sensors, detected phase and the delivered command of each recorded
    channel: the peroneal one (``channel``) under the plain names of ``STIM_COLUMNS``,
    each of ``extra_channels`` (name -> output) under ``<name>_`` + those names.

    The shared table of detected events has room for one per ``SAMPLES_PER_EVENT`` of
    ``capacity`` (and 64), and stops at its end; with ``event_ring``, it is a ring of
    that many events (a windowed trial's: see the module docstring)."""

    def __init__(
        self,
        capacity: int,
        channel: int = 0,
        extra_channels: Mapping[str, int] | None = None,
        event_ring: int | None = None,
    ) -> None:
        self.channel = channel
        self.capacity = capacity
        self.count = 0
        self._recorded = {channel: ""} | {
            output: stim_column_prefix(name) for name, output in (extra_channels or {}).items()
        }
        names = list(SAMPLE_ROWS)
        for prefix in self._recorded.values():
            names += [prefix + column for column in STIM_COLUMNS]
        # Every cell of a row is written when the row is (``record``, or a compiled
        # loop): the table may reuse an ended trial's memory.
        self.table = shared_empty(len(names) * capacity).reshape(len(names), capacity)
        self.index = {name: i for i, name in enumerate(names)}
        self._columns = {name: self.table[i] for i, name in enumerate(names)}
        # Each recorded channel's command columns in ``STIM_COLUMNS`` order, looked up
        # once here: ``record`` runs at every sample.
        self._stim_cells = {
            output: tuple(self._columns[prefix + column] for column in STIM_COLUMNS)
            for output, prefix in self._recorded.items()
        }
        self.counts = shared_zeros(3, np.int64)
        self.counts[EVENTS_READ] = NOT_READ
        event_capacity = 64 + capacity // SAMPLES_PER_EVENT if event_ring is None else event_ring
        self.events = shared_zeros(3 * event_capacity).reshape(event_capacity, 3)
        self.events_ring = event_ring is not None
        #: Events the table takes in all: its rows, or any number for a ring.
        self.event_limit = event_capacity if event_ring is None else 2**62
        self.detected = DetectedEvents()  # numbers, not objects (controller.eventlog)

    def record(
        self,
        sample: Sample,
        phase: Phase,
        delivered: Sequence[StimCommand],
        detected: Sequence[DetectedEvent],
    ) -> None:
        """Store one sample's row (at ``count`` modulo the rows: a ring's)."""
        k = self.count if self.count < self.capacity else self.count % self.capacity
        cols = self._columns
        cols["time_s"][k] = sample.t_s
        cols["gyro_rad_s"][k] = sample.gyro_rad_s
        cols["heel_switch"][k] = sample.heel_switch
        cols["heel_force_n"][k] = sample.heel_force_n
        cols["phase"][k] = phase
        stim_cells = self._stim_cells
        for on, amplitude, width, frequency in stim_cells.values():
            on[k] = amplitude[k] = width[k] = frequency[k] = 0.0  # every cell is written
        for command in delivered:
            cells = stim_cells.get(command.channel)
            if cells is not None and command.delivers:
                on, amplitude, width, frequency = cells
                on[k] = 1.0
                amplitude[k] = command.amplitude_ma
                width[k] = command.pulse_width_us
                frequency[k] = command.frequency_hz
        if detected:
            self.add_detected(detected)
        self.publish(self.count + 1)

    def add_detected(self, detected: Sequence[DetectedEvent]) -> None:
        """Keep ``detected`` and publish them to the shared table, each once written (as
        far as a table kept whole has room; a ring's at event n modulo its rows)."""
        self.detected.extend(detected)
        n = int(self.counts[EVENTS_PUBLISHED])
        rows = self.events.shape[0]
        for event in detected:
            if n < self.event_limit:
                self.events[n % rows] = (event.t_known_s, int(event.event), event.t_est_s)
                n += 1
                self.counts[EVENTS_PUBLISHED] = n

    def stim_column(self, channel: int) -> int:
        """Index in ``table`` of ``channel``'s ``stim_on`` column (the other command
        columns follow in ``STIM_COLUMNS`` order), or -1 if it is not recorded."""
        prefix = self._recorded.get(channel)
        return -1 if prefix is None else self.index[prefix + STIM_COLUMNS[0]]

    def publish(self, count: int) -> None:
        """Rows up to ``count`` are complete (by ``record``, or written into ``table`` by
        a compiled loop): the log writer may read them."""
        self.count = count
        self.counts[ROWS_PUBLISHED] = count

    def prefault(self) -> None:
        """Touch every page of the table now (see ``DeadlineMonitor.prefault``)."""
        self.table.fill(0.0)
        self.events.fill(0.0)

    def published(self) -> int:
        """Rows recorded so far, as the log writer process sees it."""
        return int(self.counts[ROWS_PUBLISHED])

    def events_published(self) -> int:
        """Detected events in the shared table so far (published before the rows of the
        samples they became known at)."""
        return int(self.counts[EVENTS_PUBLISHED])

    @property
    def event_capacity(self) -> int:
        """Rows of the shared event table."""
        return int(self.events.shape[0])

    def read_events_from(self, start: int) -> None:
        """A stream reads the events from ``start`` on (``take_events``): a loop on the
        virtual clock waits for it before it overwrites them (``RowWindow``)."""
        self.counts[EVENTS_READ] = start

    def take_events(self, start: int) -> np.ndarray:
        """Copies of the published events from ``start`` on (rows: known time, event
        code, estimated time), counted as read. Raises ``RingOverrun`` if the loop may
        have overwritten any of them before they were copied (a ring's, a whole ring
        behind)."""
        stop = self.events_published()
        events = np.array(ring_rows(self.events, start, stop))
        if self.events_ring:
            # The loop may be writing the event after the newest published.
            newest = self.events_published()
            if ring_overwritten(start, newest, self.event_capacity, lead=1):
                raise RingOverrun("detected events", start, newest, self.event_capacity)
        self.counts[EVENTS_READ] = stop
        return events

    def stop_reading_events(self) -> None:
        """The stream reads no more events: nothing waits for it."""
        self.counts[EVENTS_READ] = NOT_READ

    def events_read(self) -> int:
        """Events the stream has read (``NOT_READ`` while none reads)."""
        return int(self.counts[EVENTS_READ])

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Columns of samples ``start`` to ``stop`` (views, or copies where they wrap
        around a ring; a recorded row never changes until the ring comes round)."""
        if stop <= self.capacity:
            return {name: col[start:stop] for name, col in self._columns.items()}
        block = ring_rows(self.table, start, stop, axis=1)
        return {name: block[i] for i, name in enumerate(self.index)}

    def columns(self) -> dict[str, np.ndarray]:
        """The recorded columns, trimmed to the samples actually recorded (all of them:
        not for a ring that came round)."""
        if self.count > self.capacity:
            raise ValueError("the recorder's rows are a ring: the first rows are gone")
        return self.rows(0, self.count)
