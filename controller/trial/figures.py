"""A trial's summary as flat, dotted figure names: ``clearance.toe_drag_events``.

Sweeps tabulate, rank and check whatever ``summary.json`` holds, so nothing here names a
particular figure: nested blocks become dotted keys, scalars stay as they are, a block
that is ``null`` stays one ``null`` figure, and lists (for example the watchdog's
interventions) become one JSON text cell, kept but not comparable as a number.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from controller.errors import ConfigError

Figure = bool | int | float | str | None


def flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Figure]:
    """Every figure of ``summary`` under its dotted name, in sorted name order."""
    figures: dict[str, Figure] = {}
    for key in sorted(summary):
        value = summary[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            figures |= flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            figures[name] = json.dumps(value, sort_keys=True)
        else:
            figures[name] = value
    return figures


def is_number(value: Figure) -> bool:
    """True for an int or float figure (a bool is a flag, not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def lookup(figures: Mapping[str, Figure], name: str, source: str) -> Figure:
    """The figure called ``name``; a ``ConfigError`` naming it and close names if absent.
    A name inside a block that is null (``detector.recall`` of a trial whose detector
    block is null: nothing to score it against) is null: not measured, as the block."""
    if name in figures:
        return figures[name]
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        block = ".".join(parts[:end])
        if block in figures and figures[block] is None:
            return None
    close = difflib.get_close_matches(name, list(figures), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(source, [f"{name}: no such figure in summary.json{hint}"])


def numeric(figures: Mapping[str, Figure], name: str, source: str) -> float | None:
    """The figure ``name`` as a number (``None`` if it is null); an error if not a number."""
    value = lookup(figures, name, source)
    if value is None:
        return None
    if not is_number(value):
        raise ConfigError(source, [f"{name}: figure is {value!r}, not a number"])
    return float(value)  # type: ignore[arg-type]
