"""What ``fes detect`` tells the user about a recording beside its events.

The checks of a recording (``samplerows``, ``sampletimes``, ``gyrocolumn``,
``heelcolumn``, ``references``) refuse what cannot be read with a ``CsvError``
(``controller.detect.csvfiles``); what can be read, but maybe not as meant, they return
as a ``Note`` for the command to print once the events are written.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class Note(NamedTuple):
    """One line for the user: a ``note`` (worth checking: a unit, a rate, a row left
    out) or a ``warning`` (the sensor looks worn or read otherwise than said)."""

    kind: Literal["note", "warning"]
    text: str
