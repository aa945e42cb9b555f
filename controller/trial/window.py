"""A long simulated trial's rows in a ring: memory for a window of rows, not the trial.

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
  will overwrite (the loop is faster than the writer: the trial waited for the writer
  at its end anyway); a writer that writes in this process (a sweep's trial, which
  writes its files after its loop otherwise) is told to write them.

Only a simulated trial on the virtual clock, written to CSV with no further sinks, and
longer than two windows is windowed (``window_rows``); all others keep every row, as
before: a real-time loop must never wait, a live trial's summary scores columns known
only at its end, and a Parquet part (or a caller's sink) may keep the rows it is
handed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from controller.trial.recorder import TrialRecorder, ring_rows
from controller.trial.scores import StreamedColumns
from controller.trial.writer import InlineWriter, LogWriter
from sim.limb import BLOCK_SAMPLES

#: Rows of the ring: 2**17 rows are 4.4 min at 500 Hz, 18 MB of a simulated trial's 18
#: columns.
WINDOW_ROWS = 2**17
#: Rows scored at a time (a block of the compiled loop is 4,096).
SCORE_ROWS = 2**15
#: How long the loop sleeps while it waits for the writer.
WAIT_S = 0.0005


def window_rows(n_samples: int) -> int | None:
    """Rows of the ring of a trial of ``n_samples``: None if it is too short to be
    windowed (two windows or fewer)."""
    return WINDOW_ROWS if n_samples > 2 * WINDOW_ROWS else None


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
        ``BLOCK_SAMPLES`` more: score the rows it would overwrite, and those waiting
        since ``SCORE_ROWS``; wait until the writer has written them."""
        started = time.perf_counter()
        overwritten = published + BLOCK_SAMPLES - self.rows  # rows before it are gone
        if published - self.scored >= SCORE_ROWS or overwritten > self.scored:
            self._score(published)
        writer = self._writer
        if isinstance(writer, InlineWriter) and writer.written < overwritten:
            writer.write_ready(published)
        elif writer is not None and writer.written < overwritten:
            waiting = time.perf_counter()
            while writer.written < overwritten and not writer.ended():
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
