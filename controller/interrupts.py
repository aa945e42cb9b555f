"""Ctrl-C and SIGTERM in every phase of a command: one meaning, exit code 130.

``fes`` turns SIGTERM into ``KeyboardInterrupt`` for the whole command
(``terminate_as_interrupt``), so a service manager's stop, ``timeout`` or ``kill`` ends a
trial as Ctrl-C does, in start-up as well as in the loop (where the loop's own SIGTERM
e-stop, ``controller.safety.estop``, turns the outputs off first). While a trial's
files are being completed, ``interrupts_deferred`` holds both signals back: the files
are finished, then the signal is delivered to the handler it would have reached, so an
interrupted trial always leaves complete files. The compiled simulation holds them back
around each block and its bookkeeping, so what the trial counts is what its kernel
published.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """In the block SIGTERM raises ``KeyboardInterrupt`` in the main thread, as Ctrl-C
    does; the previous handler is restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Deferred:
    """The signal that arrived while interrupts were deferred, if any."""

    signum: int | None = None


@contextmanager
def interrupts_deferred() -> Iterator[Deferred]:
    """Hold SIGINT and SIGTERM back for the block; after it, deliver the first that
    arrived to the handler that was in place (the block's own exception, if it raised,
    goes first). Outside the main thread it only runs the block."""
    received = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if received.signum is None:
            received.signum = signum

    previous = {signum: signal.signal(signum, hold) for signum in _SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received.signum is not None:
        signal.raise_signal(received.signum)
