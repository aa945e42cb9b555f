"""A finished trial read back from its folder, and its signals cut into strides.

A stride runs from one true heel strike to the next and is shown on a 0-100 % gait-cycle
axis (stride-normalised): stance first, toe off at about 60 %, swing to 100 %. Events are
placed on that axis by the stride they fall in, so a detected heel strike a little
early shows near 100 % and one a little late near 0 %.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller import csvcolumns
from controller.progress import progress
from controller.trial.folder import DOCUMENTS, TABLE_FORMATS, TABLES
from controller.validation import ConfigError

#: Columns of the simulated patient's truth that every trial figure draws against (a
#: trial on a real board has none: ``fes run`` writes them only from the emulator).
TRUTH_COLUMNS = ("ankle_angle_deg", "toe_clearance_mm", "ta_activation")
#: The columns of the samples the trial figures draw: the only ones read (the phase, the
#: pulses, the patient's other truth are not).
FIGURE_COLUMNS = ("time_s", "gyro_rad_s", "stim_on", "amplitude_ma", *TRUTH_COLUMNS)
#: ``samples.csv`` is read this many bytes at a time (about 57,000 rows of a simulated
#: trial), so that memory holds the wanted columns as numbers and one block as text.
READ_BLOCK_BYTES = csvcolumns.BLOCK_BYTES
#: ``cycle_extremes`` places this many samples on the cycle at a time.
EXTREMES_BLOCK = 1 << 16
CYCLE_POINTS = 201  # resolution of the normalised gait cycle
CYCLE_PERCENT = np.linspace(0.0, 100.0, CYCLE_POINTS)


@dataclass(frozen=True)
class TrialData:
    """Columns of ``samples.csv``, events of ``events.csv``, the summary and config."""

    folder: Path
    columns: Mapping[str, np.ndarray]
    events: tuple[tuple[float, str, str], ...]  # (time_s, source, event)
    summary: Mapping[str, Any]
    config: Mapping[str, Any]

    def times(self, source: str, event: str) -> np.ndarray:
        """Event times of one source (``true`` or ``detected``) and kind, in seconds."""
        return np.array([t for t, s, e in self.events if s == source and e == event])

    @property
    def heel_strikes_s(self) -> np.ndarray:
        """True heel strikes: the stride boundaries."""
        return self.times("true", "heel_strike")

    @property
    def strides(self) -> int:
        """Complete strides recorded."""
        return max(0, self.heel_strikes_s.size - 1)

    def title(self) -> str:
        """``patient moderate, seed 0, 60 s``: what a figure is of."""
        sim = self.config.get("sim", {})
        duration = self.summary.get("duration_s")
        length = f", {duration:g} s" if isinstance(duration, int | float) else ""
        return f"patient {sim.get('patient', '?')}, seed {sim.get('seed', '?')}{length}"


def _table_format(folder: Path) -> str | None:
    """The format ``folder`` holds both tables in (CSV first), or None."""
    return next((fmt for fmt in TABLE_FORMATS
                 if all((folder / f"{table}.{fmt}").is_file() for table in TABLES)), None)


def _missing(folder: Path) -> list[str]:
    """The files of a trial that ``folder`` lacks (the tables named as CSV)."""
    tables = [] if _table_format(folder) is not None else [f"{t}.csv" for t in TABLES]
    return [name for name in (*tables, *DOCUMENTS) if not (folder / name).is_file()]


def is_trial(folder: Path) -> bool:
    """True if ``folder`` holds every file of a trial (its tables as CSV or Parquet)."""
    return not _missing(folder)


def load_trial(folder: Path) -> TrialData:
    """Read a trial folder; a usage error naming the folder if files are missing."""
    missing = _missing(folder)
    if missing:
        raise ConfigError(str(folder), [f"not a trial folder: no {', '.join(missing)}"])
    read = _read_parquet if _table_format(folder) == "parquet" else _read_csv
    columns, events = read(folder)
    if absent := [name for name in TRUTH_COLUMNS if name not in columns]:
        raise ConfigError(str(folder), [
            f"no ground truth ({', '.join(absent)} not in its samples): a trial on a real "
            "board; fes report draws a trial against the simulated patient's truth (fes "
            "sim, or fes run on fes board-emulator without --no-truth)"])
    if absent := [name for name in FIGURE_COLUMNS if name not in columns]:
        raise ConfigError(str(folder), [f"samples: no column {', '.join(absent)}"])
    if columns["time_s"].size == 0:  # a trial ended before its first sample was written
        raise ConfigError(str(folder), ["samples: no rows after the header: nothing to draw"])
    return TrialData(
        folder=folder,
        columns=columns,
        events=events,
        summary=json.loads((folder / "summary.json").read_text()),
        config=json.loads((folder / "config.json").read_text()),
    )


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a (small) CSV table; a ``ConfigError`` naming the file and
    the line if it is empty or a row does not have the header's number of fields."""
    with path.open(encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ConfigError(str(path.parent), [f"{path.name}: empty file"])
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ConfigError(str(path.parent), [
                f"{path.name}: line {line} has {len(row)} fields, the header {len(header)}"])
    return header, rows


def _read_csv(folder: Path) -> tuple[dict[str, np.ndarray], tuple[tuple[float, str, str], ...]]:
    columns = _read_samples_csv(folder / "samples.csv", FIGURE_COLUMNS)
    header, rows = _table(folder / "events.csv")
    if absent := [name for name in ("time_s", "source", "event") if name not in header]:
        raise ConfigError(str(folder), [f"events.csv: no column {', '.join(absent)}"])
    at = [header.index(name) for name in ("time_s", "source", "event")]
    events = []
    for line, row in enumerate(rows, start=2):
        try:
            events.append((float(row[at[0]]), row[at[1]], row[at[2]]))
        except ValueError:
            raise ConfigError(str(folder), [
                f"events.csv: line {line}: time_s {row[at[0]]!r} is not a number"]) from None
    return columns, tuple(events)


def _read_samples_csv(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The columns ``names`` of ``samples.csv`` that it has, as floats (NaN for an empty
    cell), in the file's order, read a block at a time by ``controller.csvcolumns``:
    every row is checked for the header's number of fields and only the wanted cells
    are converted. A 3,000 s trial at 1 kHz (443 MB) is read in 0.6 times its size of
    memory, the seven columns as numbers being 0.38 of it; reading every cell into
    Python strings took 10.6 times its size (docs/cli.md)."""

    def choose(header: list[str]) -> list[str]:
        return sorted((name for name in names if name in header), key=header.index)

    with progress(path.stat().st_size, f"reading {path.name}", "B",
                  unit_scale=True) as shown:
        try:
            return csvcolumns.read_columns(path, choose, exact_fields=True,
                                           strip_cells=False, on_bytes=shown.advance,
                                           block_bytes=READ_BLOCK_BYTES)
        except csvcolumns.CsvProblem as problem:
            raise ConfigError(str(path.parent), [_described(path, problem)]) from None


def _described(path: Path, problem: csvcolumns.CsvProblem) -> str:
    """What is wrong with ``samples.csv``, as the report says it."""
    where = f"{path.name}: line {problem.line}"
    match problem:
        case csvcolumns.NoHeader():
            return f"{path.name}: empty file"
        case csvcolumns.FieldCount(fields=fields, expected=expected):
            return f"{where} has {fields} fields, the header {expected}"
        case csvcolumns.NotUtf8(error=error):
            return f"{where}: not UTF-8 text ({error.reason})"
        case csvcolumns.NotANumber(cell=cell):
            return f"{where}: {cell!r} is not a number"
        case csvcolumns.Malformed(error=error):
            return f"{where}: {error}"
    return f"{where}: {problem}"


def _read_parquet(
    folder: Path,
) -> tuple[dict[str, np.ndarray], tuple[tuple[float, str, str], ...]]:
    """The tables of a ``--format parquet`` trial, as ``_read_csv`` gives them: the
    columns the figures draw as floats (NaN for a missing cell)."""
    from controller.trial.parquet import pyarrow_modules

    _, pq = pyarrow_modules()
    path = folder / "samples.parquet"
    present = set(pq.read_schema(path).names)
    samples = pq.read_table(path, columns=[n for n in FIGURE_COLUMNS if n in present])
    columns = {name: column.to_numpy().astype(float)
               for name, column in zip(samples.column_names, samples.columns, strict=True)}
    rows = pq.read_table(folder / "events.parquet").to_pylist()
    events = tuple((float(r["time_s"]), str(r["source"]), str(r["event"])) for r in rows)
    return columns, events


def stride_matrix(data: TrialData, values: np.ndarray) -> np.ndarray:
    """One row per complete stride: ``values`` (a signal of the trial, one per sample)
    resampled on ``CYCLE_PERCENT``."""
    t = data.columns["time_s"]
    values = np.asarray(values, dtype=float)
    hs = data.heel_strikes_s
    rows = [
        np.interp(start + CYCLE_PERCENT / 100.0 * (end - start), t, values)
        for start, end in itertools.pairwise(hs)
    ]
    return np.array(rows).reshape(len(rows), CYCLE_POINTS)


def cycle_position(data: TrialData, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each time inside a complete stride: the stride's index and the % of its cycle."""
    hs = data.heel_strikes_s
    if hs.size < 2 or times_s.size == 0:
        return np.array([], dtype=int), np.array([])
    index = np.searchsorted(hs, times_s, side="right") - 1
    inside = (index >= 0) & (index < hs.size - 1)
    index = index[inside]
    start, end = hs[index], hs[index + 1]
    return index, (times_s[inside] - start) / (end - start) * 100.0


def cycle_extremes(data: TrialData, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point of ``CYCLE_PERCENT``: the least and the greatest of ``values`` (a
    signal of the trial, one per sample) over every sample of every complete stride that
    falls nearest that point. A min/max decimation of all the samples to the 201 points
    of the cycle axis: a spike of one sample in one stride shows, where ``stride_matrix``
    (an interpolation at those points) may step over it. NaN where no sample falls."""
    t = data.columns["time_s"]
    hs = data.heel_strikes_s
    low, high = np.full(CYCLE_POINTS, np.nan), np.full(CYCLE_POINTS, np.nan)
    if hs.size < 2:
        return low, high
    first, last = np.searchsorted(t, [hs[0], hs[-1]], side="left")
    lengths, values = np.diff(hs), np.asarray(values, dtype=float)
    for at in range(first, last, EXTREMES_BLOCK):  # a block at a time: bounded memory
        block = slice(at, min(at + EXTREMES_BLOCK, last))
        index = np.searchsorted(hs, t[block], side="right") - 1
        cycle = (t[block] - hs[index]) / lengths[index]
        points = np.rint(cycle * (CYCLE_POINTS - 1)).astype(np.intp)
        np.fmin.at(low, points, values[block])
        np.fmax.at(high, points, values[block])
    return low, high
