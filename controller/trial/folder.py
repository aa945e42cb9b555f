"""A trial's output folder: claimed before anything happens, never mixed with an earlier
trial's files.

``TrialFolder.claim`` refuses a folder that already holds anything unless asked to
``overwrite``, and then removes only the files a trial writes (``TRIAL_FILES``, and
the temporary files and Parquet parts a killed trial may have left), never a file of
the user's. It creates the folder and writes ``config.json`` at once, so an output that
cannot be written is found before the loop starts (for ``fes run``, before the board
is asked anything). What a trial's files are while it runs and after a kill is
``docs/files.md``: ``samples.csv`` and ``events.csv`` are streamed during the trial,
``config.json`` and ``summary.json`` are written whole and renamed into place, so a
folder without ``summary.json`` holds a trial that did not end (killed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.outputs import (
    TEMPORARY_MARK,
    OutputError,
    output_folder,
    write_all,
    write_atomically,
    write_json_atomically,
    writing,
)

#: The tables every trial streams while it runs, as CSV or as Parquet (``--format``).
TABLES = ("samples", "events")
#: The table a wall-clock trial adds (``--realtime``, ``fes run``).
TIMING_TABLE = "timing"
TABLE_FORMATS = ("csv", "parquet")
#: The two files written whole and renamed into place: ``config.json`` before the loop,
#: ``summary.json`` at its end (a folder without it holds a trial that did not end).
DOCUMENTS = ("summary.json", "config.json")
#: Every file a trial may write, in either format: the one list of them (``fes report``
#: reads a trial folder by it, ``--overwrite`` removes by it).
TRIAL_FILES = DOCUMENTS + tuple(
    f"{table}.{fmt}" for fmt in TABLE_FORMATS for table in (*TABLES, TIMING_TABLE)
)
#: A Parquet file's parts while the trial runs (``samples.parquet.partial/``).
PARTS_SUFFIX = ".partial"


def _is_trial_file(path: Path) -> bool:
    name = path.name
    if name in TRIAL_FILES:
        return True
    if name.endswith(PARTS_SUFFIX) and name[: -len(PARTS_SUFFIX)] in TRIAL_FILES:
        return True
    return name.startswith(".") and TEMPORARY_MARK in name and (
        name[1:].split(TEMPORARY_MARK)[0] in TRIAL_FILES
    )


def trial_files(path: Path) -> list[str]:
    """The names of the trial files in the folder ``path`` (an earlier trial's, finished
    or left by a kill; what ``--overwrite`` would remove), sorted; none where ``path``
    is no folder."""
    with writing(path):
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if _is_trial_file(p))


class TrialFolder:
    """The folder a trial writes into; see the module docstring."""

    def __init__(self, path: Path, created: bool = False) -> None:
        self.path = path
        self.created = created

    @classmethod
    def claim(cls, path: Path, overwrite: bool = False) -> TrialFolder:
        """Make ``path`` an empty trial folder; ``OutputError`` if it cannot be one.

        A folder that holds anything is refused unless ``overwrite``, which removes the
        files of the earlier trial (and leaves any other file where it is).
        """
        if str(path) == "":
            raise OutputError(path, "the output folder is empty: name a folder")
        with writing(path):
            if path.exists() and not path.is_dir():
                raise OutputError(path, "not a folder")
            present = sorted(path.iterdir()) if path.is_dir() else []
            if present and not overwrite:
                names = ", ".join(p.name for p in present[:4])
                more = f" and {len(present) - 4} more" if len(present) > 4 else ""
                raise OutputError(
                    path,
                    f"the folder already holds {names}{more}; choose another --out, or "
                    "add --overwrite to replace an earlier trial's files",
                )
            for old in present:
                if _is_trial_file(old):
                    if old.is_dir() and not old.is_symlink():
                        shutil.rmtree(old)
                    else:
                        old.unlink()
        created = not path.exists()
        output_folder(path)
        return cls(path, created)

    def file(self, name: str) -> Path:
        """The path of the trial file ``name``."""
        return self.path / name

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Write ``name`` whole, atomically (it appears complete or not at all)."""
        write_json_atomically(self.file(name), data)

    def replace(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically."""
        write_atomically(self.file(name), data)

    def create(self, name: str, header: bytes = b"") -> int:
        """Open ``name`` for streaming (created or truncated), with ``header`` written;
        returns its file descriptor."""
        path = self.file(name)
        with writing(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            try:
                write_all(fd, header)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def abandon(self) -> None:
        """Remove the trial files (and the folder, if this run made it): for a trial that
        never took place (the board was refused)."""
        for path in self.path.iterdir():
            if _is_trial_file(path):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()
