"""A sweep's folder on disk, written so that a kill at any moment loses no finished trial.

Layout: ``trials/<key>/`` holds one finished trial's files (``summary.json``,
``config.json``, ``samples.csv``, ``events.csv``); ``<key>`` is the hash of the trial's
full config (``controller.sweep.plan``). A trial's files are first written into a
``trials/.partial-*/`` folder and the folder is then renamed into place: a rename is
atomic, so a ``trials/<key>/`` folder is always complete, and a partial folder left by a
kill is removed and its trial run again by the next run. A local worker writes its
trial straight into such a folder (``trials/.partial-<random>/``, ``commit_folder``);
the files of a trial run elsewhere arrive as bytes and are written into
``trials/.partial-<key>/`` here (``commit``). Tables are written to a temporary file
and renamed over the old one for the same reason. A lock file keeps two sweeps from
writing the same folder at once (the kernel releases it when a process dies).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from controller.outputs import OutputError, writing

PARTIAL_PREFIX = ".partial-"
#: The sweep's own files beside ``trials/``: the plan (written first, so it marks a sweep
#: folder), the tables, the failures of the last run, and the lock.
PLAN = "sweep.json"
RESULTS = "results.csv"
RESULTS_PARQUET = "results.parquet"
RANKING = "ranking.csv"
FAILURES = "failures.txt"
LOCK = ".lock"
TRIALS = "trials"
SWEEP_FILES = (PLAN, RESULTS, RESULTS_PARQUET, RANKING, FAILURES, LOCK, TRIALS)


def sweep_files(root: Path) -> list[str]:
    """The sweep's own files in ``root`` (``trials/`` with its slash) when ``root`` is a
    sweep folder (it holds ``sweep.json``, or ``trials/`` and the lock of a sweep killed
    before it wrote its plan); none otherwise."""
    if not (root / PLAN).is_file() and not ((root / TRIALS).is_dir() and (root / LOCK).is_file()):
        return []
    return [name + "/" if (root / name).is_dir() else name
            for name in SWEEP_FILES if (root / name).exists()]


class SweepStore:
    """Finished trials and tables of the sweep in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trials = root / TRIALS

    def trial_dir(self, key: str) -> Path:
        """Where the finished trial ``key`` lives."""
        return self.trials / key

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the sweep folder for this process; ``OutputError`` (exit 2, an output that
        cannot be used now, as a trial folder's lock says) if another holds it."""
        self.trials.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK).open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(
                    self.root, "another fes sweep is writing this folder; wait for it to "
                    "end (then run the same command again to resume) or choose another --out"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def remove_partials(self) -> int:
        """Delete what killed runs left half written; returns how many folders."""
        leftovers = list(self.trials.glob(f"{PARTIAL_PREFIX}*"))
        for path in leftovers:
            shutil.rmtree(path)
        return len(leftovers)

    def finished(self, key: str) -> dict[str, Any] | None:
        """The summary of trial ``key`` if it finished, else ``None``."""
        try:
            summary = json.loads((self.trial_dir(key) / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def commit(self, key: str, files: Mapping[str, bytes]) -> None:
        """Write a finished trial's files and move them into place in one rename."""
        partial = self.trials / f"{PARTIAL_PREFIX}{key}"
        with writing(partial):  # a full disk: OutputError naming the file
            if partial.exists():
                shutil.rmtree(partial)
            partial.mkdir()
            for name, data in files.items():
                (partial / name).write_bytes(data)
            self.commit_folder(key, partial)

    def commit_folder(self, key: str, partial: Path) -> None:
        """Move the folder ``partial`` (a ``.partial-*`` folder in ``trials/``, holding a
        finished trial's files) into place as trial ``key``, in one rename."""
        if partial.parent != self.trials or not partial.name.startswith(PARTIAL_PREFIX):
            raise ValueError(f"{partial} is not a partial folder of {self.trials}")
        final = self.trial_dir(key)
        if final.exists():  # an incomplete folder someone made by hand
            shutil.rmtree(final)
        partial.rename(final)

    @contextmanager
    def replacing(self, name: str) -> Iterator[IO[str]]:
        """A text file ``root/name`` that appears, complete, only when the block ends."""
        path = self.root / name
        temporary = path.with_name(f"{PARTIAL_PREFIX}{name}")
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temporary, path)
