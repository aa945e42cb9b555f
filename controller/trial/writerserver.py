"""A process started once that forks the log writer of each trial on request.

A trial's log writer (``controller.trial.writer``) is a process of its own. Forked from
the trial's process when the trial starts, it costs that process the copy of its page
tables (some 160 MB of interpreter, numpy and numba: 1-3 ms) and then a copy of every
page either process writes first (about 900 pages of a minute at 1 kHz, 2-3 us each on
the development machine), all on the trial's critical path. A ``WriterServer`` is forked
once, early (``fes sim`` at the start of the command, a benchmark once per process),
and forks each writer itself: the trial's process only pickles the writer (its shared
arrays and files travel as file descriptors, ``controller.sharedmem.dumps_passing``)
and sends it through a socket, some 0.2 ms.

The server ignores Ctrl-C and SIGTERM like the writers it forks (the trial's process
handles them and stops its writer when its files are due) and ends when the process
that started it ends (after forking the writers of the requests already sent), or when
told to (``close``). Each writer watches the trial's process itself (a pidfd handed
over with the request), so a SIGKILLed trial loses nothing its writer can still reach,
as with a forked writer.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from controller.interrupts import INTERRUPT_SIGNALS

#: A request: its kind, then the length of the pickled writer that follows.
_HEADER = struct.Struct("<cQ")
_SPAWN, _USAGE = b"W", b"U"
#: The most file descriptors one request hands over.
MAX_FDS = 64

_server: WriterServer | None = None


def fork_quiet(child: Callable[[], None]) -> int:
    """Fork a process that runs ``child`` and ends (without this process's exit
    handlers; exit code 1 and the traceback on stderr if it raised), ignoring Ctrl-C and
    SIGTERM; returns its pid. Those signals wait while it is forked: one that came in
    between would end the child before it ignores them."""
    sys.stderr.flush()  # nothing buffered here is written twice
    held = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPT_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for signum in INTERRUPT_SIGNALS:
                    signal.signal(signum, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                child()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid


def current() -> WriterServer | None:
    """The server of this process, if one runs."""
    return _server if _server is not None and _server.pid else None


class WriterServer:
    """The server process; see the module docstring. ``prepare`` runs in it before it
    serves (imports and compiled kernels its writers then start with)."""

    def __init__(self, prepare: Callable[[], None] = lambda: None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        starter = os.pidfd_open(os.getpid())
        try:
            self.pid = fork_quiet(lambda: _serve(ours, theirs, starter, prepare))
        finally:
            theirs.close()
            os.close(starter)
        self._socket = ours

    def spawn(self, data: bytes, fds: Sequence[int]) -> None:
        """Fork a writer that runs ``controller.trial.writer.run_passed(data, fds)``; the
        descriptors are the server's to hand on (the caller may close its own)."""
        socket.send_fds(self._socket, [_HEADER.pack(_SPAWN, len(data))], list(fds))
        self._socket.sendall(data)

    def usage_s(self) -> float:
        """CPU seconds of the server and of every writer it forked, once each has ended
        (it waits for them)."""
        self._socket.sendall(_HEADER.pack(_USAGE, 0))
        return float(struct.unpack("<d", _receive_exactly(self._socket, 8))[0])

    def close(self) -> None:
        """Tell the server to end once its writers are forked; wait until it has."""
        if self.pid:
            self._socket.close()
            os.waitpid(self.pid, 0)
            self.pid = 0


@contextlib.contextmanager
def writer_server(prepare: Callable[[], None] = lambda: None) -> Iterator[WriterServer]:
    """Run a ``WriterServer`` for the trials of the block (``LogWriter`` uses it)."""
    global _server
    server = WriterServer(prepare)
    _server, before = server, _server
    try:
        yield server
    finally:
        _server = before
        server.close()


def _receive_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError("the writer server's socket closed")
        data += piece
    return data


def _serve(ours: socket.socket, sock: socket.socket, starter: int,
           prepare: Callable[[], None]) -> None:
    """The server: fork a writer per request until the socket closes or the process
    that started the server has ended and sent nothing more."""
    ours.close()
    prepare()
    from controller.trial.writer import run_passed

    while True:
        ready = select.select([sock, starter], [], [])[0]
        if sock not in ready:
            break  # the starter has ended (and its requests were all served)
        header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
        if not header:
            break  # closed
        header += _receive_exactly(sock, _HEADER.size - len(header))
        kind, length = _HEADER.unpack(header)
        if kind == _USAGE:
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.wait()
            spent = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
            sock.sendall(struct.pack("<d", spent))
            continue
        data = _receive_exactly(sock, length)

        def writer(data: bytes = data, fds: list[int] = fds) -> None:
            sock.close()
            os.close(starter)
            run_passed(data, fds)

        fork_quiet(writer)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
