"""``fes board-emulator``: a board speaking docs/protocol.md on a pseudo-terminal.

Prints the pty's device path alone on the first line of stdout (for scripts: ``fes run
--port <that path>``), a description on stderr, then serves until Ctrl-C (exit 130),
SIGTERM (exit 0) or, after ``--unplug-at-s``, until its outputs are off (exit 0).

``--mcu python`` (the default) runs the Python model of the firmware (``hw.firmware``);
``--mcu avr`` builds the project's AVR firmware from source and runs it in simavr
(``hw.avr``), its pins wired to the same simulated patient. ``--device p24`` emulates a
Hasomed P24 speaking ScienceMode 4 instead (``hw.p24.emulator``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO, cast

from controller.commands.common import EXIT_OK
from controller.errors import ConfigError
from controller.outputs import GuardedLog, writing
from controller.resources import available

#: Options that set the firmware (the board), by destination name.
BOARD_OPTIONS = (
    "channels", "sample_rate_hz", "max_amplitude_ma", "max_pulse_width_us",
    "max_frequency_hz", "max_on_time_ms", "comm_timeout_ms", "board_id", "protocol_version",
    "max_interphase_gap_us", "max_anodic_width_ratio", "status_period_ms",
    "declared_sagittal_axis", "cross_axis_fraction", "max_charge_per_phase_uc",
    "max_duty_cycle",
)
#: Options that set the link faults.
FAULT_OPTIONS = (
    "drop", "corrupt", "duplicate", "delay", "delay_ms", "direction", "stall_at_s",
    "stall_s", "unplug_at_s", "samples_stop_at_s", "index_restart_at_s", "garbage_at_s",
)
#: Options of the Python model that the AVR firmware fixes, by destination and flag.
NOT_FOR_AVR = {
    "channels": "--channels", "sample_rate_hz": "--rate-hz",
    "protocol_version": "--protocol-version", "firmware": "--firmware", "drop": "--drop",
    "corrupt": "--corrupt", "duplicate": "--duplicate", "delay": "--delay",
    "delay_ms": "--delay-ms", "direction": "--fault-direction", "stall_at_s": "--stall-at-s",
    "stall_s": "--stall-s", "declared_sagittal_axis": "--declared-sagittal-axis",
    "cross_axis_fraction": "--cross-axis-fraction",
}
#: Board options of the AVR firmware (its EEPROM configuration).
AVR_BOARD_OPTIONS = (
    "board_id", "comm_timeout_ms", "max_on_time_ms", "max_amplitude_ma", "max_pulse_width_us",
    "max_frequency_hz", "max_interphase_gap_us", "max_anodic_width_ratio",
    "max_charge_per_phase_uc", "max_duty_cycle",
)


def _firmware_version(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) != 3 or not all(x.isdigit() and int(x) < 256 for x in parts):
        raise ConfigError("--firmware", [f"{text!r} is not MAJOR.MINOR.PATCH (0-255 each)"])
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def _config(args: argparse.Namespace) -> Any:
    from hw.emulator import EmulatorConfig

    board = _given(args, BOARD_OPTIONS)
    if args.firmware is not None:
        board["firmware_version"] = _firmware_version(args.firmware)
    if args.no_truth:
        board["truth"] = False
    data = {"board": board, "faults": _given(args, FAULT_OPTIONS),
            **_given(args, ("patient", "seed", "walk_s", "speed"))}
    return _validated(EmulatorConfig, data, "fes board-emulator options")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among ``names`` given on the command line."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _validated(model: Any, data: dict[str, Any], what: str) -> Any:
    """``data`` as ``model``; every bad field named with its allowed range otherwise."""
    from pydantic import ValidationError

    from controller.validation import describe_errors

    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(what, describe_errors(err, model)) from None


#: Said on stderr when making the emulator (compiling the simulated patient on a first
#: run after an install) outlasts ``COMPILE_NOTICE_AFTER_S``.
COMPILE_NOTICE = (
    "compiling the simulated patient into machine code (first run after an install; "
    "later runs load it from numba's cache); the pty comes after ..."
)
COMPILE_NOTICE_AFTER_S = 1.0


def _avr_config(args: argparse.Namespace) -> Any:
    from hw.avr.cosim import FIRMWARE_VERSION, AvrBoardConfig

    fixed = [flag for dest, flag in NOT_FOR_AVR.items() if getattr(args, dest) is not None]
    if fixed:
        version = ".".join(map(str, FIRMWARE_VERSION))
        raise ConfigError("fes board-emulator --mcu avr", [
            f"{flag}: not an option of the AVR firmware, which fixes it (500 Hz, 2 channels, "
            f"protocol version 4, firmware {version}; no injected link faults but "
            "--unplug-at-s)"
            for flag in fixed
        ])
    data = {"board": _given(args, AVR_BOARD_OPTIONS), "truth": not args.no_truth,
            **_given(args, ("patient", "seed", "walk_s", "speed", "unplug_at_s"))}
    return _validated(AvrBoardConfig, data, "fes board-emulator --mcu avr options")


def _start_avr(args: argparse.Namespace, log: Path | None) -> Any:
    from hw.avr.build import BuildError
    from hw.avr.cosim import SimavrBoard

    config = _avr_config(args)
    try:
        return SimavrBoard(config, log)
    except BuildError as err:
        raise ConfigError("fes board-emulator --mcu avr", [str(err)]) from None


def _serve(args: argparse.Namespace, board: Any, description: str) -> int:
    """Print the board's pty and serve until it ends (``--link`` points at the pty
    meanwhile); the board is closed whatever ends it."""
    from hw.realtime import frozen_heap

    linked: str | None = None
    try:
        if args.link is not None:
            linked = _make_link(board.path, args.link)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        # The collection runs before the path is out, so no host waits on it (hw.realtime).
        with frozen_heap():
            print(board.path, flush=True)
            print(description, file=sys.stderr, flush=True)
            ended = board.run(stop)
        print(f"fes board-emulator: {ended}", file=sys.stderr)
        return EXIT_OK
    finally:
        board.close()
        if linked is not None:
            _remove_own_link(args.link, linked)


def _link_exists(link: Path) -> ConfigError:
    return ConfigError("--link", [
        f"--link {link}: already exists; the emulator makes a new symlink and never "
        "replaces or deletes a file it did not create (remove it, or choose another path)"
    ])


def _make_link(pty: str, link: Path) -> str:
    """Make ``link`` a new symlink to ``pty`` (never replacing anything); its target."""
    try:
        os.symlink(pty, link)
    except FileExistsError:
        raise _link_exists(link) from None
    except OSError as err:
        raise ConfigError("--link", [f"--link {link}: {err.strerror}"]) from None
    return pty


def _remove_own_link(link: Path, target: str) -> None:
    """Remove ``link`` if it is still the symlink this emulator made (to ``target``):
    whatever replaced it since belongs to someone else."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            link.unlink()


def _open_log(path: Path) -> GuardedLog:
    """The ``--log`` file, opened for appending and tried with a first record (the
    options the board runs with), so that a log that cannot be written stops the
    command before it serves: exit 2 naming it. Later failures (a disk that fills up)
    stop the logging, not the board; the command then ends with exit 2."""
    with writing(path):
        handle = path.open("a", encoding="utf-8")
    log = GuardedLog(handle, path)
    log.write(json.dumps({"event": "start", "monotonic_s": time.monotonic(),
                          "argv": sys.argv[1:]}) + "\n")
    log.flush()
    if log.failure is not None:
        log.close()
        raise log.failure
    return log


def _board_only(args: argparse.Namespace) -> list[str]:
    """The options given that only the project's board takes (as their flags)."""
    names = ("patient", "seed", "walk_s", "speed", "firmware", *BOARD_OPTIONS, *FAULT_OPTIONS)
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) is not None]
    if args.no_truth:
        given.append("--no-truth")
    if args.mcu != "python":
        given.append("--mcu")
    return given


def _run_p24(args: argparse.Namespace) -> int:
    from hw.p24.emulator import P24Emulator
    from hw.p24.emulator import describe as describe_p24

    given = _board_only(args)
    if given:
        raise ConfigError("--device p24", [f"{flag} applies to --device board only"
                                           for flag in given])
    log = _open_log(args.log) if args.log is not None else None
    try:
        emulator = P24Emulator(cast(TextIO, log))  # write and flush are all it uses
        code = _serve(args, emulator, describe_p24(emulator))
        if log is not None and log.failure is not None:
            raise log.failure  # the emulator served on; its log stopped there
        return code
    finally:
        if log is not None:
            log.close()


def _run(args: argparse.Namespace) -> int:
    from sim.patient import load_patient

    if args.link is not None and os.path.lexists(args.link):
        raise _link_exists(args.link)
    if args.device == "p24":
        return _run_p24(args)
    if args.mcu == "avr":
        from hw.avr.cosim import describe as describe_avr

        load_patient(args.patient or "moderate")
        if args.log is not None:
            _open_log(args.log).close()  # writable: the harness appends to it
        board = _start_avr(args, args.log)
        return _serve(args, board, describe_avr(board))
    from controller.hotpath import announced_if_slow
    from hw.emulator import BoardEmulator, describe

    config = _config(args)
    load_patient(config.patient)
    log = _open_log(args.log) if args.log is not None else None
    try:
        # A first run compiles the patient for seconds before the pty exists: say so on
        # stderr (stdout's first line is the pty's path, for scripts).
        with announced_if_slow(sys.stderr, COMPILE_NOTICE_AFTER_S, COMPILE_NOTICE,
                               done="compiled"):
            emulator = BoardEmulator(config, cast(TextIO, log))  # write, flush: all it uses
        code = _serve(args, emulator, describe(emulator))
        if log is not None and log.failure is not None:
            raise log.failure  # the board served on; its log stopped there
        return code
    finally:
        if log is not None:
            log.close()


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes board-emulator`` to the subcommands."""
    emu = sub.add_parser(
        "board-emulator",
        help="emulate a stimulator board (and the patient wearing it), or a Hasomed P24, "
        "on a pty",
        description="Open a pseudo-terminal and behave on it as a board running the "
        "firmware of docs/protocol.md, with its own limits and communication timeout. Its "
        "sensor stream comes from a simulated patient who responds to the stimulation the "
        "board delivers. Prints the device path on the first line of stdout. All times "
        "are board time; --speed makes board time run faster than the wall clock. With "
        "--device p24, behave as a Hasomed P24 stimulator instead (ScienceMode 4: general, "
        "low-level and mid-level commands, the mid level's 2 s keep-alive), in real time, "
        "logging every pulse it fires.",
        epilog="exit codes: 0 stopped by SIGTERM or ended after an unplug; 2 bad option; "
        "130 Ctrl-C, or the terminal hung up (SIGHUP).",
    )
    add = emu.add_argument
    add("--device", choices=("board", "p24"), default="board",
        help="what to emulate: board, the project's board of docs/protocol.md with its "
        "simulated patient (default); p24, a Hasomed P24 speaking ScienceMode 4 (no "
        "sensors; of the options below it takes --log and --link only)")
    add("--mcu", choices=("python", "avr"), default="python",
        help="the board's firmware: python, the Python model of docs/protocol.md (default); "
        "avr, the project's AVR firmware (hw/avr, ATmega2560) built from source with avr-gcc "
        "and run in simavr, its pins driving and read by the simulated patient (needs gcc-avr, "
        "avr-libc, simavr, libsimavr-dev; the firmware fixes rate, channels and version)")
    add("--patient", metavar="NAME",
        help=f"simulated patient ({', '.join(available('patients'))} or a TOML path; "
        "default moderate)")
    add("--seed", type=int, metavar="N",
        help="seed of the patient and of the injected faults (default 0); the same seed "
        "as fes sim gives the same walk")
    add("--walk-s", type=float, metavar="S",
        help="how long the patient walks after the first START_STREAM; then the board "
        "reports a sensor fault (default 600)")
    add("--speed", type=float, metavar="X",
        help="board time runs X times faster than wall time, 0.1-20 (default 1: real time)")
    board = emu.add_argument_group("the board (its firmware settings)")
    board.add_argument("--channels", type=int, metavar="N", help="stimulation channels (default 2)")
    board.add_argument("--rate-hz", dest="sample_rate_hz", type=int, metavar="N",
                       help="sensor sample rate in Hz (default 500)")
    board.add_argument("--max-amplitude-ma", type=float, metavar="MA",
                       help="the board's own amplitude limit (default 60)")
    board.add_argument("--max-pulse-width-us", type=int, metavar="US",
                       help="the board's own pulse width limit (default 500)")
    board.add_argument("--max-frequency-hz", type=float, metavar="HZ",
                       help="the board's own frequency limit (default 60)")
    board.add_argument("--max-on-time-ms", type=int, metavar="MS",
                       help="continuous stimulation after which the board faults "
                       "(default 3000)")
    board.add_argument("--comm-timeout-ms", type=int, metavar="MS",
                       help="no valid frame for this long switches every output off "
                       "(default 100)")
    board.add_argument("--max-interphase-gap-us", type=int, metavar="US",
                       help="the board's own interphase gap limit (default 500)")
    board.add_argument("--max-anodic-width-ratio", type=float, metavar="R",
                       help="the board's own limit of the anodic width ratio, in steps of "
                       "0.01 (default 10; 1: symmetric pulses only)")
    board.add_argument("--max-charge-per-phase-uc", type=float, metavar="UC",
                       help="the board's own charge-per-phase limit, amplitude x pulse "
                       "width, in steps of 0.01 uC (default: max amplitude x max pulse "
                       "width; protocol version 4 only)")
    board.add_argument("--max-duty-cycle", type=float, metavar="D",
                       help="the board's own limit of the fraction of the last 10 s a "
                       "channel may deliver pulses, in steps of 0.001 (default 0.8; protocol "
                       "version 4 only): beyond it FAULT DUTY, every output off")
    board.add_argument("--protocol-version", type=int, metavar="N",
                       help="newest protocol version the board speaks: 4 (default), 2 (a "
                       "board from before the charge limit: INFO carries none, and the host "
                       "takes max amplitude x max pulse width for it) or 1 (from before "
                       "pulse shapes: no STIM_SHAPED, so the host refuses it for a config "
                       "with an interphase gap or an asymmetric pulse)")
    board.add_argument("--firmware", metavar="X.Y.Z",
                       help="firmware version reported at HELLO (default 1.2.0, 1.1.0 with "
                       "--protocol-version 2, 1.0.0 with 1)")
    board.add_argument("--board-id", type=int, metavar="N", help="board serial number (default 1)")
    board.add_argument("--status-period-ms", type=int, metavar="MS",
                       help="time between STATUS frames while streaming, 10-1000 (default 100)")
    board.add_argument("--declared-sagittal-axis", type=int, metavar="N",
                       help="gyroscope axis INFO declares sagittal, 0 x, 1 y, 2 z (default "
                       "2, the one that carries it; another emulates a board configured "
                       "wrong, which the host's axis check refuses to stimulate from)")
    board.add_argument("--cross-axis-fraction", type=float, metavar="F",
                       help="the x and y gyroscope axes carry this fraction of the sagittal "
                       "rate, 0-1 (default 0.4)")
    board.add_argument("--no-truth", action="store_true",
                       help="behave as a real board: no ground-truth debug frames")
    faults = emu.add_argument_group("link faults (probabilities per frame, times in board s)")
    faults.add_argument("--drop", type=float, metavar="P", help="drop frames")
    faults.add_argument("--corrupt", type=float, metavar="P", help="flip one bit of frames")
    faults.add_argument("--duplicate", type=float, metavar="P", help="send frames twice")
    faults.add_argument("--delay", type=float, metavar="P", help="hold frames back --delay-ms")
    faults.add_argument("--delay-ms", type=float, metavar="MS",
                        help="how long a delayed frame is held (default 20)")
    faults.add_argument("--fault-direction", dest="direction", choices=("tx", "rx", "both"),
                        help="frames the faults hit: sent by the board (tx), received "
                        "(rx) or both (default)")
    faults.add_argument("--stall-at-s", type=float, metavar="S",
                        help="the firmware stops talking S seconds into the walk (its "
                        "safety timers keep running)")
    faults.add_argument("--stall-s", type=float, metavar="S",
                        help="how long the stall lasts (default 0.5)")
    faults.add_argument("--unplug-at-s", type=float, metavar="S",
                        help="close the pty S seconds into the walk, as a pulled cable")
    faults.add_argument("--samples-stop-at-s", type=float, metavar="S",
                        help="stop sending SAMPLE frames S seconds into the walk, still "
                        "answering commands and sending STATUS")
    faults.add_argument("--index-restart-at-s", type=float, metavar="S",
                        help="number the samples from 0 again S seconds into the walk (a "
                        "board whose sensor loop restarted)")
    faults.add_argument("--garbage-at-s", type=float, metavar="S",
                        help="send noise instead of frames from S seconds into the walk "
                        "(a wrong baud rate, a broken ground)")
    add("--log", type=Path, metavar="FILE",
        help="append every board event (session, outputs on/off, faults, round-trip "
        "times; with --device p24 every pulse the device fires) to FILE as JSON lines, "
        "each stamped with time.monotonic()")
    add("--link", type=Path, metavar="PATH",
        help="also make PATH a symlink to the pty (removed on exit); PATH must not exist: "
        "an existing file is never replaced (exit 2)")
    emu.set_defaults(handler=_run)
