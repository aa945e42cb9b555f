"""What several subcommands share: exit codes, loading a checked trial config, the
``--require`` option and the real-time options.

Every subcommand's parser is built for any ``fes`` command line (``fes --help`` lists
them all), so the modules of ``controller.commands`` import at their top only what a
parser needs: the standard library, ``controller.errors`` and ``controller.resources``.
numpy, numba, pydantic and the project's models are imported by the command that runs,
inside its handler (tests/test_startup.py holds ``fes --help`` to that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.errors import ConfigError

if TYPE_CHECKING:  # imported when needed: `fes` loads this module before its handlers
    from controller.config import TrialConfig

# Exit codes of every subcommand: one meaning per number across the whole `fes` command.
EXIT_OK = 0
EXIT_NOTHING_FOUND = 1  # fes ports: no serial port that may hold a board
EXIT_USAGE = 2  # bad usage or configuration; the message names each bad field
EXIT_REQUIREMENT_FAILED = 3  # a --require check on the summary figures failed
EXIT_TRIALS_FAILED = 4  # some trials of a sweep raised an error; the others are written
EXIT_LINK_LOST = 5  # fes run: unplugged, or the board stopped answering
EXIT_BOARD_FAULT = 6  # fes run: the board switched its outputs off by itself
EXIT_WATCHDOG_FAULT = 7  # fes run: the safety watchdog latched a fault
EXIT_HOST_FAULT = 8  # fes run: the loop fell too far behind the board's stream
#: fes run: the port cannot be opened, or nothing answers HELLO; fes ports: no probed port
#: holds a board
EXIT_NO_BOARD = 9
EXIT_REFUSED = 10  # fes run: the board was refused (reasons listed)
EXIT_INTERRUPTED = 130


def output_path(text: str) -> Path:
    """An ``--out`` option: a path, never empty (``--out ""`` would write into the
    current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (it would mean the current folder)")
    return Path(text)


def input_path(text: str) -> Path:
    """A ``--config FILE`` or a folder to read: a path, never empty (``--config
    "$CONFIG"`` with the variable unset was read as the current folder, "invalid
    configuration (.): not a regular file")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (a variable that was not set?)")
    return Path(text)


def add_output_options(parser: argparse.ArgumentParser, default: str) -> None:
    """``--out DIR`` and ``--overwrite`` of a command that writes one trial's files."""
    parser.add_argument(
        "--out", type=output_path, metavar="DIR",
        help=f"output folder, new or empty (default {default}); the trial's files are "
        "written while it runs, so a crash keeps what was recorded (docs/files.md)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="let the trial use an output folder that already holds files: the earlier "
        "trial's files are removed first (other files are left alone); without it such "
        "a folder is refused (exit 2), so no trial's files are ever mixed with another's "
        "(a sweep's folder is refused even with it)",
    )


def not_a_sweep_folder(out: Path) -> None:
    """``ConfigError`` naming ``--out`` if ``out`` is a sweep's folder (``fes sweep``): a
    trial's files would mix with the sweep's, ``--overwrite`` or not (it removes only an
    earlier trial's files)."""
    from controller.sweep.store import sweep_files

    if found := sweep_files(out):
        raise ConfigError("--out", [
            f"{out} is a sweep folder (fes sweep wrote {', '.join(found)} there); a trial "
            "is not written into a sweep's folder, not even with --overwrite: choose "
            "another --out"])


def not_a_trial_folder(out: Path) -> None:
    """``ConfigError`` naming ``--out`` if ``out`` holds a trial's files (``fes sim`` or
    ``fes run``, finished or killed): a sweep's files would mix with them."""
    from controller.trial.folder import trial_files

    if found := trial_files(out):
        raise ConfigError("--out", [
            f"{out} holds a trial's files ({', '.join(found)}: fes sim or fes run wrote "
            "them); a sweep writes its own layout (sweep.json, results.csv, ranking.csv, "
            "trials/) into a folder of its own: choose another --out"])


def add_format_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--format csv|parquet``: how a command writes its tables."""
    parser.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", dest="data_format",
        help=f"{what} as CSV (default) or as Parquet (typed columns, units and the config "
        "in the file's metadata; needs pip install 'fes-timing[parquet]'; docs/files.md)",
    )


def load_checked(path: Path | None, overrides: dict[str, Any]) -> TrialConfig:
    """A validated trial config whose patient profile also loads and validates."""
    from controller.config import load_config, unused_settings
    from sim.patient import load_patient

    config = load_config(path, overrides)
    patient = config.sim.patient
    try:
        load_patient(patient)
    except ConfigError as err:
        if "/" in patient or patient.endswith(".toml"):
            raise  # a profile file's own fields, named in it
        # A name: the config's field, named where the config came from.
        source = str(path or "configs/default.toml") + (" + command line" if overrides else "")
        raise ConfigError(source, [f"sim.patient {patient!r}: {p}" for p in err.problems]
                          ) from None
    if path is not None:
        note_unread(path, unused_settings(config))
    return config


def note_unread(path: Path, unused: dict[str, str]) -> None:
    """A note on standard error naming the settings of the config file at ``path`` that
    the trial never reads (``controller.config.unread``)."""
    from controller.config import changed_in_file, unread

    print_unread(path, list(unread(changed_in_file(path), unused).values()))


def print_unread(path: Path, unread: list[str]) -> None:
    """The note of ``note_unread``: nothing if ``unread`` is empty."""
    if unread:
        print(f"fes: note: {path} sets what this configuration does not read, so it "
              f"changes nothing: {'; '.join(unread)}", file=sys.stderr)


def files_line(out_dir: Path, data_format: str, timed: bool) -> str:
    """The last line of a trial: where its files are (``timed``: a wall-clock trial,
    which also writes timing.csv or timing.parquet)."""
    from controller.trial.folder import DOCUMENTS, TABLES, TIMING_TABLE

    tables = (*TABLES, TIMING_TABLE) if timed else TABLES
    names = [f"{table}.{data_format}" for table in tables] + list(DOCUMENTS)
    return f"files: {out_dir}/{', '.join(names)}"


def add_require_option(parser: argparse.ArgumentParser, what: str) -> None:
    """The repeatable ``--require FIGURE OP VALUE`` option of ``fes sim`` and ``fes sweep``."""
    parser.add_argument(
        "--require", action="append", metavar="CHECK",
        help=f"fail (exit {EXIT_REQUIREMENT_FAILED}) unless {what} meets CHECK, a summary "
        "figure by its dotted name, an operator (<=, <, >=, >, ==, !=) and a value, e.g. "
        "'clearance.toe_drag_events<=2' or 'stopped_by==duration'; repeatable; a null "
        "figure fails, an unknown name is a usage error (exit 2) before any trial runs",
    )


def add_stim_option(parser: argparse.ArgumentParser) -> None:
    """``--stim NAME``: the stimulation preset (``stim.preset``) of ``fes sim`` and ``fes run``."""
    from controller.resources import available

    parser.add_argument(
        "--stim", metavar="NAME",
        help="stimulation preset: a name from configs/stim/ "
        f"({', '.join(available('stim'))}) or a path to a TOML file; the config file and "
        "other options still override it (default: none, the [stim] settings of "
        "configs/default.toml and --config)",
    )


def stim_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--stim`` as a config layer (empty when not given)."""
    return {} if args.stim is None else {"stim": {"preset": args.stim}}


#: Real-time options: (option dest, ``[loop]`` field).
_REALTIME_FIELDS = (
    ("cpu", "cpu_index"), ("rt_priority", "realtime_priority"), ("spin_us", "spin_us")
)


def add_realtime_options(parser: argparse.ArgumentParser) -> None:
    """``--cpu``, ``--rt-priority``, ``--spin-us``: how a wall-clock loop keeps time."""
    parser.add_argument(
        "--cpu", type=int, metavar="N",
        help="wall clock: pin the loop thread to CPU N, 0-1023 (loop.cpu_index; default "
        "-1: no pinning)",
    )
    parser.add_argument(
        "--rt-priority", type=int, metavar="P",
        help="wall clock: run the loop thread at SCHED_FIFO priority P, 1-99 "
        "(loop.realtime_priority; default 0: normal); if the OS refuses, the run says so and "
        "goes on at normal priority",
    )
    parser.add_argument(
        "--spin-us", type=float, metavar="US",
        help="wall clock: busy-wait this long before each deadline instead of sleeping "
        "(loop.spin_us, 0-5000, default 200)",
    )


def realtime_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The real-time options given on the command line, as ``[loop]`` fields."""
    return {
        field: getattr(args, dest)
        for dest, field in _REALTIME_FIELDS
        if getattr(args, dest) is not None
    }
