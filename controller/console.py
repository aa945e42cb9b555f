"""Terminal streams that outlive their reader.

``fes sim | head -3`` or ``fes detect ... | true``: the reader of the command's output
goes away before the command is done, and the next write to the pipe fails with
``BrokenPipeError``. Python would end the command with a traceback and exit code 1,
which means something else here (``fes ports`` found no port), and a live trial whose
status line goes to that pipe would stop in mid walk. A command's product is its files
and its stimulation, not its printout: once the reader has gone, the rest of the output
goes to ``/dev/null`` (the stream's descriptor is pointed there, so the interpreter's
last flush at exit finds nothing to fail on) and the command carries on to its own exit
code. A terminal that hung up (its window closed, an ssh session dropped: writes fail with
``EIO``) has gone the same way.
"""

from __future__ import annotations

import errno
import os
from typing import Any, TextIO


class ReaderMayLeave:
    """``stream`` for ``print``, except that a closed pipe behind it ends its output
    quietly instead of raising (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        """The stream this one writes to."""
        return self._stream

    def write(self, text: str) -> int:
        """Write ``text``; once the reader has gone, discard it."""
        try:
            return self._stream.write(text)
        except OSError as err:
            if not _reader_gone(err):
                raise
            self._send_to_null()
            return len(text)

    def flush(self) -> None:
        """Flush the stream; once the reader has gone, discard what it holds."""
        try:
            self._stream.flush()
        except OSError as err:
            if not _reader_gone(err):
                raise
            self._send_to_null()

    def _send_to_null(self) -> None:
        """Point the stream's descriptor at ``/dev/null``: what it still buffers and
        everything written later, by this process or a child, goes nowhere."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _reader_gone(err: OSError) -> bool:
    """True for a write that failed because nobody reads any more: a closed pipe, or a
    terminal that hung up (``EIO``)."""
    return isinstance(err, BrokenPipeError) or err.errno == errno.EIO
