"""Ctrl-C and SIGTERM (and SIGHUP, a terminal that hung up) in every phase of a command:
one meaning, exit code 130.

``fes`` turns SIGTERM into ``KeyboardInterrupt`` for the whole command
(``terminate_as_interrupt``), so a service manager's stop, ``timeout`` or ``kill`` ends a
trial as Ctrl-C does, in start-up as well as in the loop (where the loop's own SIGTERM
e-stop, ``controller.safety.estop``, turns the outputs off first). While a trial's
files are being completed, ``interrupts_deferred`` holds both signals back: the files
are finished, then the signal is delivered to the handler it would have reached, so an
interrupted trial always leaves complete files. The compiled simulation holds them back
around each block and its bookkeeping, so what the trial counts is what its kernel
published.

A signal ``fes`` was started with ignored stays ignored (``caught``), as POSIX tools do:
``nohup`` ignores SIGHUP so that a command outlives its terminal, and a shell without job
control starts a background command with SIGINT ignored so that the terminal's Ctrl-C
ends only the foreground one. SIGTERM (``kill``) still ends such a command.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

#: The signals a command ends on as on Ctrl-C (exit 130). SIGHUP is the terminal (an ssh
#: session, a window) going away: a live trial ends as on Ctrl-C, outputs off and files
#: written, instead of dying by the signal with STOP_ALL unsent and no summary.
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Set by the command's handler: Python ignores a ``KeyboardInterrupt`` raised while it
#: runs certain callbacks (an import lock's, a weak reference's), so a signal in
#: start-up can be swallowed; ``raise_if_interrupted`` raises it again at checkpoints.
_received = threading.Event()


def caught(signals: tuple[int, ...] = INTERRUPT_SIGNALS) -> tuple[int, ...]:
    """The ``signals`` this process does not ignore: those a command may catch. One the
    command was started with ignored was ignored on purpose (``nohup``, a background
    command of a shell without job control), and replacing its handler would end a
    trial the user meant to outlive a closed terminal or the foreground's Ctrl-C."""
    return tuple(signum for signum in signals if signal.getsignal(signum) != signal.SIG_IGN)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


def _swallowed(unraisable: Any) -> None:
    """``sys.unraisablehook`` of a command: a ``KeyboardInterrupt`` Python could not raise
    (it came inside a callback) is remembered, not printed as a traceback. Once one has
    come, a finaliser's failure is not printed either (``silence_finalisers``); before,
    anything is reported as Python reports it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _received.set()
        return
    if not _received.is_set():
        sys.__unraisablehook__(unraisable)


def silence_finalisers() -> None:
    """From now on a finaliser's failure (``__del__``, a weak reference's callback) is not
    printed: called once a command has ended interrupted. The interrupt can cut a
    library's object short in its ``__init__`` (llvmlite's ``OutputString`` without its
    pointer), and that object's ``__del__`` then fails when it is freed, as the
    interpreter shuts down: "Exception ignored in ... AttributeError" and a traceback
    after "fes: interrupted", which says nothing about the command (its files are
    complete) and which the user cannot act on."""
    sys.unraisablehook = _ignored


def _ignored(unraisable: Any) -> None:
    """An unraisable exception that is not printed (``silence_finalisers``)."""


def _printed_by_an_extension(kind: type[BaseException], value: BaseException,
                             traceback: TracebackType | None) -> None:
    """``sys.excepthook`` of a command. Inside the command nothing reaches it but a
    compiled module's ``PyErr_Print``: numba's ``_dispatcher`` prints the error of an
    import it makes while it loads, then fails with its own ``ImportError``. A
    ``KeyboardInterrupt`` printed that way is remembered, not printed as a traceback
    (the command then ends as interrupted); anything else is printed as Python does."""
    if issubclass(kind, KeyboardInterrupt):
        _received.set()
        return
    sys.__excepthook__(kind, value, traceback)


@contextmanager
def terminate_as_interrupt(ignored_after: bool = False) -> Iterator[None]:
    """In the block SIGINT, SIGTERM and SIGHUP (those ``caught``) raise
    ``KeyboardInterrupt`` in the main thread (and are remembered for
    ``raise_if_interrupted``); the previous handlers are restored after it, or, with
    ``ignored_after``, the signals are ignored from then on: for a process that exits
    once the block has ended (``controller.cli.entry``), where the default action
    restored for a moment would end it by a signal that came after its work was done
    (``tests/test_kill.py`` saw ``fes sim`` exit -15 with every file written)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in caught()}
    hook, sys.unraisablehook = sys.unraisablehook, _swallowed
    excepthook, sys.excepthook = sys.excepthook, _printed_by_an_extension
    try:
        yield
    finally:
        sys.excepthook = excepthook
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if ignored_after else handler)
        _received.clear()  # it meant this block: loops run later in this process go on


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C or SIGTERM came in the command so far (also
    one Python swallowed): called before anything that must not start after it."""
    if _received.is_set():
        raise KeyboardInterrupt


@dataclass
class Deferred:
    """The signal that arrived while interrupts were deferred, if any."""

    signum: int | None = None


@contextmanager
def interrupts_deferred() -> Iterator[Deferred]:
    """Hold SIGINT, SIGTERM and SIGHUP (those ``caught``) back for the block; after it,
    deliver the first that arrived to the handler that was in place (the block's own
    exception, if it raised, goes first). Outside the main thread it only runs the
    block."""
    received = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if received.signum is None:
            received.signum = signum

    previous = {signum: signal.signal(signum, hold) for signum in caught()}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received.signum is not None:
        signal.raise_signal(received.signum)
