"""Running a sweep: skip what is finished, run the rest, commit each trial as it ends,
then write the results table and the ranking.

Trials are committed one by one as their results arrive, so an interruption (Ctrl-C, a
kill, a crashed machine) costs at most the trials that were running; the next run of the
same sweep into the same folder runs only what is missing. The tables are rebuilt from
the trial folders on every run, in plan order, so they do not depend on which run or
which worker finished a trial.

The figure names of the objective and the ``--require`` checks are checked before
(``controller.sweep.names``, by ``fes sweep``).
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from controller.outputs import OutputError, write_json_atomically, writing
from controller.progress import Progress
from controller.sweep import ranking, table
from controller.sweep.executors import Result, Task
from controller.sweep.plan import PlannedTrial, SweepPlan
from controller.sweep.store import FAILURES, PLAN, RANKING, RESULTS, RESULTS_PARQUET, SweepStore
from controller.sweep.underway import UnderWay
from controller.sweep.worker import FileOptions, TrialFailure
from controller.trial.require import Requirement, failures


class Executor(Protocol):
    """Runs the tasks, yielding results as trials finish; ``under_way`` is how a trial
    reports the work it has done so far (``controller.sweep.underway``)."""

    def __call__(
        self, tasks: Sequence[Task], *, under_way: UnderWay | None = None
    ) -> Generator[Result, None, None]: ...


@dataclass
class SweepOutcome:
    """What a run of a sweep did and found."""

    total: int
    reused: int
    ran: int = 0
    interrupted: bool = False
    #: An output a trial could not write (a full disk), or a config it could not run (a
    #: trial too long for the memory): the sweep stopped there.
    output_error: str | None = None
    failed: dict[int, str] = field(default_factory=dict)
    ranked: list[ranking.RankedSetting] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)


def run_sweep(
    plan: SweepPlan,
    out: Path,
    executor: Executor,
    terms: Sequence[ranking.Term],
    checks: Sequence[Requirement] = (),
    *,
    summaries_only: bool = False,
    stream: TextIO | None = None,
    data_format: str = "csv",
) -> SweepOutcome:
    """Run every unfinished trial of ``plan`` into ``out``; write the tables. Progress
    goes to ``stream`` (default: standard error at the time of the call)."""
    store = SweepStore(out)
    with store.locked():
        store.remove_partials()
        write_json_atomically(out / PLAN, plan.describe() | {"objective": [str(t) for t in terms]})
        summaries = {t.key: store.finished(t.key) for t in plan.trials}
        todo = [t for t in plan.trials if summaries[t.key] is None]
        outcome = SweepOutcome(total=len(plan.trials), reused=len(plan.trials) - len(todo))
        progress = Progress(outcome.total, outcome.reused, stream or sys.stderr, desc="sweep",
                            unit="trial")
        progress.show()
        try:
            _run_todo(todo, executor, store, summaries, outcome, progress,
                      FileOptions(summaries_only, data_format, staging=str(store.trials)))
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            progress.finish()
            store.remove_partials()  # of trials interrupted or failed: their workers ended
        _write_tables(plan, store, summaries, outcome, terms, checks, data_format)
    return outcome


def _run_todo(
    todo: Sequence[PlannedTrial],
    executor: Executor,
    store: SweepStore,
    summaries: dict[str, dict[str, Any] | None],
    outcome: SweepOutcome,
    progress: Progress,
    options: FileOptions,
) -> None:
    if not todo:  # nothing left: start no workers, connect to no cluster
        return
    tasks: list[Task] = [(t.config, options) for t in todo]
    under_way = UnderWay(len(tasks), progress)
    with closing(executor(tasks, under_way=under_way)) as results:
        for index, result in results:
            trial = todo[index]
            progress.under_way(under_way.finished(index), redraw=False)  # then advanced
            if isinstance(result, TrialFailure):
                if result.output is not None:  # nor could the others: stop
                    outcome.output_error = result.output
                    return
                outcome.failed[trial.index] = result.error
                progress.advance(failed=True)
                continue
            if result.summary.get("stopped_by") == "interrupted":  # Ctrl-C inside the loop
                raise KeyboardInterrupt
            try:
                if result.staged is not None:  # written into the store by a local worker
                    store.commit_folder(trial.key, Path(result.staged))
                else:
                    store.commit(trial.key, result.files)
            except OutputError as err:
                outcome.output_error = str(err)
                return
            summaries[trial.key] = result.summary
            outcome.ran += 1
            progress.advance()


def _write_tables(
    plan: SweepPlan,
    store: SweepStore,
    summaries: dict[str, dict[str, Any] | None],
    outcome: SweepOutcome,
    terms: Sequence[ranking.Term],
    checks: Sequence[Requirement],
    data_format: str = "csv",
) -> None:
    rows = [
        table.row_of(t, summary)
        for t in plan.trials
        if (summary := summaries[t.key]) is not None
    ]
    columns = table.columns_of(plan.parameters, rows)
    with writing(store.root / RESULTS), store.replacing(RESULTS) as handle:
        table.write_table(handle, columns, rows)
    if data_format == "parquet":
        table.write_parquet(store.root / RESULTS_PARQUET, columns, rows)
    outcome.ranked = ranking.rank(rows, plan.parameters, terms)
    with writing(store.root / RANKING), store.replacing(RANKING) as handle:
        ranking.write_ranking(handle, outcome.ranked, plan.parameters, terms)
    for row in rows:
        outcome.unmet += [f"trial {row['trial']}: {m}" for m in failures(list(checks), row)]
    failed_path = store.root / FAILURES
    with writing(failed_path):
        if outcome.failed:
            failed_path.write_text(
                "".join(f"trial {i}:\n{error}\n" for i, error in sorted(outcome.failed.items()))
            )
        elif failed_path.exists():
            failed_path.unlink()
