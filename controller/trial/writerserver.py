"""A process started once that forks the log writer of each trial on request.

A trial's log writer (``controller.trial.writer``) is a process of its own. Forked from
the trial's process when the trial starts, it costs that process the copy of its page
tables (some 160 MB of interpreter, numpy and numba: 1-3 ms) and then a copy of every
page either process writes first (about 900 pages of a minute at 1 kHz, 2-3 us each on
the development machine), all on the trial's critical path. A ``WriterServer``, forked
once by a program that runs trials one after another in one process (a benchmark, a
script), forks each writer itself: the trial's process only pickles the writer (its
shared arrays and files travel as file descriptors,
``controller.sharedmem.dumps_passing``) and sends it through a socket, some 0.2 ms.

``fes sim`` does not start one: forked before the command's heavy imports it must
import numpy and numba and load the CSV renderer itself (0.3 s of CPU more per command,
and on a busy machine its first writer was ready late: the trial waited 90-110 ms for
it, against 0-13 ms for a writer forked from the trial; 3 runs each at load 1.9); forked
after them it costs the trial's process what a writer's fork does.

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
from controller.sharedmem import dumps_passing, loads_passed

#: A request: its kind, then the length of the pickled writer that follows.
_HEADER = struct.Struct("<cQ")
_SPAWN, _USAGE, _EXPECT = b"W", b"U", b"E"
#: The most file descriptors one request hands over.
MAX_FDS = 64

_server: WriterServer | None = None


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block has run (a fork and the bookkeeping of
    its pid: one that came in between would end the child before it ignores them, or
    leave a child this process does not know of)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPT_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def fork_quiet(child: Callable[[], None]) -> int:
    """Fork a process that runs ``child`` and ends (without this process's exit
    handlers; exit code 1 and the traceback on stderr if it raised), ignoring Ctrl-C and
    SIGTERM; returns its pid. Call it inside ``interrupts_held`` (unless those signals
    are ignored already, as in the server)."""
    sys.stderr.flush()  # nothing buffered here is written twice
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for signum in INTERRUPT_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPT_SIGNALS)
            child()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    return pid


def current() -> WriterServer | None:
    """The server of this process, if one runs."""
    return _server if _server is not None and _server.pid else None


def expect_writer() -> None:
    """Tell this process's server, if one runs, that a trial is being set up (it forks
    a writer ahead, while the trial builds its parts)."""
    server = current()
    if server is not None:
        server.expect_writer()


class WriterServer:
    """The server process; see the module docstring. Start it once the modules and
    compiled kernels its writers need are loaded (a writer forked by it has them)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        starter = os.pidfd_open(os.getpid())
        try:
            with interrupts_held():
                self.pid = fork_quiet(lambda: _serve(ours, theirs, starter))
        finally:
            theirs.close()
            os.close(starter)
        self._socket = ours

    def spawn(self, job: Callable[[], object]) -> None:
        """Start a writer process that calls ``job``, pickled with its shared arrays and
        ``PassedFd`` descriptors (``controller.sharedmem.dumps_passing``); the server
        holds its own copies of the descriptors (the caller may close its)."""
        data, fds = dumps_passing(job)
        _send(self._socket, _SPAWN, data, fds)

    def expect_writer(self) -> None:
        """A trial is being set up: have a writer forked and waiting for it."""
        _send(self._socket, _EXPECT)

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
def writer_server() -> Iterator[WriterServer]:
    """Run a ``WriterServer`` for the trials of the block (``LogWriter`` uses it)."""
    global _server
    server = WriterServer()
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


def _send(sock: socket.socket, kind: bytes, data: bytes = b"",
          fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [_HEADER.pack(kind, len(data))], list(fds))
    sock.sendall(data)


def _receive(sock: socket.socket) -> tuple[bytes, bytes, list[int]] | None:
    """The next request (kind, data, file descriptors), or None once the socket closed."""
    header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
    if not header:
        return None
    header += _receive_exactly(sock, _HEADER.size - len(header))
    kind, length = _HEADER.unpack(header)
    return kind, _receive_exactly(sock, length), fds


def _writer(sock: socket.socket) -> None:
    """A spare writer: waits for its trial's job on ``sock`` and runs it."""
    request = _receive(sock)
    if request is not None:  # else the server ended before a trial needed it
        sock.close()
        loads_passed(request[1], request[2])()


def _serve(ours: socket.socket, sock: socket.socket, starter: int) -> None:
    """The server: a writer per request until the socket closes or the process that
    started the server has ended and sent nothing more. A spare writer is forked ahead
    (at the start, and when a trial says it is coming: ``expect_writer``), so a trial's
    request finds one ready."""
    ours.close()
    writers: set[int] = set()  # forked writers not yet reaped, the spare's excepted

    def fork_spare() -> tuple[int, socket.socket]:
        mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def child() -> None:
            sock.close()
            mine.close()
            os.close(starter)
            _writer(its)

        pid = fork_quiet(child)
        its.close()
        return pid, mine

    spare: tuple[int, socket.socket] | None = fork_spare()
    while True:
        ready = select.select([sock.fileno(), starter], [], [])[0]
        if sock.fileno() not in ready:
            break  # the starter has ended (and its requests were all served)
        request = _receive(sock)
        if request is None:
            break  # closed
        kind, data, fds = request
        if kind == _USAGE:
            for pid in writers:
                os.waitpid(pid, 0)
            writers.clear()
            spent = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
            sock.sendall(struct.pack("<d", spent))
            continue
        spare = spare or fork_spare()
        if kind == _SPAWN:
            pid, channel = spare
            _send(channel, _SPAWN, data, fds)
            channel.close()
            writers.add(pid)
            spare = None
            for fd in fds:
                os.close(fd)
        for pid in [pid for pid in writers if os.waitpid(pid, os.WNOHANG)[0]]:
            writers.discard(pid)
