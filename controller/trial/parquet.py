"""A trial's files as Parquet (``--format parquet``): the same rows as the CSV files,
typed, with units and the trial's config in the file's metadata.

``samples.parquet`` and ``timing.parquet`` have one column per CSV column: numbers as
float64 (full precision, not six decimals), integer columns as int64 (null where the
CSV has an empty field), the phase as a categorical of its names; each column's unit
(from its name: ``_rad_s`` rad/s, ``_ma`` mA, ...) is in its field metadata under
``unit``, the trial's config (``config.json``) in the file metadata under
``fes:config``. ``events.parquet`` has ``time_s``, ``source`` and ``event``.

Kill-safety: a Parquet file is readable only once its footer is written, at its end, so
the log writer writes each stream as parts: ``samples.parquet.partial/part-NNNNNN.parquet``,
one complete file for at most a second of wall time of rows (renamed into place whole).
When the trial ends, the parts are merged into ``samples.parquet`` (written beside and
renamed) and the parts folder is removed. After a kill the parts folder holds every
part written, each readable, and ``pandas.read_parquet`` or ``polars.read_parquet``
reads the folder as one table (docs/files.md).

pyarrow is an optional dependency (``pip install 'fes-timing[parquet]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller.eventlog import SOURCES as EVENT_ROW_SOURCES
from controller.eventlog import EventRows
from controller.events import EVENT_NAMES, Event
from controller.trial.csvtext import INTEGER, NAME
from controller.trial.files import EventSource, EventStream, column_kind, phase_names
from controller.trial.folder import PARTS_SUFFIX, TrialFolder
from controller.validation import ConfigError

FORMATS = ("csv", "parquet")
#: A part is written once the rows waiting for it span this much wall time.
PART_S = 1.0
#: Units by the ending of a column's name (the project puts units in names).
UNITS = (
    ("_rad_s", "rad/s"), ("_deg", "deg"), ("_mm", "mm"), ("_ma", "mA"), ("_us", "us"),
    ("_hz", "Hz"), ("_nm", "N m"), ("_n", "N"), ("_ms", "ms"), ("_s", "s"),
)
EVENT_COLUMNS = ("time_s", "source", "event")
SOURCES = list(EVENT_ROW_SOURCES)  # ["detected", "true"]


def pyarrow_modules() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``; a usage error naming the extra if missing."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(
            "--format parquet", ["needs pyarrow: pip install 'fes-timing[parquet]'"]
        ) from None
    # pyarrow imports pandas (where installed) on its first array, which takes about a
    # second: done here, when the command checks its options, not inside a trial.
    pyarrow.array([0.0])
    return pyarrow, pyarrow.parquet


def unit_of(name: str) -> str:
    """The unit a column's name ends in ('' for a flag, a count or a name)."""
    for suffix, unit in UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _field(pa: Any, name: str) -> Any:
    kind = column_kind(name)
    if kind == NAME:
        kind_type = pa.dictionary(pa.int8(), pa.string())
    elif kind == INTEGER:
        kind_type = pa.int64()
    else:
        kind_type = pa.float64()
    unit = unit_of(name)
    return pa.field(name, kind_type, metadata={"unit": unit} if unit else None)


def sample_schema(columns: Sequence[str], config: Mapping[str, Any] | None) -> Any:
    """The schema of ``samples.parquet`` (or ``timing.parquet``) with ``columns``."""
    pa, _ = pyarrow_modules()
    metadata = {"fes:config": json.dumps(config, sort_keys=True)} if config else None
    return pa.schema([_field(pa, name) for name in columns], metadata=metadata)


def sample_table(schema: Any, rows: Mapping[str, np.ndarray]) -> Any:
    """Rows (one array per column, NaN for missing) as a table of ``schema``."""
    pa, _ = pyarrow_modules()
    arrays = []
    names = pa.array(phase_names())
    for field in schema:
        values = np.asarray(rows[field.name], dtype=np.float64)
        missing = np.isnan(values)
        if pa.types.is_dictionary(field.type):
            codes = pa.array(np.where(missing, 0, values).astype(np.int8),
                             mask=missing if missing.any() else None)
            arrays.append(pa.DictionaryArray.from_arrays(codes, names))
        elif pa.types.is_integer(field.type):
            with np.errstate(invalid="ignore"):
                whole = values.astype(np.int64)  # truncated, as the CSV writes it
            arrays.append(pa.array(whole, mask=missing if missing.any() else None))
        else:
            arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, schema=schema)


def event_table(events: Sequence[tuple[float, str, str]], config: Mapping[str, Any] | None) -> Any:
    """``events.parquet`` rows, in the order given (source and event as categoricals of
    fixed names, built without pyarrow's compute functions, whose first use takes a
    second)."""
    pa, _ = pyarrow_modules()
    metadata = {"fes:config": json.dumps(config, sort_keys=True)} if config else None
    categorical = pa.dictionary(pa.int8(), pa.string())
    schema = pa.schema([
        pa.field("time_s", pa.float64(), metadata={"unit": "s"}),
        pa.field("source", categorical),
        pa.field("event", categorical),
    ], metadata=metadata)
    event_names = sorted(EVENT_NAMES.values())
    source_code = {name: i for i, name in enumerate(SOURCES)}
    event_code = {name: i for i, name in enumerate(event_names)}
    if isinstance(events, EventRows):  # arrays already, in these codes' order
        times, sources, names = (pa.array(events.times_s, type=pa.float64()),
                                 pa.array(events.sources, type=pa.int8()),
                                 pa.array(events.names, type=pa.int8()))
    else:
        times = pa.array([e[0] for e in events], type=pa.float64())
        sources = pa.array([source_code[e[1]] for e in events], type=pa.int8())
        names = pa.array([event_code[e[2]] for e in events], type=pa.int8())
    columns = [
        times,
        pa.DictionaryArray.from_arrays(sources, pa.array(SOURCES)),
        pa.DictionaryArray.from_arrays(names, pa.array(event_names)),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def write_table_atomically(table: Any, path: Path) -> None:
    """``table`` as the Parquet file ``path``, written beside it and renamed."""
    from controller.outputs import temporary_path, writing

    _, pq = pyarrow_modules()
    temporary = temporary_path(path)
    with writing(path):
        try:
            pq.write_table(table, temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def write_in_memory(table: Any) -> None:
    """A part of ``table`` twice, written as ``ParquetParts`` writes a part, into memory:
    the first part of a process sets up pyarrow's writer (a few ms, measured in a forked
    writer: 4 ms for its first part, under 1 ms for the next), which the log writer does
    before its first rows (``controller.trial.writer``)."""
    pa, pq = pyarrow_modules()
    pq.write_table(pa.concat_tables([table, table]), pa.BufferOutputStream())


class ParquetParts:
    """A log sink writing the rows of ``schema``'s columns as Parquet parts into
    ``folder/<name>.partial/`` (see the module docstring); ``merge`` makes the file."""

    def __init__(self, folder: TrialFolder, name: str, schema: Any) -> None:
        self.name = name
        self.path = folder.file(name)
        self.parts = folder.file(name + PARTS_SUFFIX)
        self.schema = schema
        self._waiting: list[Any] = []
        self._since = time.monotonic()
        self._count = 0
        from controller.outputs import writing

        with writing(self.parts):
            self.parts.mkdir()

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        self.append(sample_table(self.schema, rows))

    def warm_up(self) -> None:
        """A part of made-up rows (a number and a missing value in every column),
        written into memory (``write_in_memory``)."""
        made_up = {name: np.array([0.0, np.nan]) for name in self.schema.names}
        write_in_memory(sample_table(self.schema, made_up))

    def append(self, table: Any) -> None:
        """Keep ``table``'s rows for the next part; write it if a second has passed."""
        if table.num_rows:
            self._waiting.append(table)
        if time.monotonic() - self._since >= PART_S:
            self._write_part()

    def close(self) -> None:
        self._write_part()

    def _write_part(self) -> None:
        self._since = time.monotonic()
        if not self._waiting:
            return
        pa, _ = pyarrow_modules()
        table = pa.concat_tables(self._waiting)
        self._waiting = []
        self._count += 1
        write_table_atomically(table, self.parts / f"part-{self._count:06d}.parquet")

    def merge(self) -> None:
        """The parts as one file ``name`` (an empty one if there are none); the parts
        folder is removed."""
        merge_parts(self.parts, self.path, self.schema)


#: Rows of a row group of a merged file: the parts are read and written that many rows
#: at a time, so merging a long trial's parts holds a row group, not the trial.
MERGE_ROWS = 2**17


def merge_parts(parts: Path, path: Path, schema: Any) -> None:
    """Every part in ``parts`` (in name order) as the one file ``path`` (written beside
    and renamed), in row groups of ``MERGE_ROWS`` rows (the last one fewer); ``parts`` is
    removed afterwards."""
    from controller.outputs import temporary_path, writing

    pa, pq = pyarrow_modules()
    files = sorted(parts.glob("part-*.parquet")) if parts.is_dir() else []
    temporary = temporary_path(path)
    with writing(path):
        try:
            with pq.ParquetWriter(temporary, schema) as out:
                waiting: list[Any] = []
                rows = 0
                for name in files:
                    table = pq.read_table(name, schema=schema)
                    waiting.append(table)
                    rows += table.num_rows
                    while rows >= MERGE_ROWS:
                        whole = pa.concat_tables(waiting)
                        out.write_table(whole.slice(0, MERGE_ROWS), row_group_size=MERGE_ROWS)
                        rest = whole.slice(MERGE_ROWS)
                        waiting, rows = [rest], rest.num_rows
                if rows or not files:
                    table = pa.concat_tables(waiting) if waiting else schema.empty_table()
                    out.write_table(table, row_group_size=MERGE_ROWS)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    shutil.rmtree(parts, ignore_errors=True)


class ParquetEventStream(EventStream):
    """``EventStream``'s sorted events as parts of ``events.parquet``."""

    def __init__(
        self,
        parts: ParquetParts,
        detected: EventSource,
        true_events: Sequence[tuple[float, str]],
        period_s: float,
    ) -> None:
        super().__init__(-1, detected, true_events, period_s, path=parts.path)
        self._parts = parts
        metadata = parts.schema.metadata or {}
        config = metadata.get(b"fes:config")
        self._config = json.loads(config) if config else None

    def _emit(self, events: list[tuple[float, str, str]]) -> None:
        self._parts.append(event_table(events, self._config))

    def warm_up(self) -> None:
        """A part of a made-up event, written into memory (``write_in_memory``)."""
        write_in_memory(event_table([(0.0, SOURCES[0], EVENT_NAMES[Event.HEEL_STRIKE])],
                                    self._config))

    def close(self) -> None:
        try:
            self._flush(self._rows * self._period_s)
        finally:
            self._detected.stop_reading_events()
        self._parts.close()
