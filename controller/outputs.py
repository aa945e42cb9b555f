"""Writing what a command produces: one error for an output that cannot be written, and
files that appear complete or not at all.

Every command that writes files (``fes sim``, ``run``, ``sweep``, ``report``, ``detect``,
``board-emulator --log``) reports an output it cannot write (a missing or read-only
folder, a full disk, a path that is not a folder, ``/proc``) as ``OutputError``: one line
naming the path and the system's reason, exit code 2, no traceback. ``writing(path)``
turns the ``OSError`` of any block into that error.

``write_atomically`` writes a whole file into a temporary file beside it and renames it
over the target: a rename within a folder is atomic, so a reader (or a kill at any
moment) sees the old file or the new one, never half of one. The temporary files are
named ``.NAME.tmp-PID``; one left by a killed process is never mistaken for the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

TEMPORARY_MARK = ".tmp-"


class OutputError(Exception):
    """An output the command cannot write: the path and the reason, on one line."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path or repr('')}: {reason}")


def reason(err: OSError) -> str:
    """The system's words for ``err`` (``No space left on device``), never a traceback."""
    if err.errno is not None:
        return os.strerror(err.errno)
    return str(err) or type(err).__name__


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Any ``OSError`` in the block becomes ``OutputError`` naming ``path`` (or the file
    the error names, when it names one)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(err.filename or path, reason(err)) from None


def output_folder(path: Path) -> Path:
    """Make sure ``path`` is a folder this process can write into (creating it and its
    parents); ``OutputError`` naming it otherwise."""
    if str(path) == "":
        raise OutputError(path, "the output folder is empty: name a folder")
    with writing(path):
        if path.exists() and not path.is_dir():
            raise OutputError(path, "not a folder")
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(path, os.strerror(errno.EACCES))
    return path


class GuardedLog:
    """A text log whose failures end the logging, not the program: the first write or
    flush that fails (a full disk) is kept in ``failure`` and every later call does
    nothing. For a log written from a thread that must go on serving (the board
    emulator's)."""

    def __init__(self, handle: Any, path: Path) -> None:
        self._handle = handle
        self.path = path
        self.failure: OutputError | None = None

    def write(self, text: str) -> int:
        if self.failure is None:
            try:
                return int(self._handle.write(text))
            except OSError as err:
                self.failure = OutputError(self.path, reason(err))
        return 0

    def flush(self) -> None:
        if self.failure is None:
            try:
                self._handle.flush()
            except OSError as err:
                self.failure = OutputError(self.path, reason(err))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()


def temporary_path(path: Path) -> Path:
    """Where ``write_atomically`` writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")


def write_atomically(path: Path, data: bytes | Callable[[int], None]) -> None:
    """``path`` holds ``data`` when this returns, or is as it was if it raises (an
    ``OutputError`` naming ``path``). ``data`` may be a function that writes the file's
    bytes to the descriptor it is given (a long file, in pieces)."""
    temporary = temporary_path(path)
    with writing(path):
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                if callable(data):
                    data(fd)
                else:
                    write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Pretty, key-sorted JSON with a trailing newline, written atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomically(path, text.encode("utf-8"))


def write_all(fd: int, data: bytes | memoryview | Any) -> None:
    """``os.write`` until every byte of ``data`` (any buffer) is out."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        if written == 0:  # a device that takes nothing: as full as a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]
