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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.trial.folder import DOCUMENTS, TABLE_FORMATS, TABLES
from controller.validation import ConfigError

#: Columns of the simulated patient's truth that every trial figure draws against (a
#: trial on a real board has none: ``fes run`` writes them only from the emulator).
TRUTH_COLUMNS = ("ankle_angle_deg", "toe_clearance_mm", "ta_activation")
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


def _column(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) if v else np.nan for v in values])
    except ValueError:  # a text column (the phase)
        return np.array(values)


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
    return TrialData(
        folder=folder,
        columns=columns,
        events=events,
        summary=json.loads((folder / "summary.json").read_text()),
        config=json.loads((folder / "config.json").read_text()),
    )


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a CSV table; a ``ConfigError`` naming the file and the
    line if it is empty or a row does not have the header's number of fields."""
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
    header, rows = _table(folder / "samples.csv")
    cells = list(zip(*rows, strict=True)) or [() for _ in header]
    columns = {name: _column(list(col)) for name, col in zip(header, cells, strict=True)}
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


def _read_parquet(
    folder: Path,
) -> tuple[dict[str, np.ndarray], tuple[tuple[float, str, str], ...]]:
    """The tables of a ``--format parquet`` trial, as ``_read_csv`` gives them: numbers as
    floats (NaN for a missing cell), names (the phase) as text."""
    from controller.trial.parquet import pyarrow_modules

    pa, pq = pyarrow_modules()
    samples = pq.read_table(folder / "samples.parquet")
    columns = {}
    for field, column in zip(samples.schema, samples.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            columns[field.name] = np.array([v or "" for v in column.to_pylist()])
        else:
            columns[field.name] = column.to_numpy().astype(float)
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
