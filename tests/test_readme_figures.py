"""The figures the README's tour quotes from its `fes sim` are what that command prints.

``tests/test_readme.py`` checks that the README's commands parse; nothing checked that
the figures beside them are still what they print. This runs the tour's simulated walk
(``fes sim --patient severe``: 60 s, seed 0, about a second once compiled) as the README
writes it, and checks each piece of printout the README quotes for it in inline code
(`stimulation peroneal (pre_swing): 41 trains, ...`, `clearance: ... toe drags in ...`):
a change of behaviour that moves one of those figures, or a README edit that mistypes
one, fails here instead of misleading a reader.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from controller.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
TOUR_COMMAND = "fes sim --patient severe"
ELLIPSIS = " ... "


def tour_command(text: str) -> list[str]:
    """The README's tour line that runs ``TOUR_COMMAND``, as ``fes`` arguments without
    its trailing comment."""
    for line in text.splitlines():
        if line.startswith(TOUR_COMMAND):
            return shlex.split(line, comments=True)[1:]
    raise AssertionError(f"README.md has no line starting with {TOUR_COMMAND!r}")


def quoted_printout(text: str) -> list[list[str]]:
    """The printout the README quotes in the bullet about the tour's ``fes sim``: each
    inline-code span that reads like a line of it (a label, a colon, a figure), split
    at `` ... `` into the pieces that must appear in that order on one printed line."""
    bullet = re.search(r"^- `fes sim` .*?(?=^- |^\n)", text, re.MULTILINE | re.DOTALL)
    assert bullet is not None, "README.md has no bullet starting with '- `fes sim`'"
    spans = re.findall(r"`([^`]+)`", bullet.group(0).replace("\n", " "))
    spans = [re.sub(r"\s+", " ", s) for s in spans if ":" in s and re.search(r"\d", s)]
    return [span.split(ELLIPSIS) for span in spans]


def printed_in_order(pieces: list[str], lines: list[str]) -> bool:
    """Whether one of ``lines`` holds every piece, in order."""
    for line in lines:
        at = 0
        for piece in pieces:
            at = line.find(piece, at)
            if at < 0:
                break
            at += len(piece)
        else:
            return True
    return False


def test_the_readme_quotes_what_its_tour_trial_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    argv = tour_command(text)
    argv[argv.index("--out") + 1] = str(tmp_path / "severe")
    quotes = quoted_printout(text)
    assert len(quotes) >= 2, f"expected the README to quote the trial's printout, found {quotes}"

    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()

    wrong = [ELLIPSIS.join(q) for q in quotes if not printed_in_order(q, lines)]
    assert not wrong, (f"README.md quotes {wrong} for `fes {shlex.join(argv)}`, which printed:\n"
                       + "\n".join(lines))
