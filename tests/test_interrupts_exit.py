"""Ctrl-C or SIGTERM in start-up ends ``fes`` with exit 130, never by SIGINT (exit -2).

The signal's ``KeyboardInterrupt`` often comes while CPython runs code from a string
(``dataclasses`` and ``namedtuple`` build their methods with ``exec``/``eval`` while
``fes`` imports numpy, numba, pydantic and its own modules). CPython then notes the
interrupt as unhandled even though ``controller.cli.main`` caught it, and at exit killed
the interpreter with SIGINT, after "fes: interrupted" had been printed
(``tests/test_kill.py`` saw it as exit -2). ``entry`` clears that note before it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

import pytest

from controller import cli
from controller.cli import forget_caught_interrupt
from controller.commands.common import EXIT_INTERRUPTED


def unhandled_interrupt_note() -> ctypes.c_int:
    """CPython's flag that makes the interpreter end by SIGINT at exit (3.11)."""
    try:
        return ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except ValueError:
        pytest.skip("this Python keeps the flag in its runtime state, out of ctypes' reach")


def test_an_interrupt_caught_from_exec_code_no_longer_ends_the_interpreter_by_sigint():
    note = unhandled_interrupt_note()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            exec("raise KeyboardInterrupt")  # as a signal handler raising inside exec'd code
        assert note.value == 1  # CPython would now end this process by SIGINT at exit
        forget_caught_interrupt()
        assert note.value == 0
    finally:
        exec("")  # never leave pytest itself to die by SIGINT


def test_an_error_a_library_made_of_the_interrupt_ends_fes_as_interrupted(monkeypatch, capsys):
    """pydantic-core turns a KeyboardInterrupt raised while it builds a validator into a
    SchemaError, numba one inside a compilation into "no compiled object yet": both were
    a traceback and exit 1 after a SIGTERM in start-up."""

    def parser(only: str | None = None) -> None:
        try:
            signal.raise_signal(signal.SIGTERM)  # fes's handler raises KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise RuntimeError("no compiled object yet") from err

    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main(["sim"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "fes: interrupted\n"


def test_an_error_without_a_signal_is_still_an_error(monkeypatch):
    def parser(only: str | None = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "build_parser", parser)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["sim"])
