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
import json
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


#: ``fes sim`` in a fresh process whose kernels' cache loads each receive a SIGTERM as
#: they begin: it records which loads finished before the interrupt was raised.
_SIGTERM_IN_EVERY_LOAD = """
import signal, sys
from numba.core.caching import Cache
from controller.cli import main

real = Cache._load_overload
finished = []

def interrupted(self, sig, target_context):
    signal.raise_signal(signal.SIGTERM)  # as if it came while LLVM fetched the code
    loaded = real(self, sig, target_context)
    finished.append(loaded is not None)
    return loaded

Cache._load_overload = interrupted
code = main(["sim", "--duration-s", "1", "--out", sys.argv[1]])
print(code, finished)
"""


def test_a_signal_while_a_kernel_loads_from_the_cache_ends_fes_after_the_load(tmp_path):
    """A SIGTERM that arrived while the loop's kernel loaded from numba's cache killed
    ``fes sim`` by SIGSEGV (1 in 60 in the kill tests): the interrupt was lost in LLVM's
    callback and numba wrote to address 0. A load now runs whole and the interrupt
    ends the command after it (exit 130). The first load is the CSV renderer's, as the
    trial's files open (the config check runs no kernel): the trial then ends as
    interrupted before its loop, its files complete, loading the kernels that finishing
    them needs, each whole."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "controller.cli", "sim", "--duration-s", "1",
                    "--out", str(tmp_path / "warm")], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", _SIGTERM_IN_EVERY_LOAD,
                           str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    code, finished = done.stdout.split(maxsplit=1)
    assert int(code) == EXIT_INTERRUPTED, done.stderr
    assert finished.startswith("[True") and "False" not in finished, finished  # all whole
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["duration_s"] == 0.0
    assert "Traceback" not in done.stderr


#: ``fes`` whose command leaves an object with a failing finaliser (as llvmlite's
#: ``OutputString`` when an interrupt cut its ``__init__`` short) and ends with the
#: exit code given.
_HALF_BUILT_AT_EXIT = """
import sys
from controller import cli

class HalfBuilt:
    def __del__(self):
        self._ptr  # never set: __init__ was cut short

def command(exiting=False):
    cli.kept = HalfBuilt()  # freed as the interpreter shuts down
    return int(sys.argv[1])

cli.main = command
cli.entry()
"""


@pytest.mark.parametrize("code", [EXIT_INTERRUPTED, 0])
def test_a_half_built_object_freed_at_exit_is_reported_only_without_an_interrupt(code):
    """The slow kill tests saw "fes: interrupted" followed by "Exception ignored in
    OutputString.__del__" and a traceback: the SIGTERM had cut the object's ``__init__``
    short. After an interrupted command such a failure is not printed; after a command
    that ended normally it still is (a real defect)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _HALF_BUILT_AT_EXIT, str(code)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code
    assert ("AttributeError" in done.stderr) == (code == 0), done.stderr


#: ``fes check-config configs/default.toml`` (which ends with 0) sent SIGTERM by itself
#: once the command has ended and before the process exits (from ``gc.freeze``, which
#: ``entry`` calls on its way out): a service manager's stop or ``timeout`` that comes
#: just as the trial finishes.
_SIGTERM_AFTER_THE_COMMAND = """
import gc, os, signal, sys
from controller import cli

freeze = gc.freeze

def sigterm_then_freeze():
    os.kill(os.getpid(), signal.SIGTERM)
    freeze()

gc.freeze = sigterm_then_freeze
sys.argv = ["fes", "check-config", sys.argv[1]]
cli.entry()
"""


def test_a_sigterm_after_the_command_ended_does_not_end_fes_by_the_signal():
    """``tests/test_kill.py`` saw ``fes sim`` end by SIGTERM (exit -15) with every file
    written: between the command's end (its handler of SIGTERM removed, the default
    one back) and ``entry`` ignoring the signal, the default action ended the process.
    A trial that completed must exit with its own code."""
    import subprocess
    import sys
    from pathlib import Path

    config = Path(__file__).parents[1] / "configs" / "default.toml"
    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_THE_COMMAND, str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
