"""What runs on a worker: one trial, its files left on disk or returned as bytes.

A local worker (``--workers N``, or the sweep's own process) is given the sweep's
``trials/`` folder as ``FileOptions.staging``: it writes the trial into a new folder of
its own there (``trials/.partial-<random>/``, on the same file system as the trial's
final place) and returns only that folder's path, so a trial's files never pass through
memory nor across the process boundary; the sweep commits the trial by renaming the
folder (``controller.sweep.store``). A worker on another machine (a Dask worker) cannot
reach the sweep folder: without ``staging`` it runs the trial in a scratch folder and
returns the bytes of its files, which the sweep writes. Either way the sweep's own
process is the one that puts a trial in place, so there is one committer per sweep folder.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.sweep import underway
from controller.sweep.store import PARTIAL_PREFIX
from controller.trial.folder import DOCUMENTS

#: The files kept with ``--summaries-only`` (enough for the table and to repeat a trial).
SUMMARY_FILES = DOCUMENTS


@dataclass(frozen=True, slots=True)
class FileOptions:
    """Which files of each trial a sweep keeps, in which format."""

    summaries_only: bool = False
    data_format: str = "csv"
    #: A folder on the sweep's file system to write each trial into (the sweep's
    #: ``trials/``); None: a scratch folder, the files returned as bytes.
    staging: str | None = None


@dataclass(frozen=True, slots=True)
class TrialOutput:
    """A finished trial: its summary, and either the folder that holds its files
    (``staged``, written into ``FileOptions.staging``; ``files`` is then empty) or the
    bytes of every file it wrote (``files``)."""

    summary: dict[str, Any]
    files: dict[str, bytes]
    staged: str | None = None


@dataclass(frozen=True, slots=True)
class TrialFailure:
    """A trial that raised: the error, with the traceback, as text; ``output``: what
    stops the whole sweep, the sweep's problem rather than the trial's, on one line: an
    output it could not write (``controller.outputs.OutputError``: a full disk, a
    read-only folder) or a config the process cannot run (``ConfigError`` raised by a
    trial whose config was valid: a trial that does not fit in its memory)."""

    error: str
    output: str | None = None


def run_trial(
    config: dict[str, Any],
    options: FileOptions,
    samples_done: Callable[[int, int], None] | None = None,
) -> TrialOutput:
    """Validate ``config``, run the simulated trial, return its summary and its files'
    folder or bytes (``samples_done``: told the samples run so far,
    ``run_simulated_trial``)."""
    from controller.config import build_config
    from controller.trial.simulated import run_simulated_trial

    trial_config = build_config(config, "sweep trial")
    if options.staging is not None:
        # A name of its own: a worker orphaned by a killed sweep may still be writing
        # into the folder it took while the next run of the sweep runs the same trial.
        folder = Path(options.staging) / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
        folder.mkdir()  # as the folder's final place would be made (mode, owner)
        try:
            summary = run_simulated_trial(trial_config, folder, stream=False,
                                          data_format=options.data_format,
                                          samples_done=samples_done)
            _keep_only(folder, options)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return TrialOutput(summary, {}, staged=str(folder))
    with tempfile.TemporaryDirectory(prefix="fes-trial-") as scratch:
        folder = Path(scratch)
        summary = run_simulated_trial(trial_config, folder, stream=False,
                                      data_format=options.data_format,
                                      samples_done=samples_done)
        _keep_only(folder, options)
        files = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
    return TrialOutput(summary, files)


def _keep_only(folder: Path, options: FileOptions) -> None:
    """Remove from a finished trial's ``folder`` what the sweep does not keep: anything
    but its files, and with ``summaries_only`` anything but ``SUMMARY_FILES``."""
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink() and (
            not options.summaries_only or path.name in SUMMARY_FILES
        ):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def run_guarded(
    index: int, config: dict[str, Any], options: FileOptions
) -> tuple[int, TrialOutput | TrialFailure]:
    """``run_trial`` whose exceptions come back as data, tagged with the task's index."""
    try:
        return index, run_trial(config, options, underway.reporter(index))
    except Exception as err:
        return index, TrialFailure(traceback.format_exc(), _output_error(err))


def _output_error(err: BaseException) -> str | None:
    """The message of the ``OutputError`` or ``ConfigError`` that ``err`` is or was
    raised from, if any."""
    from controller.errors import ConfigError
    from controller.outputs import OutputError

    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OutputError):
            return str(cause)
        if isinstance(cause, ConfigError):
            return f"invalid configuration ({cause.source}): {'; '.join(cause.problems)}"
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
