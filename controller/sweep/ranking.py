"""Ranking a sweep's parameter settings by an objective: fewest toe drags, then least
charge, for example.

An objective is a comma-separated list of figure names, each minimised unless written
``max:NAME`` (highest first) or ``abs:NAME`` (its absolute value minimised: closest to
zero first, for a signed error); settings are compared on the first figure, ties broken
by the next, then by plan order. A setting is one combination of swept values and
patient; its seeds are repeats, so each figure is averaged over them (``mean``), and
the worst seed is shown too (``worst``: the highest value of a minimised figure, the
lowest of a maximised one; of an ``abs:`` term, mean and worst are of the absolute
values). Null figures (not measured) are left out of both; a setting with none ranks last.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from controller.errors import ConfigError
from controller.sweep.plan import SEED_KEY
from controller.trial.figures import Figure, numeric

SOURCE = "--objective"
DEFAULT_OBJECTIVE = "clearance.toe_drag_events,stim.charge_uc_per_stride"
MAX_PREFIX = "max:"
ABS_PREFIX = "abs:"
#: The forms a term of --objective may take, for the messages that refuse another.
FORMS = ("NAME (lowest first), max:NAME (highest first) or abs:NAME (closest to zero "
         "first, for a signed error)")


@dataclass(frozen=True, slots=True)
class Term:
    """One figure of the objective and its direction: minimised, maximised
    (``maximise``) or minimised in absolute value (``absolute``)."""

    name: str
    maximise: bool = False
    absolute: bool = False

    def __str__(self) -> str:
        prefix = MAX_PREFIX if self.maximise else ABS_PREFIX if self.absolute else ""
        return prefix + self.name

    def value(self, figure: float | None) -> float | None:
        """What this term ranks of one trial's ``figure``: its absolute value for abs:."""
        return abs(figure) if self.absolute and figure is not None else figure

    def order(self) -> str:
        """Which end ranks first, in words."""
        return ("highest first" if self.maximise else "closest to zero first"
                if self.absolute else "lowest first")


@dataclass(frozen=True, slots=True)
class RankedSetting:
    """A setting's swept values, its trials and, per objective term, mean and worst."""

    params: dict[str, Figure]
    trials: tuple[int, ...]
    means: tuple[float | None, ...]
    worst: tuple[float | None, ...]


def parse_objective(text: str) -> tuple[Term, ...]:
    """``"a,max:b,abs:c"`` as terms; an empty or malformed name, or a prefix other than
    ``max:`` and ``abs:`` (one at most), is a usage error naming the allowed forms."""
    terms = []
    for part in (p.strip() for p in text.split(",")):
        prefix, _, name = part.rpartition(":")
        name = name.strip()
        if prefix.strip() + ":" not in (":", MAX_PREFIX, ABS_PREFIX) or not name or " " in name:
            raise ConfigError(SOURCE, [
                f"{text!r}: expected NAME[,NAME...], each written {FORMS}; got {part!r}"])
        terms.append(Term(name, maximise=prefix.strip() + ":" == MAX_PREFIX,
                          absolute=prefix.strip() + ":" == ABS_PREFIX))
    return tuple(terms)


#: Figures whose higher values are the better ones, by the end of their dotted name:
#: minimised, the worst setting ranks first.
HIGHER_IS_BETTER = ("recall", "precision", "toe_clearance_min_mm.median",
                    "toe_clearance_min_mm.p5")


def misread_terms(terms: Sequence[Term]) -> list[str]:
    """Notes on the terms whose order is easily misread: a signed timing error
    (``..._error_ms.median``, the median of detected or delivered minus true, negative
    = early; docs/files.md), whose lowest is its earliest, not its smallest; and a figure
    where higher is better (recall, precision, toe clearance) minimised."""
    notes = []
    for term in terms:
        if not term.maximise and term.name.endswith(HIGHER_IS_BETTER):
            notes.append(f"{term} is minimised: its lowest (worst) setting ranks first; "
                         f"write max:{term.name} to rank the highest first")
        if term.name.endswith("error_ms.median") and not term.absolute:
            first = "latest" if term.maximise else "earliest"
            size = term.name.removesuffix("median") + "p95"
            notes.append(
                f"{term} is a signed error (negative = early): the {first} setting ranks "
                f"first, not the one closest to the truth; write {ABS_PREFIX}{term.name} "
                f"to rank the closest first, or {size} (of the absolute error) to rank by "
                "the spread's size"
            )
    return notes


def check_terms(terms: Sequence[Term], figures: Mapping[str, Figure]) -> None:
    """A usage error naming any term that is not a numeric figure of ``figures``."""
    for term in terms:
        numeric(figures, term.name, SOURCE)


def group_keys(parameters: Sequence[str]) -> list[str]:
    """What defines a setting: every swept parameter but the seed."""
    return [p for p in parameters if p != SEED_KEY]


def _aggregate(values: list[float | None], term: Term) -> tuple[float | None, float | None]:
    known = [v for v in map(term.value, values) if v is not None]
    if not known:
        return None, None
    return sum(known) / len(known), (min(known) if term.maximise else max(known))


def rank(
    rows: Sequence[Mapping[str, Figure]], parameters: Sequence[str], terms: Sequence[Term]
) -> list[RankedSetting]:
    """Settings of ``rows`` (results-table rows), best first."""
    keys = group_keys(parameters)
    groups: dict[tuple[str, ...], list[Mapping[str, Figure]]] = {}
    for row in rows:
        groups.setdefault(tuple(repr(row[k]) for k in keys), []).append(row)
    settings = []
    for members in groups.values():
        stats = [
            _aggregate([numeric(m, t.name, SOURCE) for m in members], t) for t in terms
        ]
        settings.append(
            RankedSetting(
                params={k: members[0][k] for k in keys},
                trials=tuple(int(m["trial"]) for m in members),  # type: ignore[arg-type]
                means=tuple(mean for mean, _ in stats),
                worst=tuple(worst for _, worst in stats),
            )
        )

    def order(setting: RankedSetting) -> tuple[object, ...]:
        key: list[object] = []
        for term, mean in zip(terms, setting.means, strict=True):
            key.append((mean is None, 0.0 if mean is None else (-mean if term.maximise else mean)))
        return (*key, setting.trials[0])

    return sorted(settings, key=order)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def ranking_columns(parameters: Sequence[str], terms: Sequence[Term]) -> list[str]:
    """Header of ``ranking.csv``."""
    figures = [f"{kind}({t})" for t in terms for kind in ("mean", "worst")]
    return ["rank", *group_keys(parameters), "trials", *figures]


def ranking_rows(ranked: Sequence[RankedSetting]) -> list[list[str]]:
    """The cells of ``ranking.csv``, best setting first."""
    rows = []
    for place, setting in enumerate(ranked, start=1):
        figures = [
            _number(v) for pair in zip(setting.means, setting.worst, strict=True) for v in pair
        ]
        params = ["" if v is None else str(v) for v in setting.params.values()]
        rows.append([str(place), *params, " ".join(map(str, setting.trials)), *figures])
    return rows


def write_ranking(
    handle: IO[str],
    ranked: Sequence[RankedSetting],
    parameters: Sequence[str],
    terms: Sequence[Term],
) -> None:
    """``ranking.csv``: one row per setting, best first."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(ranking_columns(parameters, terms))
    writer.writerows(ranking_rows(ranked))


def render_ranking(
    ranked: Sequence[RankedSetting],
    parameters: Sequence[str],
    terms: Sequence[Term],
    top: int = 5,
) -> str:
    """The best ``top`` settings as an aligned text table for the terminal."""
    header = ranking_columns(parameters, terms)
    body = ranking_rows(ranked[:top])
    trials_at = header.index("trials")
    table = [header, *body]
    for row in table:  # a long list of trial numbers would swamp the table
        row[trials_at] = row[trials_at] if row is header else str(len(row[trials_at].split()))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in table)
