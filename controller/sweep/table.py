"""The results table of a sweep, ``results.csv``: one row per trial, in plan order.

Columns: ``trial`` (its index in the plan), ``dir`` (its folder under ``trials/``), the
swept parameters (as validated, so ``30`` for a float field reads ``30.0``), then every
summary figure, flattened (``controller.trial.figures``), in name order: whatever the
trials' summaries hold, also figures added after this module was written. Cells are
written the same way every time (``repr`` of floats, ``true``/``false``, empty for null),
so the same sweep gives the same bytes except in the wall-clock figures.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from controller.sweep.plan import PlannedTrial, parse_value
from controller.trial.figures import Figure, flatten

Row = dict[str, Figure]
#: Figures that measure the machine, not the trial: they differ between runs of the
#: same sweep. Everything else in the table is a function of the trial's config.
WALL_CLOCK_FIGURES = frozenset({"real_time_factor", "timing.warm_up_ms"})
LEAD_COLUMNS = ("trial", "dir")


def row_of(trial: PlannedTrial, summary: Mapping[str, object]) -> Row:
    """The table row of a finished trial."""
    row: Row = {"trial": trial.index, "dir": f"trials/{trial.key}"}
    return row | dict(trial.params) | flatten(summary)


def columns_of(parameters: Sequence[str], rows: Iterable[Row]) -> list[str]:
    """Lead columns, parameters, then every figure any row has, sorted by name."""
    fixed = [*LEAD_COLUMNS, *parameters]
    figures = sorted({name for row in rows for name in row} - set(fixed))
    return fixed + figures


def _cell(value: Figure) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_table(handle: IO[str], columns: Sequence[str], rows: Iterable[Row]) -> None:
    """Rows as CSV with the given columns (a missing figure is an empty cell)."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])


def write_parquet(path: Path, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """The table as Parquet (``--format parquet``): a column of numbers is float64 (int64
    if every value is a whole number), flags are booleans, text is text, a missing
    figure is null; written beside ``path`` and renamed."""
    from controller.trial.parquet import pyarrow_modules, write_table_atomically

    pa, _ = pyarrow_modules()
    arrays = []
    for name in columns:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            kind = pa.bool_()
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            kind = pa.int64()
        elif present and all(isinstance(v, int | float) and not isinstance(v, bool)
                             for v in present):
            kind = pa.float64()
            values = [None if v is None else float(v) for v in values]
        elif present:
            kind = pa.string()
            values = [None if v is None else _cell(v) for v in values]
        else:
            kind = pa.null()
        arrays.append(pa.array(values, type=kind))
    write_table_atomically(pa.Table.from_arrays(arrays, names=list(columns)), path)


def _parse_cell(text: str) -> Figure:
    if text == "":
        return None
    if text.startswith(("[", "{")):
        return text
    return parse_value(text)


def read_table(handle: IO[str]) -> list[Row]:
    """A table written by ``write_table``, cells back to numbers, flags and text."""
    return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(handle)]
