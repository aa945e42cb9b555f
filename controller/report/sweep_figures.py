"""The figures of a sweep: the objective over one or two swept parameters, and how the
trials' clearance and onset timing were distributed.

An objective figure shows one term of the objective (``controller.sweep.ranking``)
averaged over the seeds and over any swept parameter not on its axes: over one
parameter as a line (the band spans the lowest to the highest trial), over two as a heat
map with the value in each cell, or, when the values were drawn at random and do not
form a grid, as a scatter coloured by the value. Each patient gets its own line or panel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.report.canvas import histogram, legend, new_figure, save
from controller.sweep.plan import PATIENT_KEY, SEED_KEY
from controller.sweep.ranking import Term, parse_objective
from controller.sweep.store import PLAN, RESULTS
from controller.sweep.table import Row, read_table
from controller.trial.figures import Figure, is_number
from controller.validation import ConfigError

#: A parameter with more distinct values than this is plotted as points, not a grid.
MAX_GRID_VALUES = 15
#: Per-trial figures whose spread over the sweep is worth a histogram, with their labels.
SPREAD_FIGURES = (
    ("clearance.toe_clearance_min_mm.median", "median minimum toe clearance of a trial, mm",
     "0 mm: toe drag", "mm"),
    ("stim.onset_error_ms.median", "median stimulation onset error of a trial, ms",
     "0 ms: onset at toe off", "ms"),
)


@dataclass(frozen=True)
class SweepData:
    """A sweep folder's table, its swept parameters and its objective."""

    folder: Path
    rows: list[Row]
    parameters: list[str]
    objective: tuple[Term, ...]
    #: The trials of the sweep's plan (``sweep.json``); more than ``rows`` when it did
    #: not finish (interrupted, stopped by a full disk, trials that failed).
    planned: int | None = None

    def incomplete(self) -> str | None:
        """What a report of a sweep that did not finish says first, or None."""
        if self.planned is None or len(self.rows) >= self.planned:
            return None
        return (f"{len(self.rows)} of the sweep's {self.planned} trials finished (it was "
                "interrupted, stopped by an output it could not write, or trials failed: "
                "failures.txt): the ranking and the figures are of those only; run the "
                "same fes sweep command again to complete it")

    def patients(self) -> list[Figure]:
        """Patients in plan order."""
        return list(dict.fromkeys(r.get(PATIENT_KEY) for r in self.rows))

    def plotted(self) -> list[str]:
        """Swept parameters that vary, other than the patient and the seed."""
        return [
            p for p in self.parameters
            if p not in (PATIENT_KEY, SEED_KEY) and len({repr(r[p]) for r in self.rows}) > 1
        ]


def is_sweep(folder: Path) -> bool:
    """True if ``folder`` holds a sweep's table and plan."""
    return (folder / RESULTS).is_file() and (folder / PLAN).is_file()


def load_sweep(folder: Path, objective: str | None = None) -> SweepData:
    """Read a sweep folder; ``objective`` overrides the one the sweep ranked by."""
    plan = json.loads((folder / PLAN).read_text())
    with (folder / RESULTS).open(encoding="utf-8") as handle:
        rows = read_table(handle)
    terms = parse_objective(objective or ",".join(plan.get("objective") or []) or "strides")
    planned = plan.get("trials")
    return SweepData(folder, rows, list(plan["parameters"]), terms,
                     planned if isinstance(planned, int) else None)


def choose_axes(data: SweepData, over: Sequence[str] | None) -> list[str]:
    """The one or two parameters to plot the objective over (default: the first two that
    vary); a usage error naming any that was not swept."""
    if not over:
        return data.plotted()[:2]
    unknown = [p for p in over if p not in data.parameters]
    if unknown or len(over) > 2:
        raise ConfigError("--over", [
            f"give one or two of the swept parameters ({', '.join(data.parameters)}); "
            f"got {', '.join(over)}"
        ])
    return list(over)


def _values(rows: Sequence[Row], term: Term) -> list[float]:
    return [float(term.value(v)) for r in rows  # type: ignore[arg-type]
            if is_number(v := r.get(term.name))]


def _positions(values: Sequence[Figure]) -> tuple[list[Figure], bool]:
    """Distinct values in order (sorted if all numbers) and whether they are numbers."""
    distinct = list(dict.fromkeys(values))
    numeric = all(is_number(v) for v in distinct)
    return (sorted(distinct) if numeric else distinct), numeric  # type: ignore[type-var]


def _direction(term: Term) -> str:
    return ("higher is better" if term.maximise else "closer to zero is better"
            if term.absolute else "lower is better")


def objective_figure(data: SweepData, term: Term, axes_keys: Sequence[str], path: Path) -> Path:
    """The objective term over the chosen parameters (line, heat map or scatter)."""
    patients = data.patients()
    if len(axes_keys) == 2:
        figure, axes = new_figure(5.2 * len(patients) + 0.8, 4.6, cols=len(patients))
        for ax, patient in zip(axes[0], patients, strict=True):
            rows = [r for r in data.rows if r.get(PATIENT_KEY) == patient]
            _surface(ax, figure, rows, term, axes_keys[0], axes_keys[1])
            ax.set_title(f"patient {patient}")
    else:
        figure, axes = new_figure(7.5, 4.6)
        _lines(axes[0, 0], data, term, axes_keys[0] if axes_keys else PATIENT_KEY)
    others = [p for p in data.plotted() if p not in axes_keys]
    averaged = " and ".join(["seeds", *others])
    figure.suptitle(f"{term} ({_direction(term)})\nmean over {averaged}")
    return save(figure, path)


def _lines(ax: Any, data: SweepData, term: Term, key: str) -> None:
    positions, numeric = _positions([r[key] for r in data.rows])
    x = np.array(positions if numeric else range(len(positions)), dtype=float)
    for patient in data.patients():
        stats = []
        for value in positions:
            values = _values([r for r in data.rows
                              if r.get(PATIENT_KEY) == patient and r[key] == value], term)
            stats.append((np.mean(values), min(values), max(values)) if values else (np.nan,) * 3)
        mean, low, high = np.array(stats).T
        line = ax.plot(x, mean, marker="o", label=f"patient {patient}")[0]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    if not numeric:
        ax.set_xticks(x, [str(p) for p in positions])
    ax.set_xlabel(key)
    ax.set_ylabel(str(term))
    legend(ax, title="band: lowest to highest trial")


def _surface(ax: Any, figure: Any, rows: Sequence[Row], term: Term, x_key: str, y_key: str) -> None:
    xs, x_numeric = _positions([r[x_key] for r in rows])
    ys, y_numeric = _positions([r[y_key] for r in rows])
    cmap = "viridis" if term.maximise else "viridis_r"  # the better end is always yellow
    if len(xs) > MAX_GRID_VALUES or len(ys) > MAX_GRID_VALUES:
        points = [(r[x_key], r[y_key], term.value(r[term.name])) for r in rows  # type: ignore[arg-type]
                  if is_number(r.get(term.name))]
        x, y, value = (np.array(c, dtype=float) for c in zip(*points, strict=True))
        shown = ax.scatter(x, y, c=value, cmap=cmap, s=30, edgecolors="0.3", linewidths=0.4)
    else:
        grid = np.full((len(ys), len(xs)), np.nan)
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                values = _values([r for r in rows if r[x_key] == xv and r[y_key] == yv], term)
                grid[i, j] = np.mean(values) if values else np.nan
        shown = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap)
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                        color="white", path_effects=_outline())
        ax.set_xticks(range(len(xs)), [f"{v:g}" if x_numeric else str(v) for v in xs])  # type: ignore[str-format]
        ax.set_yticks(range(len(ys)), [f"{v:g}" if y_numeric else str(v) for v in ys])  # type: ignore[str-format]
        ax.grid(False)
    figure.colorbar(shown, ax=ax, label=str(term))
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)


def _outline() -> list[Any]:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2, foreground="black")]


def spread_figure(data: SweepData, path: Path) -> Path:
    """Histograms over the trials of their clearance and onset figures, per patient."""
    figure, axes = new_figure(9.0, 4.0, cols=len(SPREAD_FIGURES))
    for ax, (name, label, zero_label, unit) in zip(axes[0], SPREAD_FIGURES, strict=True):
        groups = {
            f"patient {patient}": _values(
                [r for r in data.rows if r.get(PATIENT_KEY) == patient], Term(name)
            )
            for patient in data.patients()
        }
        histogram(ax, groups, label, "trials", zero_label, unit)
    figure.suptitle(f"Spread over the {len(data.rows)} trials of the sweep")
    return save(figure, path)
