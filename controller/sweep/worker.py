"""What runs on a worker: one trial in a scratch folder, its files returned as bytes.

The worker never writes into the sweep folder: it may be a process on another machine
(a Dask worker) without access to it. The client receives the summary and the files and
commits them (``controller.sweep.store``), so there is one writer per sweep folder.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.sweep import underway
from controller.trial.folder import DOCUMENTS

#: The files kept with ``--summaries-only`` (enough for the table and to repeat a trial).
SUMMARY_FILES = DOCUMENTS


@dataclass(frozen=True, slots=True)
class FileOptions:
    """Which files of each trial a sweep keeps, in which format."""

    summaries_only: bool = False
    data_format: str = "csv"


@dataclass(frozen=True, slots=True)
class TrialOutput:
    """A finished trial: its summary and the bytes of every file it wrote."""

    summary: dict[str, Any]
    files: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class TrialFailure:
    """A trial that raised: the error, with the traceback, as text."""

    error: str


def run_trial(
    config: dict[str, Any],
    options: FileOptions,
    samples_done: Callable[[int, int], None] | None = None,
) -> TrialOutput:
    """Validate ``config``, run the simulated trial, return its summary and files
    (``samples_done``: told the samples run so far, ``run_simulated_trial``)."""
    from controller.config import build_config
    from controller.trial.simulated import run_simulated_trial

    trial_config = build_config(config, "sweep trial")
    with tempfile.TemporaryDirectory(prefix="fes-trial-") as scratch:
        folder = Path(scratch)
        summary = run_simulated_trial(trial_config, folder, stream=False,
                                      data_format=options.data_format,
                                      samples_done=samples_done)
        files = {
            path.name: path.read_bytes()
            for path in sorted(folder.iterdir())
            if path.is_file() and (not options.summaries_only or path.name in SUMMARY_FILES)
        }
    return TrialOutput(summary, files)


def run_guarded(
    index: int, config: dict[str, Any], options: FileOptions
) -> tuple[int, TrialOutput | TrialFailure]:
    """``run_trial`` whose exceptions come back as data, tagged with the task's index."""
    try:
        return index, run_trial(config, options, underway.reporter(index))
    except Exception:
        return index, TrialFailure(traceback.format_exc())
