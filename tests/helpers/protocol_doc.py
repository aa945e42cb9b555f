"""The example sessions of docs/protocol.md (section 11), byte for byte, as tests use
them: the document is the script, so a test and the specification cannot disagree."""

from __future__ import annotations

import re
from pathlib import Path

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def transcript_lines(start: str, end: str) -> list[tuple[str, bytes]]:
    """The ``H>B``/``B>H`` lines of the example between ``start`` and ``end``: each
    line's direction and bytes."""
    session = PROTOCOL_MD.read_text().split(start, 1)[1].split(end, 1)[0]
    return [
        (direction, bytes.fromhex(wire))
        for direction, wire in re.findall(r"^(H>B|B>H)  ([0-9a-f ]+) \|", session, flags=re.M)
    ]


def transcript(start: str, end: str) -> list[str]:
    """The same lines' bytes as hex text, in order."""
    return [data.hex(" ") for _, data in transcript_lines(start, end)]


#: The example session with a board of the newest version, and the one with a version 1
#: board.
NEWEST_SESSION = ("An example session", "A fault, as")
V1_SESSION = ("A board that speaks only version 1", "A STIM_SHAPED refused")
#: The FAULT frame of the example.
FAULT_EXAMPLE = ("A fault, as the board reports it", "A board that speaks only version 1")
