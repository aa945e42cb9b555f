"""``--require`` checks on summary figures, for CI: ``"clearance.toe_drag_events<=2"``.

A check is a dotted figure name (see ``controller.trial.figures``), an operator
(``<=``, ``<``, ``>=``, ``>``, ``==``, ``!=``) and a number, or for ``==`` and ``!=`` also
a word (``"stopped_by==duration"``). A figure that is ``null`` fails every check: a
figure that could not be measured cannot be shown to be good. A name that is not in the
summary is a usage error naming it, not a failed check: ``fes sim`` and ``fes sweep`` check
the names against a blank summary of each trial's config before any trial runs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.errors import ConfigError
from controller.trial.figures import Figure, is_number, lookup

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
SOURCE = "--require"
# The value may be empty, so that ``x<=`` is ``<=`` with no value, not ``<`` with the
# value ``=``.
_CHECK = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One check: the figure ``name`` compared with ``limit`` by ``op``; ``written`` is
    the limit as the user wrote it, which messages repeat (``1234567``, not the
    ``1.23457e+06`` of a float's short form)."""

    name: str
    op: str
    limit: float | str
    written: str = ""

    def __str__(self) -> str:
        limit = self.written or (f"{self.limit!r}" if isinstance(self.limit, float)
                                 else self.limit)
        return f"{self.name}{self.op}{limit}"

    def failure(self, figures: Mapping[str, Figure]) -> str | None:
        """Why ``figures`` fail this check, or ``None`` if they pass."""
        value = lookup(figures, self.name, SOURCE)
        if value is None:
            return f"{self} failed: {self.name} is null (not measured)"
        if isinstance(self.limit, str):
            passed = OPERATORS[self.op](str(value).lower(), self.limit.lower())
        elif is_number(value):
            passed = OPERATORS[self.op](value, self.limit)
        else:
            raise ConfigError(SOURCE, [f"{self}: {self.name} is {value!r}, not a number"])
        return None if passed else f"{self} failed: {self.name} = {value}"


def parse_requirement(text: str) -> Requirement:
    """A check from its text; a ``ConfigError`` naming the text if it is malformed."""
    match = _CHECK.match(text)
    if match is None:
        raise ConfigError(
            SOURCE,
            [f"{text!r}: expected FIGURE OP VALUE, e.g. clearance.toe_drag_events<=2 "
             f"(operators {' '.join(OPERATORS)})"],
        )
    name, op, raw = match.groups()
    if not raw:
        raise ConfigError(SOURCE, [f"{text!r}: {op} needs a value after it, got none"])
    try:
        limit: float | str = float(raw)
    except ValueError:
        if op not in ("==", "!="):
            raise ConfigError(
                SOURCE, [f"{text!r}: {op} needs a number, got {raw!r}"]
            ) from None
        limit = raw
    if limit != limit:  # NaN: equal to nothing, below and above nothing
        raise ConfigError(SOURCE, [
            f"{text!r}: {raw!r} is not a number (NaN): the check could never be met "
            "(or, with !=, never fail)"])
    return Requirement(name, op, limit, raw)


def parse_requirements(texts: list[str] | None) -> list[Requirement]:
    """Every ``--require`` option parsed, all malformed ones named at once."""
    checks, problems = [], []
    for text in texts or []:
        try:
            checks.append(parse_requirement(text))
        except ConfigError as err:
            problems += err.problems
    if problems:
        raise ConfigError(SOURCE, problems)
    return checks


def unknown_names(checks: Sequence[Requirement], figures: Mapping[str, Figure]) -> list[str]:
    """A problem for each check whose figure ``figures`` cannot have (the names of a
    blank summary of the trial's config: ``simulated.blank_summary``), with close names."""
    problems = []
    for check in checks:
        try:
            lookup(figures, check.name, SOURCE)
        except ConfigError as err:
            problems += err.problems
    return problems


def failures(checks: list[Requirement], figures: Mapping[str, Figure]) -> list[str]:
    """The message of every failed check, in the order given."""
    return [msg for check in checks if (msg := check.failure(figures)) is not None]
