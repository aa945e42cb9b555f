"""Writing a trial's files: ``samples.csv``, ``events.csv`` and ``summary.json``.

Formats are fixed (six decimals, names for phases and events, sorted JSON keys) so that
the same trial gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from controller.detect.events import PHASE_NAMES
from controller.trial.csvtext import FLOAT6, INTEGER, NAME, csv_body

#: Written as integers, as is the ``<channel>_stim_on`` flag of every further channel.
INTEGER_COLUMNS = frozenset({"heel_switch", "stim_on", "pulses", "skipped_periods"})


def _kind(name: str) -> int:
    if name == "phase":
        return NAME
    if name in INTEGER_COLUMNS or name.endswith("_stim_on"):
        return INTEGER
    return FLOAT6


def write_samples_csv(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """One row per sample; NaN (a missing value) is written as an empty field, also in
    the integer columns (a live trial can lack a truth row). The text is rendered by a
    compiled kernel (``controller.trial.csvtext``), byte for byte what ``%.6f`` and
    ``%d`` give."""
    rows = min((len(col) for col in columns.values()), default=0)
    values = np.empty((len(columns), rows))
    for i, col in enumerate(columns.values()):
        values[i] = np.asarray(col, dtype=np.float64)[:rows]
    kinds = np.array([_kind(name) for name in columns], dtype=np.int64)
    names = [PHASE_NAMES[p] for p in sorted(PHASE_NAMES)]
    with path.open("wb") as handle:
        handle.write((",".join(columns) + "\n").encode("utf-8"))
        if columns and rows:
            handle.write(csv_body(values, kinds, names))


def write_events_csv(path: Path, events: Iterable[tuple[float, str, str]]) -> None:
    """Rows ``time_s,source,event`` sorted by time, then source, then event."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("time_s,source,event\n")
        for t_s, source, event in sorted(events):
            handle.write(f"{t_s:.6f},{source},{event}\n")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Pretty, key-sorted JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
