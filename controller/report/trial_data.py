"""A finished trial read back from its folder, and its signals cut into strides.

A stride runs from one true heel strike to the next and is shown on a 0-100 % gait-cycle
axis (stride-normalised): stance first, toe off at about 60 %, swing to 100 %. Events are
placed on that axis by the stride they fall in, so a detected heel strike a little
early shows near 100 % and one a little late near 0 %.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from controller.progress import Progress, progress
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
READ_BLOCK_BYTES = 1 << 23
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
        _check_fields(path, line, len(row), len(header))
    return header, rows


def _check_fields(path: Path, line: int, fields: int, expected: int) -> None:
    if fields != expected:
        raise ConfigError(str(path.parent), [
            f"{path.name}: line {line} has {fields} fields, the header {expected}"])


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
    cell), read a block of ``READ_BLOCK_BYTES`` at a time: every row is checked for the
    header's number of fields, only the wanted cells are converted, and no Python object
    is made per row or per cell (``np.loadtxt``'s parser, the conversion of ``float``).
    The numbers go straight into one table sized from the file's length. A 3,000 s trial
    at 1 kHz (443 MB) is read in 0.6 times its size of memory, the seven columns as
    numbers being 0.38 of it; reading every cell into Python strings took 10.6 times
    its size (docs/cli.md)."""
    size = path.stat().st_size
    with path.open("rb") as handle, progress(
        size, f"reading {path.name}", "B", unit_scale=True
    ) as shown:
        first = handle.readline()
        shown.advance(len(first))
        header = next(csv.reader([_decoded(path, first, 1)]), None) if first else None
        if header is None:
            raise ConfigError(str(path.parent), [f"{path.name}: empty file"])
        wanted = sorted((header.index(name), name) for name in names if name in header)
        table = np.empty((len(wanted), 0))  # a row per column: each column contiguous
        rows = 0
        for text in _whole_lines(handle, shown):
            values = _parse_block(path, text, rows + 2, len(header), [i for i, _ in wanted])
            if rows + len(values) > table.shape[1]:  # first block: guess from its rows
                guess = round(len(values) * (size - len(first)) / len(text) * 1.02)
                grown = np.empty((len(wanted), max(guess, round(table.shape[1] * 1.25),
                                                   rows + len(values))))
                grown[:, :rows] = table[:, :rows]
                table = grown
            table[:, rows : rows + len(values)] = values.T
            rows += len(values)
    return {name: table[k, :rows] for k, (_, name) in enumerate(wanted)}


def _whole_lines(handle: BinaryIO, shown: Progress) -> Iterator[bytes]:
    """The rest of ``handle`` in blocks of whole lines (about ``READ_BLOCK_BYTES``), the
    last one ended by a newline if it was cut short of one."""
    rest = b""
    while block := handle.read(READ_BLOCK_BYTES):
        shown.advance(len(block))
        text = rest + block
        cut = text.rfind(b"\n") + 1
        if cut:
            yield text[:cut]
        rest = text[cut:]
    if rest:
        yield rest + b"\n"


def _parse_block(path: Path, text: bytes, line: int, fields: int, at: list[int]) -> np.ndarray:
    """The cells ``at`` of the rows in ``text`` (whole lines, the first being line
    ``line`` of the file), one row per line: a ``ConfigError`` naming the line whose
    number of fields is not the header's, or whose cell is not a number."""
    if b'"' in text or b"\r" in text:  # quoted cells, Windows lines: the csv module
        return _parse_rows(path, _decoded(path, text, line), line, fields, at)
    raw = np.frombuffer(text, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    commas = np.searchsorted(np.flatnonzero(raw == ord(",")), ends)
    counts = np.diff(commas, prepend=0) + 1
    counts[np.diff(ends, prepend=-1) == 1] = 0  # an empty line: no field (the csv module)
    if (bad := np.flatnonzero(counts != fields)).size:
        _check_fields(path, line + int(bad[0]), int(counts[bad[0]]), fields)
    try:  # the bytes as they are (decoding them first to a str takes 40 % longer)
        return np.loadtxt(io.BytesIO(text), dtype=float, delimiter=",", usecols=at,
                          comments=None, quotechar=None, ndmin=2, encoding="utf-8")
    except ValueError:  # an empty cell (NaN), one that is not a number, not UTF-8
        return _parse_rows(path, _decoded(path, text, line), line, fields, at)


def _decoded(path: Path, text: bytes, line: int) -> str:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line += text.count(b"\n", 0, exc.start)
        raise ConfigError(str(path.parent), [
            f"{path.name}: line {line}: not UTF-8 text ({exc.reason})"]) from None


def _parse_rows(path: Path, text: str, line: int, fields: int, at: list[int]) -> np.ndarray:
    """``_parse_block`` by the csv module, a row at a time (quoted or empty cells)."""
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=line):
        _check_fields(path, number, len(row), fields)
        try:
            rows.append([float(row[i]) if row[i] else np.nan for i in at])
        except ValueError:
            cell = next(row[i] for i in at if row[i] and not _is_number(row[i]))
            raise ConfigError(str(path.parent), [
                f"{path.name}: line {number}: {cell!r} is not a number"]) from None
    return np.array(rows, dtype=float).reshape(len(rows), len(at))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
