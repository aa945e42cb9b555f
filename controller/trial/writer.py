"""Streaming the loop's record to log sinks from a process of its own.

The loop writes every sample into preallocated arrays in shared memory
(``TrialRecorder``, ``DeadlineMonitor``, see ``controller.sharedmem``) and then
publishes how many rows are complete; it never writes a file, prints or waits for
anyone. A ``LogWriter`` process, forked before the loop starts, polls the published
counts (every ``poll_s`` when it has caught up), hands each sink the rows that appeared
since, in order, and makes a final pass when stopped. The writer is a bare ``os.fork``
of the trial's process (no new interpreter, no imports, no ``multiprocessing``
bootstrap: it starts with the sinks and their compiled renderers ready), told to stop by
a byte on a pipe. So:

* a slow sink delays only the writer, never the loop: they share no lock, no queue and
  no interpreter (a writer *thread* would share the GIL, and every time it wakes the
  loop can be made to wait until the OS schedules it: stalls of several milliseconds
  were measured that way on a loaded machine);
* no sample is lost however slow a sink is: the arrays hold the whole trial and a row is
  never overwritten, so a sink that falls behind simply gets larger blocks later
  (``max_backlog`` says how far behind the sinks ran, in samples). A long trial's arrays
  are rings instead (``ring_rows``, ``controller.trial.window``): a simulated trial's
  loop on the virtual clock waits for the writer (``written``) before it overwrites a
  row; a paced loop never waits for anyone, so a writer that falls a whole ring behind
  it (minutes of rows: a disk that stopped answering) has lost rows: that is a failure
  of its output, as a full disk is (``failure``, below), at the first row it could not
  write whole. Rows of a ring are handed to the sinks as copies (``copy_rows``), for
  the checks of a paced loop's rows and for sinks that keep what they are handed (a
  Parquet part until it is written).

Publication order: the loop raises a count only after the row it counts is complete. The
writer reads the count before every pass but hands the sinks only rows whose count it
read ``poll_s`` earlier at the least, so that a CPU which makes stores visible out of
order (not x86-64, but ARM may) has long made the row visible too; the final pass after the
stop signal (a byte through a pipe: the kernel's pipe lock orders memory on every CPU)
reads everything. Sending it never waits for the writer (a ``multiprocessing.Event``
would: its ``set`` waits until the sleeping writer process has woken, a millisecond or
more on a busy machine, at the end of every trial).

A sink whose output cannot be written (an ``OSError``: a full disk, a vanished
folder) is dropped and the writer goes on with the others; ``failure`` then names the
file and the reason (``controller.outputs.OutputError``). A sink that raises anything
else ends the writer process with its traceback on stderr; ``stop`` then raises
``LogWriterError``. The loop carries on regardless: a broken log must not take the
outputs out of control. The writer process is forked before
``controller.hotpath.realtime_section``, so it keeps normal priority and any CPU.
Sinks run in that process: what they keep in memory stays there (write results to a
file or a stream).

Ready before the loop: whatever a sink does only the first time it meets rows (numba
compiling a kernel, or loading it from its cache; importing a module; a library's
first-call set-up) would otherwise happen while a paced loop already runs, and the
writer would fall that far behind it: a first run after an install compiled the
pulse-time kernel of a long trial's scores in the writer (0.4-0.6 s on a quiet CPU, more
on a loaded one), while a test's ring of rows holds a quarter of a second to two
seconds. So, once forked, the writer
calls each sink's ``warm_up`` (``WarmsUp``: it takes every path its ``write`` can take,
on made-up rows, writing nothing) and then says it is ready on the pipe it later says
"done" on; ``start`` returns only then, before the trial's clock starts. A writer not
ready within ``ready_timeout_s`` is killed and ``WriterNotReady`` raised (an output
that cannot be written: nothing was sampled or stimulated yet); one that ended before
it was ready failed (``LogWriterError``, its traceback on stderr). Kernels the sinks
share with the trial's process are compiled there before the fork (``CsvStream``,
``StreamedScores``): a compile in the writer itself would also map some 60 MB of
LLVM's code into its resident set (docs/files.md).

Kills: the writer ignores SIGINT and SIGTERM (the trial's own process handles them and
stops the writer when its files are due). If the trial's process dies (SIGKILL, the OOM
killer), the writer notices at once (it waits on the process's pidfd as well as on the
stop pipe), makes its final pass over everything published and closes the sinks, so
the files hold every row the loop had published. Until then it holds the trial folder's
lock (``controller.trial.folder.locks_kept_by_fork``): a new ``--overwrite`` trial into
the folder is refused while it writes there.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from controller.interrupts import INTERRUPT_SIGNALS
from controller.outputs import OutputError, reason
from controller.sharedmem import RingOverrun, ring_overwritten, shared_zeros
from controller.trial.folder import locks_kept_by_fork, release_kept_locks

_WRITTEN = 0
_MAX_BACKLOG = 1
_FAILURE_LENGTH = 2
#: Rows a paced loop may be writing beyond the count it published (the row of the sample
#: it is serving).
PACED_LEAD_ROWS = 1
#: Room for the failure message (UTF-8) in shared memory.
_FAILURE_BYTES = 1024
#: What a writer says once its sinks are closed.
_DONE = b"\1"
#: What a writer says once its sinks are warmed up (``WarmsUp``), before any row.
_READY = b"\2"
#: How long ``LogWriter.start`` waits for the writer to be ready. Its warm-up takes a
#: few milliseconds when the trial's process compiled the sinks' kernels (a first run
#: after an install); far beyond that, the machine is not fit to pace a trial.
READY_TIMEOUT_S = 30.0
#: The most rows the writer hands its sinks at a pass while the loop runs: between two
#: passes it reads the published count again (a pass of a whole behind simulation would
#: leave everything published meanwhile to the final pass, which the trial waits for).
#: A pass of 4,096 rows takes about as long as the compiled loop takes to publish them
#: (a millisecond at 1 kHz), so the writer stays about a pass behind.
PASS_ROWS = 4096
#: Writers that have closed their files and may still be ending, to be reaped.
_ENDING: list[int] = []


def _reap_ended(wait: bool = False) -> None:
    """Reap the writers of ``_ENDING`` that have ended (with ``wait``: all, once ended)."""
    for pid in list(_ENDING):
        try:
            ended, _ = os.waitpid(pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:  # reaped by someone else
            ended = pid
        if ended:
            _ENDING.remove(pid)


def wait_for_ended_writers() -> None:
    """Wait until every writer that has closed its files has also ended, and reap it:
    from then on ``resource.getrusage(RUSAGE_CHILDREN)`` counts its CPU time (a
    benchmark's)."""
    _reap_ended(wait=True)


def _first_path(sinks: Sequence[LogSink], default: str) -> str:
    """The file of the first of ``sinks`` that names one (its ``path``), else ``default``."""
    return next((str(p) for p in (getattr(s, "path", None) for s in sinks) if p), default)


class LogWriterError(RuntimeError):
    """A log sink failed; its traceback was printed by the writer process."""


class WriterNotReady(OutputError):
    """The log writer did not say it was ready in time: the trial's files cannot be
    written, and no sample was taken."""


class Tail(Protocol):
    """Preallocated per-sample rows in shared memory, published in order."""

    def published(self) -> int:
        """Rows complete so far; they will not change."""
        ...

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]: ...

    def prefault(self) -> None:
        """Touch every page of the rows' memory before a paced loop writes into it."""
        ...


class LogSink(Protocol):
    """Receives the trial's rows in order, in blocks, in the writer process."""

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        """Rows ``first`` to ``first + len(block) - 1``, one array per column."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class WarmsUp(Protocol):
    """A sink with work to do before its first rows (``LogWriter`` calls ``warm_up`` in
    the writer process before it says it is ready)."""

    def warm_up(self) -> None:
        """Take every path ``write`` can take (compiled kernels loaded, modules imported,
        first calls made) on made-up rows, writing nothing and changing no figure."""
        ...


class LogWriter:
    """A process that copies newly completed rows of ``tails`` to every sink."""

    def __init__(
        self, tails: Sequence[Tail], sinks: Sequence[LogSink], poll_s: float = 0.05,
        ring_rows: int | None = None, copy_rows: bool = False, paced: bool = False,
        ready_timeout_s: float | None = None,
    ) -> None:
        """``ring_rows``: the tails keep that many rows, as rings (None: every row);
        ``copy_rows``: hand the sinks copies of a ring's rows; ``paced``: the loop does
        not wait for the writer, so rows a whole ring behind it are lost (checked after
        copying them); ``ready_timeout_s``: how long ``start`` waits for the writer's
        warm-up (``READY_TIMEOUT_S`` by default)."""
        if not poll_s > 0.0:
            raise ValueError(f"poll_s must be positive, got {poll_s!r}")
        if ready_timeout_s is None:
            ready_timeout_s = READY_TIMEOUT_S
        if not ready_timeout_s > 0.0:
            raise ValueError(f"ready_timeout_s must be positive, got {ready_timeout_s!r}")
        self._ready_timeout_s = ready_timeout_s
        self._tails = tuple(tails)
        self._sinks = tuple(sinks)
        self._poll_s = poll_s
        self._ring_rows = ring_rows
        self._copy_rows = ring_rows is not None and (copy_rows or paced)
        self._paced_ring = ring_rows is not None and paced
        self._lost = False  # (in the writer process) rows were overwritten unwritten
        self._pid = 0  # the writer process, once started; 0 again once it has ended
        self._stop_fd = -1  # this process's end of the stop pipe, while the writer runs
        self._done_fd = -1  # where the writer says that its files are complete
        self._exit_code: int | None = None
        self._progress = shared_zeros(3, np.int64)
        self._failure = shared_zeros(_FAILURE_BYTES, np.uint8)

    #: The sinks run in a process of their own (which has its own copies of their files).
    forked = True

    @property
    def written(self) -> int:
        """Rows every sink has received."""
        return int(self._progress[_WRITTEN])

    def ended(self) -> bool:
        """Whether the writer process has ended (or never ran): it will write no more."""
        if self._done_fd < 0:
            return True
        return bool(select.select([self._done_fd], [], [], 0.0)[0])

    @property
    def max_backlog(self) -> int:
        """The most rows that were ever waiting for the sinks at one poll."""
        return int(self._progress[_MAX_BACKLOG])

    @property
    def failure(self) -> OutputError | None:
        """The first output a sink could not write (file and reason), if any."""
        length = int(self._progress[_FAILURE_LENGTH])
        if length == 0:
            return None
        path, _, why = bytes(self._failure[:length]).decode("utf-8", "replace").partition("\0")
        return OutputError(path, why)

    def start(self) -> None:
        """Fork the writer (before the loop, and before any real-time settings) and wait
        until its sinks are warmed up: ``WriterNotReady`` if that outlasts
        ``ready_timeout_s`` (the writer is killed), ``LogWriterError`` if it ended first."""
        _reap_ended()
        stop_read, stop_write = os.pipe()
        done_read, done_write = os.pipe()
        trial = os.pidfd_open(os.getpid())  # readable once this process has ended
        sys.stderr.flush()  # nothing buffered here is written twice
        # Ctrl-C and SIGTERM wait until the writer ignores them (and the trial's process
        # has its id): one that came in between would end the writer before its files.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPT_SIGNALS)
        try:
            with locks_kept_by_fork():  # the trial folder's, until its files are closed
                pid = os.fork()
            if pid == 0:  # the writer: it ends here, without this process's exit handlers
                code = 1
                try:
                    for signum in INTERRUPT_SIGNALS:
                        signal.signal(signum, signal.SIG_IGN)
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)
                    os.close(stop_write)
                    os.close(done_read)
                    sinks = list(self._sinks)
                    self._warm_up(sinks)
                    os.write(done_write, _READY)
                    self._run(stop_read, trial, sinks)
                    code = 0
                    release_kept_locks()  # before "done": the trial may claim it again
                    with contextlib.suppress(BrokenPipeError):  # the trial has died
                        os.write(done_write, _DONE)
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            self._pid, self._stop_fd, self._done_fd = pid, stop_write, done_read
            done_read = -1
        finally:
            for fd in (stop_read, done_write, done_read, trial):
                if fd >= 0:
                    os.close(fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        self._wait_ready()

    def _warm_up(self, sinks: list[LogSink]) -> None:
        """(In the writer process.) Every sink's ``warm_up``, before any row; one whose
        output fails (a full disk under a spill file) is dropped as at a write."""
        for sink in list(sinks):
            if isinstance(sink, WarmsUp):
                self._guarded(sinks, sink, sink.warm_up)

    def _wait_ready(self) -> None:
        """Wait until the writer says its sinks are warmed up (``start``)."""
        answered = bool(select.select([self._done_fd], [], [], self._ready_timeout_s)[0])
        if answered and os.read(self._done_fd, len(_READY)) == _READY:
            return
        pid, self._pid = self._pid, 0
        if not answered:  # still warming up: it is not wanted any more
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        self._close_pipes()
        if not answered:
            raise WriterNotReady(
                _first_path(self._sinks, "the trial's files"),
                f"its log writer was not ready within {self._ready_timeout_s:g} s (it "
                "loads what it writes with before the trial starts; a machine too loaded "
                "to pace a trial); nothing was sampled or stimulated")
        code = os.waitstatus_to_exitcode(status) or 1
        raise LogWriterError(f"the log writer failed before it was ready (exit code {code}); "
                             "its traceback is above")

    def _close_pipes(self) -> None:
        """Close this process's ends of the pipes to the writer."""
        for fd in (self._stop_fd, self._done_fd):
            if fd >= 0:
                os.close(fd)
        self._stop_fd = self._done_fd = -1

    def request_stop(self) -> None:
        """Tell the writer to make its final pass and end (``stop`` waits for it)."""
        if self._stop_fd >= 0:
            with contextlib.suppress(BrokenPipeError):  # it has ended: ``stop`` says how
                os.write(self._stop_fd, b"\0")
            os.close(self._stop_fd)
            self._stop_fd = -1

    def stop(self) -> None:
        """Let the writer pass on what is left and close the sinks; wait until it has.

        The writer says so on a pipe once its files are closed; the trial goes on from
        there while the process ends (it unmaps a copy of this process's memory, up to a
        few ms) and is reaped later. A writer that ended without saying so failed: its
        exit code is waited for and raised as ``LogWriterError``."""
        self.request_stop()
        if self._pid:
            said = os.read(self._done_fd, len(_DONE))
            if said == _READY:  # stopped while ``start`` waited for it (Ctrl-C)
                said = os.read(self._done_fd, len(_DONE))
            os.close(self._done_fd)
            self._done_fd = -1
            pid, self._pid = self._pid, 0
            if said == _DONE:
                self._exit_code = 0
                _ENDING.append(pid)
                _reap_ended()
            else:
                _, status = os.waitpid(pid, 0)
                self._exit_code = os.waitstatus_to_exitcode(status) or 1
        if self._exit_code not in (None, 0):
            raise LogWriterError(
                f"the log writer failed (exit code {self._exit_code}); "
                "its traceback is above"
            )

    def __enter__(self) -> LogWriter:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> int:
        return min(tail.published() for tail in self._tails)

    def _run(self, stop_fd: int, trial: int, sinks: list[LogSink]) -> None:
        """The writer process: pass rows on to ``sinks`` (those its warm-up left) until a
        byte (or the end of the stream) arrives on ``stop_fd`` or the trial's process
        (its pidfd ``trial``) has ended, then the final pass. It ignores Ctrl-C and
        SIGTERM: they are the trial's to handle, which stops it in time.

        The writer reads the published count before every pass and hands the sinks the
        rows of the newest count it read ``poll_s`` ago or earlier, ``PASS_ROWS`` at a
        time, without waiting while such rows are left: it stays ``poll_s`` behind the
        loop (not a whole pass behind, nor idle while it waits for its first poll), so
        the final pass after the loop's end is short."""
        # Counts read and when each was first read, oldest first; ``ripe`` is the newest
        # count read ``poll_s`` ago or earlier.
        counts: collections.deque[tuple[int, float]] = collections.deque()
        ripe, timeout = 0, 0.0
        # The trial's death also ends the wait when a process it forked later (which
        # inherited the pipe's other end) still runs: hence its pidfd.
        while not select.select([stop_fd, trial], [], [], timeout)[0]:
            ready = self._ready()
            now = time.monotonic()  # after the read: a count is never older than said
            if not counts or ready > counts[-1][0]:
                counts.append((ready, now))
            while counts and counts[0][1] <= now - self._poll_s:
                ripe = counts.popleft()[0]
            self._note_backlog(ripe)
            self._write_up_to(min(ripe, self.written + PASS_ROWS), sinks)
            if ripe > self.written:
                timeout = 0.0
            else:  # until the oldest count not yet written is ripe (or a poll later)
                timeout = counts[0][1] + self._poll_s - now if counts else self._poll_s
        self._write_up_to(self._ready(), sinks)
        self._close_all(sinks)

    def _note_backlog(self, ready: int) -> None:
        """Count the rows up to ``ready`` that wait for the sinks in ``max_backlog``."""
        self._progress[_MAX_BACKLOG] = max(self.max_backlog, ready - self.written)

    def _write_up_to(self, ready: int, sinks: list[LogSink]) -> None:
        written = self.written
        if ready <= written:
            return
        self._note_backlog(ready)
        if self._lost:
            return
        rows: dict[str, np.ndarray] = {}
        for tail in self._tails:
            rows |= tail.rows(written, ready)
        if self._copy_rows:
            rows = {name: np.array(column) for name, column in rows.items()}
        if self._paced_ring:
            # The paced loop may be writing the row of the sample after the newest.
            assert self._ring_rows is not None
            newest = max(tail.published() for tail in self._tails)
            if ring_overwritten(written, newest, self._ring_rows, PACED_LEAD_ROWS):
                self._fell_behind(RingOverrun("samples", written, newest, self._ring_rows),
                                  sinks)
                return
        for sink in list(sinks):
            if self._lost:  # a sink's ring (the detected events') was overwritten
                return
            self._guarded(sinks, sink, functools.partial(sink.write, written, rows))
        self._progress[_WRITTEN] = ready

    def _fell_behind(self, lost: RingOverrun, sinks: list[LogSink], path: str = "") -> None:
        """The rows of a ring (the samples, or a sink's: the detected events) from
        ``lost.first`` on were overwritten before they were written: end every sink
        where it is (its file holds the rows before), and say so as the failure of
        ``path`` (the samples' file by default)."""
        self._lost = True
        path = path or _first_path(sinks, "the log")
        what, written = lost.what, self.written
        why = (f"the log writer fell {lost.newest - lost.first} {what} behind the loop, more "
               f"than its ring of {lost.size}: {what} from {lost.first} on were overwritten "
               f"before they were written (the files hold the {written} samples before "
               f"sample {written}; the summary, scored from the rows as they were written, "
               "is not written)")
        self._set_failure(path, why)
        for sink in list(sinks):
            sinks.remove(sink)
            with contextlib.suppress(Exception):  # the failure above is the one told
                sink.close()

    def _close_all(self, sinks: list[LogSink]) -> None:
        """Close every sink (each taken out of ``sinks`` first: a failure while one
        closes may end the others)."""
        for sink in list(sinks):
            if sink in sinks:
                sinks.remove(sink)
                self._guarded(sinks, sink, sink.close)

    def _set_failure(self, path: str, why: str) -> None:
        if self._progress[_FAILURE_LENGTH] == 0:
            text = f"{path}\0{why}".encode()[:_FAILURE_BYTES]
            self._failure[: len(text)] = np.frombuffer(text, dtype=np.uint8)
            self._progress[_FAILURE_LENGTH] = len(text)

    def _guarded(self, sinks: list[LogSink], sink: LogSink, call: Callable[[], None]) -> None:
        """Run ``call``; a sink whose output fails (``OSError``) is dropped and closed
        (its file is released before the writer says it is done), the first failure
        kept for ``failure``. A sink that read a ring of the loop's a whole ring behind
        it (``RingOverrun``: the detected events of a paced loop) ends every sink, as
        rows overwritten before they were written do."""
        try:
            call()
        except RingOverrun as lost:
            self._fell_behind(lost, sinks, str(getattr(sink, "path", "") or ""))
        except OSError as err:
            if sink in sinks:
                sinks.remove(sink)
                if call != sink.close:
                    with contextlib.suppress(OSError):  # the failure above is the one told
                        sink.close()
            self._set_failure(str(err.filename or getattr(sink, "path", "the log")),
                              reason(err))


class InlineWriter(LogWriter):
    """A ``LogWriter`` without a process: ``stop`` hands the sinks every row at once, in
    the calling process. For a trial nobody watches while it runs and whose files are
    only kept once it has finished (a sweep's trials): no fork, no polling."""

    forked = False
    #: The sinks still written to, once ``write_ready`` has written some rows.
    _open: list[LogSink] | None = None

    def start(self) -> None:
        """Nothing to start: the rows are written at ``stop``."""

    def request_stop(self) -> None:
        """Nothing runs meanwhile: ``stop`` does the writing."""

    def write_ready(self, ready: int) -> None:
        """Hand the sinks the rows up to ``ready`` now, in the calling process (a ring of
        rows about to come round: ``controller.trial.window``)."""
        if self._open is None:
            self._open = list(self._sinks)
        self._write_up_to(ready, self._open)

    def stop(self) -> None:
        sinks = list(self._sinks) if self._open is None else self._open
        self._write_up_to(self._ready(), sinks)
        self._close_all(sinks)
