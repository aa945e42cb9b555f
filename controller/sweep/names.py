"""The figure names of ``--objective`` and ``--require``, checked before any trial runs.

Each is held to the names a trial's row of ``results.csv`` can have: its swept
parameters and the figures of a blank summary of its config
(``controller.trial.simulated.blank_summary``, built by the code that builds every
trial's summary). Names depend on the config (its channels, its detector), not on the
patient or the seed, so one blank summary serves every trial that differs from another
only in those. A name some trials cannot have is named with the first such trial.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from controller.errors import ConfigError
from controller.sweep import ranking, table
from controller.sweep.plan import PATIENT_KEY, SEED_KEY, PlannedTrial, SweepPlan
from controller.trial.figures import Figure
from controller.trial.require import SOURCE as REQUIRE
from controller.trial.require import Requirement, unknown_names


def _shape(config: dict[str, Any]) -> str:
    """``config`` without the patient and the seed, as text: trials equal in it have
    summaries of the same names."""
    rest = dict(config)
    for key in (PATIENT_KEY, SEED_KEY):  # copied along the key's path only
        *path, last = key.split(".")
        node = rest
        for part in path:
            node[part] = dict(node[part])
            node = node[part]
        node.pop(last, None)
    return json.dumps(rest, sort_keys=True)


def _problems(trial: PlannedTrial, terms: Sequence[ranking.Term],
              checks: Sequence[Requirement]) -> tuple[list[str], list[str]]:
    """The objective's and the checks' names a row of ``trial`` cannot have."""
    from controller.config import TrialConfig
    from controller.trial.simulated import blank_summary

    # (validated whole by build_plan: the model alone here, without the safety checks)
    config = TrialConfig.model_validate(trial.config)
    row: dict[str, Figure] = table.row_of(trial, blank_summary(config))
    objective = []
    for term in terms:
        try:
            ranking.check_terms([term], row)
        except ConfigError as err:
            objective += err.problems
    return objective, unknown_names(checks, row)


def check_names(plan: SweepPlan, terms: Sequence[ranking.Term],
                checks: Sequence[Requirement]) -> None:
    """A ``ConfigError`` naming every objective or ``--require`` name that a trial of
    ``plan`` cannot have (with close names); nothing if every trial can have them all."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    first: dict[str, int] = {}
    for trial in plan.trials:
        shape = _shape(trial.config)
        if shape not in found:
            found[shape] = _problems(trial, terms, checks)
            first[shape] = trial.index
    if not found:  # no trial: no name to check
        return
    for which, source in ((0, ranking.SOURCE), (1, REQUIRE)):
        # A name unknown to every trial is said once, without a trial (close names vary).
        everywhere = set.intersection(*({problem.partition(":")[0] for problem in both[which]}
                                        for both in found.values()))
        problems: list[str] = []
        named = set()
        for shape, both in found.items():
            for problem in both[which]:
                name = problem.partition(":")[0]
                if name not in everywhere:
                    problems.append(f"trial {first[shape]}: {problem}")
                elif name not in named:
                    named.add(name)
                    problems.append(problem)
        if problems:
            raise ConfigError(source, problems)
