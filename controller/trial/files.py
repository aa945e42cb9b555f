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

#: Written as integers, as is the ``<channel>_stim_on`` flag of every further channel.
INTEGER_COLUMNS = frozenset({"heel_switch", "stim_on", "pulses", "skipped_periods"})


def _format_column(name: str, values: np.ndarray) -> np.ndarray:
    if name == "phase":
        names = np.array([PHASE_NAMES[p] for p in sorted(PHASE_NAMES)])
        return names[values.astype(int)]
    missing = np.isnan(values.astype(float))
    if name in INTEGER_COLUMNS or name.endswith("_stim_on"):
        text = np.char.mod("%d", np.where(missing, 0, values).astype(np.int64))
    else:
        text = np.char.mod("%.6f", values)
    text[missing] = ""
    return text


def write_samples_csv(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    """One row per sample; NaN (a missing value) is written as an empty field, also in
    the integer columns (a live trial can lack a truth row)."""
    formatted = [_format_column(name, np.asarray(col)) for name, col in columns.items()]
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(",".join(columns) + "\n")
        if formatted and formatted[0].size:
            rows = formatted[0].astype(object)
            for col in formatted[1:]:
                rows = rows + "," + col.astype(object)
            handle.write("\n".join(rows) + "\n")


def write_events_csv(path: Path, events: Iterable[tuple[float, str, str]]) -> None:
    """Rows ``time_s,source,event`` sorted by time, then source, then event."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("time_s,source,event\n")
        for t_s, source, event in sorted(events):
            handle.write(f"{t_s:.6f},{source},{event}\n")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Pretty, key-sorted JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
