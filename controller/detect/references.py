"""Reference events checked against the recording they score.

A reference event outside the recording's time span (widened by the matching
tolerance) can never be matched: ``outside_note`` refuses a reference none of whose
events lies within the recording (``CsvError``: most likely it is in other units, ms
or sample numbers, or on another clock) and points out one some of whose events lie
outside (they count as missed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from controller.detect.csvfiles import CsvError
from controller.detect.notes import Note
from controller.events import Event


def outside_note(path: Path, truth: Sequence[tuple[float, Event]], t_s: np.ndarray,
                 tolerance_ms: float) -> Note | None:
    """``CsvError`` (naming ``path``, the reference file) when every event of ``truth``
    lies outside the recording dated ``t_s`` by more than ``tolerance_ms``; a note when
    some do; None when none does or there is nothing to compare."""
    if t_s.size == 0 or not truth:
        return None
    slack_s = tolerance_ms / 1000.0
    first, last = float(t_s[0]), float(t_s[-1])
    outside = sum(not first - slack_s <= t <= last + slack_s for t, _ in truth)
    if outside == 0:
        return None
    span = (f"the recording runs from {first:.6g} to {last:.6g} s, the reference events from "
            f"{min(t for t, _ in truth):.6g} to {max(t for t, _ in truth):.6g} s")
    if outside == len(truth):
        raise CsvError(
            f"{path}: no reference event lies within the recording ({span}): is its "
            "time_s in seconds, on the recording's clock (not in ms or sample numbers)?"
        )
    return Note("note", f"{outside} of {len(truth)} reference events lie outside the "
                f"recording ({span}); they count as missed.")
