"""A long trial's rows in a ring: memory for a window of rows, not the trial.

Every trial records its samples into shared arrays (``TrialRecorder``, the limb's truth
rows): the log writer streams them to the files and the summary scores the columns at
the end. Sized for the whole trial, that is about 144 bytes a sample of a simulated
trial (18 columns of 8 bytes), 260 MB an hour at 500 Hz: a 20,000 s ``fes sim``
peaked at 1.7 GB. A long simulated trial's arrays hold ``WINDOW_ROWS`` rows instead,
as a ring (sample k at row k modulo ``WINDOW_ROWS``: the compiled loop's recorder row
and the limb's truth row), and after each block of the compiled loop a ``RowWindow``

* scores the rows published since the last time into ``StreamedColumns`` (the same
  figures as from the whole columns, bit for bit: ``controller.trial.scores``), at the
  latest before the ring comes round to them;
* lets the loop go on only once the log writer has written the rows the next block
  will overwrite, and the stream of ``events.csv`` has read the detected events it
  could overwrite (the loop is faster than the writer: the trial waited for the writer
  at its end anyway); a writer that writes in this process (a sweep's trial, which
  writes its files after its loop otherwise) is told to write them.

The recorder's table of detected events for the stream is a ring as well
(``event_ring_rows``: the events a ring of rows could hold, and two blocks' worth of the
most a block can detect), so that nothing of the recorder grows with the trial.

A paced loop (``fes sim --realtime``, ``fes run``) must never wait for the writer, nor
spend its periods scoring: a long one records into rings of ``WINDOW_ROWS`` rows as
well (its deadline accounting and detected events too), and ``StreamedScores``, a sink
of the log writer process, scores the rows there as the writer hands them on (the
trial's figures per sample, and its lateness and latency in whole nanoseconds for their
exact percentiles: counted per bucket in memory of a bound, spilled to a file in the
trial's folder that is read back at the end, ``controller.quantiles.SpilledCounts``),
and hands the figures back once the writer has ended. A writer that falls a whole ring
behind such a loop has lost rows (or a stream of events its events): a failure of the trial's output
(``controller.trial.writer``), never a wait.

A trial is windowed when it is longer than two windows (``window_rows``), in CSV or
Parquet (the writer hands a Parquet part copies of a ring's rows), except a simulated
trial on the virtual clock run by the Python loop (tests and benchmarks compare it with
the compiled one). The board emulator's per-sample truth cannot be windowed: its debug
frames arrive as the trial goes, but the driver keeps them until the end, where they are
matched to the rows, scored with them and written with them (``samples.csv`` again); a
long live trial does not ask the board for them (``ground_truth`` in the summary says
so).
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from controller.deadlines import PERCENTS, to_ns
from controller.detect.outbox import MAX_EVENTS
from controller.quantiles import SpilledCounts
from controller.sharedmem import ring_rows
from controller.trial.recorder import SAMPLES_PER_EVENT, TrialRecorder
from controller.trial.scores import StreamedColumns
from controller.trial.writer import InlineWriter, LogWriter
from sim.limb import BLOCK_SAMPLES

#: Rows of the ring: 2**17 rows are 4.4 min at 500 Hz (2.2 at 1 kHz), 18 MB of a
#: simulated trial's 18 columns; a paced loop's writer may fall that far behind.
WINDOW_ROWS = 2**17
#: Rows scored at a time (a block of the compiled loop is 4,096).
SCORE_ROWS = 2**15
#: How long the loop sleeps while it waits for the writer.
WAIT_S = 0.0005


#: The most detected events a block of the compiled loop can publish (``MAX_EVENTS`` a
#: sample): the room a loop on the virtual clock keeps in the ring of events.
BLOCK_EVENTS = BLOCK_SAMPLES * MAX_EVENTS


def window_rows(n_samples: int) -> int | None:
    """Rows of the ring of a trial of ``n_samples``: None if it is too short to be
    windowed (two windows or fewer)."""
    return WINDOW_ROWS if n_samples > 2 * WINDOW_ROWS else None


def event_ring_rows(rows: int) -> int:
    """Rows of the ring of detected events beside a ring of ``rows`` rows (the events a
    trial kept whole would have room for in as many samples, and at least two blocks'
    worth of ``BLOCK_EVENTS``: 32,768 events, 768 KiB, for ``WINDOW_ROWS``)."""
    return max(64 + rows // SAMPLES_PER_EVENT, 2 * BLOCK_EVENTS)


class RowWindow:
    """Scores ``recorder``'s rows and the limb's ``truth`` rows (row-major, columns
    ``truth_columns``), both rings of the same number of rows, as they are published,
    and holds the loop until the writer has written the rows it would overwrite (see the
    module docstring)."""

    def __init__(
        self,
        recorder: TrialRecorder,
        truth: np.ndarray,
        truth_columns: Sequence[str],
        scores: StreamedColumns,
    ) -> None:
        if truth.shape[0] != recorder.capacity or recorder.capacity <= BLOCK_SAMPLES:
            raise ValueError("the recorder's and the truth's rings must be as long, "
                             f"and longer than a block ({BLOCK_SAMPLES} rows)")
        if not recorder.events_ring or recorder.event_capacity <= BLOCK_EVENTS:
            raise ValueError("the recorder's detected events must be a ring of more than "
                             f"a block's ({BLOCK_EVENTS})")
        self.recorder = recorder
        self.truth = truth
        self.truth_columns = tuple(truth_columns)
        self.scores = scores
        self.rows = recorder.capacity
        self.scored = 0
        # Seconds of the loop's wall time spent here: scoring (which a trial that keeps
        # its rows does after its loop) and waiting for the writer.
        self.spent_s = 0.0
        self.waited_s = 0.0
        self._writer: LogWriter | None = None

    def attach(self, writer: LogWriter) -> None:
        """The log writer of the rows: a process streaming them, or one that writes them
        in this process (``InlineWriter``, a sweep's trial): told to write the rows a
        block would overwrite."""
        self._writer = writer

    def after_block(self, published: int) -> None:
        """The loop has published ``published`` rows; the next block writes up to
        ``BLOCK_SAMPLES`` more, and up to ``BLOCK_EVENTS`` detected events: score the
        rows it would overwrite, and those waiting since ``SCORE_ROWS``; wait until the
        writer has written them and the stream of events has read the events it could
        overwrite (which it reads as the writer hands it rows: every event is published
        before the rows of the sample it was detected at)."""
        started = time.perf_counter()
        overwritten = published + BLOCK_SAMPLES - self.rows  # rows before it are gone
        if published - self.scored >= SCORE_ROWS or overwritten > self.scored:
            self._score(published)
        # Events the stream must have read: the block may write event P + BLOCK_EVENTS
        # - 1 (P published), and the stream counts the one after its newest as being
        # written (``TrialRecorder.take_events``).
        recorder = self.recorder
        events_due = recorder.events_published() + BLOCK_EVENTS + 1 - recorder.event_capacity

        def behind() -> bool:
            assert writer is not None
            return writer.written < overwritten or recorder.events_read() < events_due

        writer = self._writer
        if isinstance(writer, InlineWriter) and behind():
            writer.write_ready(published)
        elif writer is not None and behind():
            waiting = time.perf_counter()
            while behind() and not writer.ended():
                time.sleep(WAIT_S)
            self.waited_s += time.perf_counter() - waiting
        self.spent_s += time.perf_counter() - started

    def finish(self, count: int) -> StreamedColumns:
        """Score the rows up to ``count`` not yet scored; the figures of all of them."""
        self._score(count)
        return self.scores

    def _score(self, stop: int) -> None:
        start = self.scored
        if stop <= start:
            return
        rows = self.recorder.rows(start, stop)
        block = ring_rows(self.truth, start, stop)
        rows |= {name: block[:, i] for i, name in enumerate(self.truth_columns)}
        self.scores.add(rows)
        self.scored = stop


class StreamedScores:
    """A log sink that scores the rows it is handed (``StreamedColumns``) and counts the
    lateness and latency of every sample in whole nanoseconds (the rows have the
    deadline accounting's ``lateness_s`` and ``latency_s``; their spill files in
    ``spill_dir``, the trial's folder), in the log writer process; ``result`` gives them
    back in the trial's process once the writer has closed its sinks (through a memory
    file made before the writer's fork), their figures' values found (``PERCENTS``)."""

    def __init__(self, columns: StreamedColumns, spill_dir: Path) -> None:
        self.columns = columns
        self.timing = (SpilledCounts(spill_dir), SpilledCounts(spill_dir))
        # What the writer names when a write fails (a full disk: ``LogWriter``).
        self.path = f"the spill file of the lateness and latency counts in {spill_dir}"
        self._spill_dir = spill_dir
        self._fd = os.memfd_create("fes-trial-scores", os.MFD_CLOEXEC)
        # The compiled pulse times, loaded (or compiled) before the writer forks: it
        # inherits their machine code (compiled there, they would map LLVM's).
        columns.warm_up()

    def warm_up(self) -> None:
        """(In the log writer, before its first rows.) Every path of ``write`` and of the
        figures at the end, on made-up values: the scores' (``StreamedColumns.warm_up``)
        and a throwaway count of lateness and latency, spilled to a file of its own in
        the trial's folder and settled (its file is gone once closed)."""
        self.columns.warm_up()
        spare = SpilledCounts(self._spill_dir)
        spare.add(to_ns(np.array([5e-5, 6e-5, -1e-6, 2e-2])))
        spare.settle(PERCENTS)

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        if first != self.columns.samples:
            raise ValueError(f"rows from {first}, after {self.columns.samples} scored")
        self.columns.add(rows)
        lateness = rows["lateness_s"]
        self.timing[0].add(to_ns(lateness[~np.isnan(lateness)]))
        self.timing[1].add(to_ns(rows["latency_s"]))

    def close(self) -> None:
        """Hand the figures to the trial's process (in the writer's, at its end)."""
        for counts in self.timing:
            counts.settle(PERCENTS)
        data = pickle.dumps((self.columns, self.timing), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(self._fd, view[offset:], offset)

    def result(
        self,
    ) -> tuple[StreamedColumns, tuple[SpilledCounts, SpilledCounts]] | None:
        """The figures of every row the writer scored (None if it never closed this
        sink: it failed, or fell behind the loop); the memory file is closed."""
        if self._fd < 0:
            return None
        try:
            size = os.fstat(self._fd).st_size
            chunks, offset = [], 0
            while offset < size:
                chunk = os.pread(self._fd, size - offset, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
        finally:
            os.close(self._fd)
            self._fd = -1
        if not size:
            return None
        columns, timing = pickle.loads(b"".join(chunks))
        return columns, timing

