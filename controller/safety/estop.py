"""E-stop requests from outside the loop: POSIX signals and a key on a terminal.

All of them end in ``Watchdog.emergency_stop(source)`` (every output off, a fault
latched until ``reset``), called from a thread of its own: a signal handler runs in the
main thread between two bytecodes, possibly in the middle of the loop's own call into
the stimulator, and must not re-enter the driver there or wait for a lock that thread
holds.

- ``SIGUSR1``: e-stop; the loop keeps running (and recording) with outputs off.
- ``SIGTERM``, ``SIGHUP`` (the terminal hung up): e-stop, then ``KeyboardInterrupt`` in
  the main thread, so the loop ends as on Ctrl-C: outputs off, files written, exit 130.
- ``EStopKeys``: a thread reading a terminal (or any file descriptor); a space or Esc
  byte is an e-stop. The live command puts the terminal in cbreak mode
  (``tty.setcbreak``) and starts it for the duration of the trial.
"""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

#: Bytes that stop stimulation when typed in the live loop's terminal: space and Esc.
ESTOP_KEYS = frozenset(b" \x1b")


class EStoppable(Protocol):
    """What an e-stop source needs: the watchdog's ``emergency_stop``."""

    def emergency_stop(self, source: str = "api") -> None: ...


def _stop_in_thread(target: EStoppable, source: str) -> None:
    threading.Thread(
        target=target.emergency_stop, args=(source,), name=f"fes-estop-{source}", daemon=True
    ).start()


@contextmanager
def estop_signals(target: EStoppable) -> Iterator[None]:
    """Install the SIGUSR1, SIGTERM and SIGHUP e-stops for the ``with`` block, then restore
    the previous handlers. A signal the command was started with ignored stays ignored
    (``controller.interrupts.caught``). Outside the main thread (where Python cannot
    install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        _stop_in_thread(target, "SIGUSR1")

    def on_term(signum: int, frame: FrameType | None) -> None:
        _stop_in_thread(target, signal.Signals(signum).name)
        raise KeyboardInterrupt

    handlers = {signal.SIGUSR1: on_usr1, signal.SIGTERM: on_term, signal.SIGHUP: on_term}
    previous = {
        signum: signal.signal(signum, handler) for signum, handler in handlers.items()
        # one the command was started with ignored stays so (nohup's SIGHUP)
        if signal.getsignal(signum) != signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class EStopKeys:
    """Reads single bytes from ``fd`` in a daemon thread; an ``ESTOP_KEYS`` byte calls
    ``emergency_stop("key")``. Ends at end of file; other bytes are ignored."""

    def __init__(self, fd: int, target: EStoppable) -> None:
        self._fd = fd
        self._target = target
        self._thread = threading.Thread(target=self._run, name="fes-estop-keys", daemon=True)

    def start(self) -> EStopKeys:
        """Start listening; returns self."""
        self._thread.start()
        return self

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the listener to end (at end of file)."""
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1)
            except OSError:
                return
            if not data:
                return
            if data[0] in ESTOP_KEYS:
                self._target.emergency_stop("key")


@contextmanager
def estop_keys(fd: int | None, target: EStoppable) -> Iterator[bool]:
    """While the block runs, a key in ``ESTOP_KEYS`` typed on terminal ``fd`` is an
    e-stop. The terminal is put in cbreak mode (keys arrive without Enter, still echoed
    and Ctrl-C still works) and restored afterwards. Yields False, doing nothing, when
    ``fd`` is None or not a terminal (a pipe, CI)."""
    if fd is None or not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        EStopKeys(fd, target).start()
        yield True
    finally:
        # A terminal that hung up (SIGHUP: its window closed, an ssh session dropped) has
        # no modes left to restore; tcsetattr fails there with EIO.
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
