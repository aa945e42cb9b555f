"""``fes report``: the figures of a trial or a sweep folder and a ``report.md`` linking
them, written into ``DIR/report/`` unless told otherwise.

A sweep's report has the objective over one or two swept parameters (one figure per
term of the objective), the spread of clearance and onset timing over its trials, a
table of its best settings, and the trial figures of the best setting's first trial
(when that trial kept its samples, i.e. the sweep did not use ``--summaries-only``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.progress import progress
from controller.report.canvas import styled
from controller.report.sweep_figures import (
    SweepData,
    choose_axes,
    is_sweep,
    load_sweep,
    objective_figure,
    spread_figure,
)
from controller.report.trial_data import TrialData, is_trial, load_trial
from controller.report.trial_figures import TRIAL_FIGURES, drawing_note
from controller.sweep.ranking import misread_terms, rank, ranking_columns, ranking_rows
from controller.validation import ConfigError

REPORT_FOLDER = "report"
REPORT_FILE = "report.md"
BEST_SHOWN = 10


@dataclass(frozen=True)
class Report:
    """The written ``report.md`` and the figures it links."""

    path: Path
    figures: tuple[Path, ...]
    #: Said on standard error too: a sweep that did not finish (``SweepData.incomplete``).
    note: str | None = None


def make_report(
    folder: Path,
    out: Path | None = None,
    objective: str | None = None,
    over: Sequence[str] | None = None,
) -> Report:
    """Figures and ``report.md`` for the trial or sweep in ``folder``."""
    check_folder(folder)
    out = out or folder / REPORT_FOLDER
    if is_sweep(folder):
        return _sweep_report(load_sweep(folder, objective), out, over)
    return _trial_report(load_trial(folder), out)


def check_folder(folder: Path) -> None:
    """``ConfigError`` naming ``folder`` unless it is a trial or a sweep folder."""
    if not (is_sweep(folder) or is_trial(folder)):
        if (folder / "config.json").is_file() and not (folder / "summary.json").exists():
            # config.json first, summary.json last (docs/files.md): a trial that never ended
            raise ConfigError(str(folder), [
                "a trial that did not end (config.json but no summary.json: killed, e.g. "
                "by SIGKILL or a timeout's kill, or still running): its samples are on "
                "disk up to the kill, but there are no figures to report"])
        raise ConfigError(str(folder), [
            "neither a trial folder (samples and events as .csv or .parquet, summary.json, "
            "config.json) nor a sweep folder (results.csv, sweep.json)"
        ])


def _trial_figures(data: TrialData, out: Path, prefix: str) -> list[tuple[str, Path]]:
    figures = []
    with progress(len(TRIAL_FIGURES), "drawing figures", "figure") as shown:
        for name, title, draw in TRIAL_FIGURES:
            figures.append((title, draw(data, out / f"{prefix}{name}")))
            shown.advance()
    return figures


def _images(figures: Sequence[tuple[str, Path]], level: str = "##") -> list[str]:
    lines = []
    for title, path in figures:
        lines += [f"{level} {title}", "", f"![{title}]({path.name})", ""]
    return lines


def _write(out: Path, lines: list[str], figures: Sequence[tuple[str, Path]]) -> Report:
    path = out / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return Report(path, tuple(p for _, p in figures))


def _trial_report(data: TrialData, out: Path) -> Report:
    from controller.trial.summary import render_text

    with styled():
        figures = _trial_figures(data, out, "")
    lines = [
        f"# Trial report: {data.folder}",
        "",
        f"{data.title()}, {data.strides} complete strides. Figures are stride-normalised: "
        "one thin line per stride from true heel strike to the next, the bold line their "
        "mean." + drawing_note(data.strides),
        "",
        "```",
        render_text(data.summary),
        "```",
        "",
        *_images(figures),
    ]
    return _write(out, lines, figures)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _sweep_report(data: SweepData, out: Path, over: Sequence[str] | None) -> Report:
    axes_keys = choose_axes(data, over)
    ranked = rank(data.rows, data.parameters, data.objective)
    figures: list[tuple[str, Path]] = []
    with styled():
        for term in data.objective:
            abs_part = "abs-" if term.absolute else ""  # (plotted: the absolute values)
            path = out / f"objective-{abs_part}{term.name}.png"
            shown = " and ".join(axes_keys) or "patient"
            figures.append((f"{term} over {shown}",
                            objective_figure(data, term, axes_keys, path)))
        figures.append(("Spread over the trials", spread_figure(data, out / "spread.png")))
        best_lines: list[str] = []
        if ranked:
            first = ranked[0].trials[0]
            trial_dir = data.folder / str(next(r["dir"] for r in data.rows if r["trial"] == first))
            if is_trial(trial_dir):
                best = _trial_figures(load_trial(trial_dir), out, "best-")
                best_lines = [f"## The best setting's first trial: trial {first} "
                              f"(`{trial_dir.relative_to(data.folder)}`)", "",
                              *_images(best, "###")]
                figures += best
            else:
                best_lines = [f"Trial {first} kept no samples (--summaries-only): no trial "
                              "figures.", ""]
    order = ", then ".join(f"{t} ({t.order()})" for t in data.objective)
    header = ranking_columns(data.parameters, data.objective)
    lines = [
        f"# Sweep report: {data.folder}",
        "",
        f"{len(data.rows)} trials over {', '.join(data.parameters)}. Settings ranked by "
        f"{order}, each averaged over its seeds (`worst`: the worst seed). Full tables: "
        "`results.csv` (one row per trial), `ranking.csv`.",
        "",
        *([f"**Not complete**: {incomplete}.", ""] if (incomplete := data.incomplete()) else []),
        *(f"Note: {note}." for note in misread_terms(data.objective)),
        *([""] if misread_terms(data.objective) else []),
        f"## Best settings (top {min(BEST_SHOWN, len(ranked))} of {len(ranked)})",
        "",
        *_markdown_table(header, ranking_rows(ranked[:BEST_SHOWN])),
        "",
        *_images(figures[: len(data.objective) + 1]),
        *best_lines,
    ]
    return dataclasses.replace(_write(out, lines, figures), note=incomplete)
