"""The ``fes`` command: builds the parser from ``controller.commands`` and runs one.

Exit codes: 0 success; 2 a usage or configuration error (the message names every bad
field and its allowed range); 3 a ``--require`` check failed; 4 some trials of a sweep
raised an error; 5-10 ``fes run``'s board and link failures; 130 interrupted by Ctrl-C
(outputs off, files written). The table is ``controller.commands.common``.

The subcommands are imported inside ``main``, where Ctrl-C and SIGTERM already end the
command with exit code 130 and one line: the imports (numpy, numba, pydantic) take most
of a second, and an interruption then must not print a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
from collections.abc import Sequence

# Only the exit codes at module level: everything else is imported inside ``main``'s
# handler, so that Ctrl-C at any moment after this line is exit 130, not a traceback.
from controller.commands.common import EXIT_INTERRUPTED, EXIT_USAGE

#: Each subcommand and the module of ``controller.commands`` that registers it, in the
#: order ``fes --help`` lists them.
COMMANDS = {
    "sim": "sim",
    "run": "run",
    "board-emulator": "board_emulator",
    "ports": "ports",
    "sweep": "sweep",
    "report": "report",
    "detect": "detect",
    "check-config": "check_config",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``fes`` and all its subcommands, or with ``only`` the one
    subcommand named (a command line that names it needs no other: importing and
    building the eight took a third of a fast command's own work)."""
    parser = argparse.ArgumentParser(
        prog="fes",
        description="Drop-foot FES timing controller and simulator.",
        epilog="Exit codes: 0 ok, 1 fes ports found no port on a known USB-serial bridge, "
        "2 bad usage or configuration, 3 a --require check failed, "
        "4 some trials of a sweep failed, 5-10 board and link failures (see fes run "
        "--help; 9 also fes ports --probe when no probed port holds a board), "
        "130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"controller.commands.{module}").register(sub)
    return parser


def command_names() -> list[str]:
    """The names of the subcommands (``sim``, ``run``, ...), sorted."""
    return sorted(
        name
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    )


def main(argv: Sequence[str] | None = None, exiting: bool = False) -> int:
    """Entry point of the ``fes`` console script. Its output may outlive its reader
    (``fes sim | head``: ``controller.console``). ``exiting``: the process exits when
    this returns (``entry``), so Ctrl-C and SIGTERM are ignored from the command's end,
    not handled by their default actions until the exit."""
    streams = sys.stdout, sys.stderr
    try:
        from controller.console import ReaderMayLeave

        sys.stdout = ReaderMayLeave(streams[0])  # type: ignore[assignment]
        sys.stderr = ReaderMayLeave(streams[1])  # type: ignore[assignment]
        one_blas_thread()
        from controller.interrupts import raise_if_interrupted, terminate_as_interrupt

        # SIGTERM in any phase ends the command as Ctrl-C does (exit 130).
        with terminate_as_interrupt(ignored_after=exiting):
            from controller.errors import ConfigError
            from controller.outputs import OutputError

            try:
                words = sys.argv[1:] if argv is None else list(argv)
                named = words[0] if words and words[0] in COMMANDS else None
                args = build_parser(named).parse_args(words)
                raise_if_interrupted()  # one the imports swallowed
                from controller.numba_cache import choose_cache_dir

                choose_cache_dir()  # before numba is imported (a read-only checkout)
                return int(args.handler(args))
            except ConfigError as err:
                print(f"fes: {err.render()}", file=sys.stderr)
                return EXIT_USAGE
            except OutputError as err:
                print(f"fes: {err}", file=sys.stderr)
                return EXIT_USAGE
            except Exception:
                # Libraries that catch the signal's KeyboardInterrupt turn it into an
                # error of their own (pydantic-core a SchemaError while it builds a
                # model's validator; numba, a compilation cut short, "no compiled object
                # yet"): after Ctrl-C or SIGTERM, that is the interruption too.
                raise_if_interrupted()
                raise
    except KeyboardInterrupt:
        print("fes: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.stdout, sys.stderr = streams


def entry() -> None:
    """The ``fes`` console script: ``main``, then exit with its code. Once the command has
    ended (its files complete), Ctrl-C and SIGTERM are ignored while the interpreter
    shuts down: they would otherwise end it by the signal, as if the command had been
    cut short. ``main`` ignores them as its command ends (``exiting``); here they are
    ignored again for a ``main`` interrupted before it had installed its handlers.

    The objects alive when the command ends are frozen (``gc.freeze``) before the
    interpreter shuts down: its last collections would otherwise walk every object the
    imports made (some sixty thousand) to free memory the process is about to give
    back (``fes detect`` took 0.09 s to exit, 0.015 s frozen, at load 3 on the project's
    2-core machine). Everything the command writes is complete and closed by then, and
    the ``atexit`` handlers still run. After an interrupted command, finalisers that fail
    as the interpreter shuts down are not reported (``silence_finalisers``).
    """
    code = main(exiting=True)
    from controller.interrupts import INTERRUPT_SIGNALS, silence_finalisers

    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        silence_finalisers()
    gc.freeze()
    forget_caught_interrupt()
    sys.exit(code)


def one_blas_thread() -> None:
    """Have numpy's OpenBLAS start no threads of its own, unless the user asked for some.

    Loading numpy loads OpenBLAS, which starts one worker thread per CPU at once, and
    each new worker spins for about a tenth of a second waiting for work before it
    sleeps: on a busy machine with few cores that spinning takes the CPU the command
    needs while it imports (numpy took 0.11 s to import instead of 0.05 s on this
    project's 2-core machine at load 1.6; ``fes detect`` 0.04 s more end to end). No
    command uses NumPy's linear algebra (the numerics are numba kernels); the processes
    of a sweep, which inherit this, would only compete for the same cores. Set
    ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) to choose otherwise."""
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def forget_caught_interrupt() -> None:
    """Clear CPython's record of an unhandled ``KeyboardInterrupt`` that ``main`` handled.

    When a signal's ``KeyboardInterrupt`` ends code that CPython runs from a string
    (``exec``/``eval`` of text: ``dataclasses`` and ``namedtuple`` build their methods so
    while ``fes`` imports its modules), CPython notes it as unhandled
    (``run_eval_code_obj`` in Python/pythonrun.c) even though ``main`` caught it, and at
    exit ends the interpreter by SIGINT (exit -2, no traceback) instead of with exit
    130. Running a string that ends normally clears the note."""
    exec("")  # a constant empty string: clears the note, runs nothing


if __name__ == "__main__":
    entry()
