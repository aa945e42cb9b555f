"""The files of one trial: opened before the loop, streamed while it runs, completed
after it.

``TrialFiles.open`` writes ``config.json`` (atomically) and opens the streamed files with
their headers: ``samples.csv`` (the recorded columns, then the back end's truth columns
when it has them for every sample as it goes, as the simulator does), ``events.csv`` and,
on a clock other than the virtual one, ``timing.csv``. Their sinks run in the log
writer process (``controller.trial.writer``). ``complete`` writes what only the end of
the trial knows, each file whole and atomically: ``events.csv`` sorted with every event
(also true events a back end only reports at the end), ``samples.csv`` again when the
back end's truth columns only arrived at the end (the board emulator's debug frames),
and last ``summary.json``: a folder that has it holds a finished trial.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controller.eventlog import EventRows
from controller.outputs import write_all
from controller.sharedmem import ring_rows
from controller.trial.files import (
    EVENTS_HEADER,
    CsvStream,
    EventStream,
    header,
    write_events,
)
from controller.trial.folder import TrialFolder
from controller.trial.parquet import (
    ParquetEventStream,
    ParquetParts,
    event_table,
    sample_schema,
    sample_table,
    write_table_atomically,
)
from controller.trial.parts import TrialParts
from controller.trial.writer import LogSink, Tail

TIMING_COLUMNS = ("lateness_us", "latency_us", "skipped_periods")


class TruthRows:
    """Per-sample truth the back end writes as the loop runs (the simulated limb's, into
    ``storage``: one row per sample, ``columns`` wide), published with the recorder's
    rows, so the writer streams it beside them."""

    def __init__(self, storage: np.ndarray, columns: Sequence[str], rows: Tail) -> None:
        self.storage = storage
        self.columns = tuple(columns)
        self._rows = rows

    def published(self) -> int:
        return self._rows.published()

    def prefault(self) -> None:
        """Touch every page of the storage now (see ``DeadlineMonitor.prefault``)."""
        self.storage.fill(0.0)

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        block = ring_rows(self.storage, start, stop)  # a long trial's are a ring
        return {name: block[:, i] for i, name in enumerate(self.columns)}


@dataclass(frozen=True, slots=True)
class BackEndTruth:
    """What a back end adds to the streamed files: per-sample truth written as the loop
    runs, and true events known before the trial."""

    rows: TruthRows | None = None
    events: Sequence[tuple[float, str]] = field(default_factory=tuple)


class TrialFiles:
    """The open files of one trial; see the module docstring."""

    def __init__(
        self,
        folder: TrialFolder,
        sinks: list[LogSink],
        tails: list[Tail],
        sample_columns: tuple[str, ...],
        fds: list[int],
        parquet: dict[str, ParquetParts] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.sinks = sinks
        self.tails = tails
        self.sample_columns = sample_columns
        self._fds = fds
        self._parquet = parquet
        self._config = config

    @classmethod
    def open(
        cls,
        folder: TrialFolder,
        parts: TrialParts,
        truth: BackEndTruth = BackEndTruth(),
        data_format: str = "csv",
    ) -> TrialFiles:
        """Open the streamed files, as CSV or as Parquet parts, then write ``config.json``
        (``OutputError`` if any cannot be written). ``config.json`` comes last, so a trial
        folder that has it has every streamed file too, whenever the trial is killed."""
        from controller.clock import VirtualClock

        config = parts.config.model_dump()
        recorder = parts.recorder
        columns = tuple(recorder.index) + (truth.rows.columns if truth.rows else ())
        tails: list[Tail] = [recorder]
        if truth.rows is not None:
            tails.append(truth.rows)
        timed = parts.clock.kind != VirtualClock.kind
        if timed:
            tails.append(parts.deadlines)
        period_s = parts.source.sample_period_s
        if data_format == "parquet":
            samples = ParquetParts(folder, "samples.parquet", sample_schema(columns, config))
            events = ParquetParts(folder, "events.parquet", event_table([], config).schema)
            streams = {"samples.parquet": samples, "events.parquet": events}
            if timed:
                streams["timing.parquet"] = ParquetParts(
                    folder, "timing.parquet", sample_schema(TIMING_COLUMNS, config)
                )
            sinks: list[LogSink] = [
                samples, ParquetEventStream(events, recorder, truth.events, period_s),
                *[p for name, p in streams.items() if name == "timing.parquet"],
            ]
            folder.write_json("config.json", config)
            return cls(folder, sinks, tails, columns, [], streams, config)
        fds: list[int] = []

        def create(name: str, first_line: bytes) -> int:
            fds.append(folder.create(name, first_line))
            return fds[-1]

        try:
            sinks = [
                CsvStream(create("samples.csv", header(columns)), columns,
                          folder.file("samples.csv")),
                EventStream(create("events.csv", EVENTS_HEADER), recorder, truth.events,
                            period_s, path=folder.file("events.csv")),
            ]
            if timed:
                sinks.append(CsvStream(create("timing.csv", header(TIMING_COLUMNS)),
                                       TIMING_COLUMNS, folder.file("timing.csv")))
            folder.write_json("config.json", config)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return cls(folder, sinks, tails, columns, fds)

    @property
    def keeps_rows(self) -> bool:
        """Whether a sink keeps the rows it is handed for a while (a Parquet part)."""
        return self._parquet is not None

    def release(self) -> None:
        """Close this process's copies of the streamed files (the log writer process,
        which wrote them, has closed its own)."""
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def forget_streams(self) -> None:
        """The streamed files were closed by their sinks in this process."""
        self._fds = []

    def complete(
        self,
        columns: Mapping[str, np.ndarray],
        events: Sequence[tuple[float, str, str]],
        summary: Mapping[str, Any] | None,
    ) -> None:
        """Write the files only the end knows: events sorted and whole, the samples
        again if ``columns`` has columns the stream did not, then the summary (none:
        its figures could not be had, the trial's output failed)."""
        rewrite = bool(set(columns) - set(self.sample_columns))
        if self._parquet is not None:
            self._complete_parquet(columns, events, rewrite)
        else:
            self.folder.replace("events.csv", functools.partial(write_events, events))
            if rewrite:
                self.folder.replace("samples.csv", functools.partial(write_samples, columns))
        if summary is not None:
            self.folder.write_json("summary.json", summary)

    def _complete_parquet(
        self,
        columns: Mapping[str, np.ndarray],
        events: Sequence[tuple[float, str, str]],
        rewrite: bool,
    ) -> None:
        assert self._parquet is not None
        for name, parts in self._parquet.items():
            if name == "events.parquet":
                ordered = events if isinstance(events, EventRows) else sorted(events)
                write_table_atomically(event_table(ordered, self._config), parts.path)
                shutil.rmtree(parts.parts, ignore_errors=True)
            elif name == "samples.parquet" and rewrite:
                schema = sample_schema(list(columns), self._config)
                write_table_atomically(sample_table(schema, columns), parts.path)
                shutil.rmtree(parts.parts, ignore_errors=True)
            else:
                parts.merge()


def write_samples(columns: Mapping[str, np.ndarray], fd: int) -> None:
    """``samples.csv`` of ``columns`` (as long as the shortest) to ``fd``: rendered a
    ``CHUNK_ROWS`` piece at a time, as the stream writes it (a trial's text whole, and
    its numbers copied into one table, took some 400 bytes a sample at once)."""
    rows = min((len(col) for col in columns.values()), default=0)
    write_all(fd, header(list(columns)))
    if columns and rows:
        CsvStream(fd, list(columns)).write(0, {n: c[:rows] for n, c in columns.items()})
