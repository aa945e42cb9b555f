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
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
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


#: The descriptors holding this process's folder locks. A fork (the compile helper)
#: closes its copies at once: a lock is the trial's process's, and a child that outlived
#: the trial's end by a moment kept the folder locked against the next trial of the same
#: process (``--overwrite``, a test). The log writer is the exception
#: (``locks_kept_by_fork``): it writes the folder's files, and after a SIGKILL of the
#: trial's process it goes on writing them (its final pass, its sinks closed: a Parquet
#: part renamed into ``samples.parquet.partial/``), so it keeps the lock until its files
#: are closed (``release_kept_locks``) and a new ``--overwrite`` trial cannot remove
#: the files under it, nor get the killed trial's last part in its own parts folder.
_HELD: set[int] = set()
#: In a fork made inside ``locks_kept_by_fork``: the locks it inherited and keeps.
_KEPT: set[int] = set()
_keep_in_fork = False


def _forget_locks() -> None:
    global _keep_in_fork
    if _keep_in_fork:
        _KEPT.update(_HELD)
        _keep_in_fork = False  # (its own forks, if any, close theirs)
    else:
        for fd in _HELD:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_locks)


@contextlib.contextmanager
def locks_kept_by_fork() -> Iterator[None]:
    """A fork made inside keeps this process's folder locks (shared with it: a folder is
    unlocked once both have closed theirs) until it calls ``release_kept_locks`` or
    ends: for the log writer."""
    global _keep_in_fork
    _keep_in_fork = True
    try:
        yield
    finally:
        _keep_in_fork = False


def release_kept_locks() -> None:
    """In a fork made inside ``locks_kept_by_fork``: close its copies of the locks (the
    trial's process still holds the folder, if it lives)."""
    for fd in _KEPT:
        with contextlib.suppress(OSError):
            os.close(fd)
    _KEPT.clear()


def _hold(path: Path) -> int | None:
    """An exclusive lock on the folder ``path`` for this process and its forks (the log
    writer): the descriptor that holds it, None where the file system has no such
    locks; ``OutputError`` if another process holds it."""
    with writing(path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(path, "another fes command is writing a trial into this folder; "
                          "choose another --out") from None
    except OSError:  # no flock here (some network file systems): unguarded, as before
        os.close(fd)
        return None
    _HELD.add(fd)
    return fd


class TrialFolder:
    """The folder a trial writes into; see the module docstring. While the trial runs
    the folder is locked (``flock``), so two commands started at once with the same
    ``--out`` (two CI jobs) cannot both find it empty and write their trials into it:
    the second is refused (exit 2). ``release`` ends the lock, as the process's end does."""

    def __init__(self, path: Path, created: bool = False, lock: int | None = None) -> None:
        self.path = path
        self.created = created
        self._lock = lock

    def release(self) -> None:
        """Unlock the folder (a trial of a sweep's worker, which runs many)."""
        if self._lock is not None:
            if self._lock in _HELD:  # else closed by a fork, in the child
                _HELD.discard(self._lock)
                with contextlib.suppress(OSError):
                    os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:  # a trial that raised before its end released nothing
        self.release()

    @classmethod
    def claim(cls, path: Path, overwrite: bool = False) -> TrialFolder:
        """Make ``path`` an empty trial folder, locked; ``OutputError`` if it cannot be
        one.

        A folder that holds anything is refused unless ``overwrite``, which removes the
        files of the earlier trial (and leaves any other file where it is).
        """
        if str(path) == "":
            raise OutputError(path, "the output folder is empty: name a folder")
        with writing(path):
            if path.exists() and not path.is_dir():
                raise OutputError(path, "not a folder")
        created = not path.exists()
        output_folder(path)
        lock = _hold(path)
        try:
            cls._empty(path, overwrite)
        except BaseException:
            if lock is not None:
                _HELD.discard(lock)
                os.close(lock)
            if created:
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise
        return cls(path, created, lock)

    @staticmethod
    def _empty(path: Path, overwrite: bool) -> None:
        """Refuse ``path`` if it holds anything, or with ``overwrite`` remove the files of
        an earlier trial there."""
        with writing(path):
            present = sorted(path.iterdir())
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

    def file(self, name: str) -> Path:
        """The path of the trial file ``name``."""
        return self.path / name

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Write ``name`` whole, atomically (it appears complete or not at all)."""
        write_json_atomically(self.file(name), data)

    def replace(self, name: str, data: bytes | Callable[[int], None]) -> None:
        """Replace ``name`` with ``data`` atomically (or what ``data`` writes to the
        descriptor it is given)."""
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
