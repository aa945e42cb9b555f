"""``fes run``: the live loop against a stimulator board on a serial port.

The back end (``controller.trial.backends``): the project's board (``--port URL``,
sensors and stimulator), or a sensorless stimulator (``--stimulator openemsstim:URL``)
with a recorded walk replayed in real time (``--sensors replay:PATH``).

Exit codes (beyond 0 ok or a replay played to its end, 2 usage or configuration, also a
trial the stimulator cannot deliver, 130 Ctrl-C, SIGTERM or SIGHUP):
9 no board (the port cannot be opened, or nothing answers HELLO or the probe);
10 board refused (unknown firmware or protocol, limits looser than the safety watchdog's,
sample rate or channels not what the trial needs, a pulse shape it cannot deliver);
5 link lost during the trial (unplugged, silent, stopped acknowledging, garbled, no new
sample), also when the safety watchdog switched the outputs off first because of it;
6 the board reported a fault or refused a command (an openEMSstim that reset);
7 the safety watchdog latched a fault;
8 the host fell behind the board's sample stream (or stalled so long that an
openEMSstim's on-time ended: stimulation not delivered).
Whatever the code, outputs are off (STOP_ALL sent) and the files hold what was recorded.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.commands.common import (
    EXIT_BOARD_FAULT,
    EXIT_HOST_FAULT,
    EXIT_INTERRUPTED,
    EXIT_LINK_LOST,
    EXIT_NO_BOARD,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    EXIT_WATCHDOG_FAULT,
    add_format_option,
    add_output_options,
    add_stim_option,
    files_line,
    input_path,
    load_checked,
    not_a_sweep_folder,
    stim_overrides,
)

if TYPE_CHECKING:
    from controller.trial.recording import Recording

EXIT_BY_STOP = {
    "duration": EXIT_OK,
    "source_ended": EXIT_OK,  # a replayed recording played to its end
    "interrupted": EXIT_INTERRUPTED,
    "link_lost": EXIT_LINK_LOST,
    "board_fault": EXIT_BOARD_FAULT,
    "watchdog_fault": EXIT_WATCHDOG_FAULT,
    "host_fault": EXIT_HOST_FAULT,
}

EPILOG = (
    f"exit codes: {EXIT_OK} trial completed (a replay: played to its end); 2 bad usage or "
    "configuration, also a trial the --stimulator cannot deliver (each field named with "
    "its range), or files the --out folder's disk cannot hold (said before the port is "
    f"opened, nothing written); {EXIT_NO_BOARD} no board answers on the port (an openEMSstim that "
    "answered but never echoed its all-off line intact: it is sent 4 times at most); "
    f"{EXIT_REFUSED} board "
    "refused (an openEMSstim firmware other than the settings name; unknown "
    "firmware, limits looser than the safety limits, wrong sample rate or too few "
    "channels, a pulse shape it cannot deliver: an interphase gap or an asymmetric pulse "
    "needs a board of protocol version 2, within its own shape limits); "
    f"{EXIT_LINK_LOST} link lost (unplugged, silent, not acknowledging, a garbled line, "
    "no new sample; also when the watchdog's timeouts switched the outputs off first "
    "because of it: the first cause is reported, not the last symptom); "
    f"{EXIT_BOARD_FAULT} board fault or command refused by the board (an openEMSstim "
    f"that reset); {EXIT_WATCHDOG_FAULT} safety watchdog fault; {EXIT_HOST_FAULT} host "
    "fell behind the board's stream, or stalled past an openEMSstim's on-time "
    f"(stimulation not delivered); {EXIT_INTERRUPTED} Ctrl-C, SIGTERM or a terminal that "
    "hung up (SIGHUP). In every case after "
    "connection the outputs are switched off, the stimulator's off command (the "
    "project's board: STOP_ALL; openEMSstim: the all-off line, sent again while its echo "
    "is garbled or missing, 4 times in all at most; the P24: the stop of its "
    "level) is sent until the board acknowledges it or the link is declared lost (the "
    "summary says whether the board confirmed it) and the files are written."
)


def _milliseconds(text: str) -> float:
    """A time option: 1 ms to 10 s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1.0 <= value <= 10000.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside 1-10000 ms")
    return value


def _overrides(args: argparse.Namespace, replay: Recording | None) -> dict[str, Any]:
    """The options as a config layer; a replayed recording sets the loop's rate (its
    own) and, unless --duration-s is given, the duration (its length)."""
    overrides = stim_overrides(args)
    loop: dict[str, Any] = {}
    if replay is not None:
        loop |= {"sample_rate_hz": replay.rate_hz, "duration_s": replay.duration_s}
    if args.duration_s is not None:
        loop["duration_s"] = args.duration_s
    if loop:
        overrides["loop"] = loop
    return overrides


#: What a ``fes run`` whose files cannot fit may change (``diskroom.check_room``).
ROOM_CHANGES = ("give a --duration-s of at most {seconds} (a replay: a part of the "
                "recording) or another --out on a disk with room")

#: Where a live trial's files go without ``--out``.
DEFAULT_OUT = Path("runs") / "live"


def _not_replaced(replay: Path | None, out_dir: Path, overwrite: bool) -> None:
    """``ConfigError`` if ``--overwrite`` would remove the recording being replayed: a
    trial's file (``samples.csv`` of an earlier trial) in the ``--out`` folder."""
    from controller.errors import ConfigError
    from controller.trial.folder import TRIAL_FILES

    if replay is None or not overwrite or replay.name not in TRIAL_FILES:
        return
    if out_dir.exists() and replay.parent.resolve() == out_dir.resolve():
        raise ConfigError("--out", [
            f"--overwrite would remove {replay}, the recording --sensors replays; write the "
            "trial to another --out"])


def _run(args: argparse.Namespace) -> int:
    from controller.detect.csvfiles import CsvError
    from controller.trial.backends import check_sensors, check_stimulator, parse_backend
    from controller.trial.diskroom import check_room, live_files
    from controller.trial.live import LinkLimits, run_live_trial
    from controller.trial.parquet import pyarrow_modules
    from controller.trial.recording import load_recording
    from controller.trial.summary import render_text
    from hw.board import BoardError

    try:
        spec = parse_backend(args.port, args.sensors, args.stimulator, args.stimulator_settings)
        _not_replaced(spec.replay, args.out or DEFAULT_OUT, args.overwrite)
        not_a_sweep_folder(args.out or DEFAULT_OUT)
        replay = load_recording(spec.replay) if spec.replay is not None else None
        spec = replace(spec, recording=replay)  # read once
    except (ValueError, CsvError) as err:
        print(f"fes run: {err}", file=sys.stderr)
        return EXIT_USAGE
    for note in replay.notes if replay is not None else ():
        print(f"fes run: {note.kind}: {note.text}", file=sys.stderr)
    config = load_checked(args.config, _overrides(args, replay))
    check_sensors(spec, config)
    check_stimulator(spec, config)
    out_dir = args.out or DEFAULT_OUT
    # Before the folder is claimed and the port opened: a trial that cannot fit on the
    # disk writes nothing and asks the board nothing.
    check_room(out_dir, live_files(config.model_dump(), spec.kind == "board", args.data_format),
               changes=ROOM_CHANGES, overwrite=args.overwrite, notes=sys.stderr)
    status = None if args.no_status else sys.stderr
    try:
        limits = LinkLimits(args.link_timeout_ms / 1000.0, args.max_lag_ms / 1000.0)
        if args.data_format == "parquet":
            pyarrow_modules()  # before the board is asked anything
        result = run_live_trial(config, spec, out_dir, status, limits, args.overwrite,
                                args.data_format)
    except BoardError as err:
        print(f"fes run: {err}", file=sys.stderr)
        return EXIT_NO_BOARD if err.kind == "no_board" else EXIT_REFUSED
    print(render_text(result.summary))
    print(files_line(out_dir, args.data_format, timed=True))
    code = EXIT_BY_STOP.get(result.stopped_by, EXIT_HOST_FAULT)
    print(f"fes run: stopped by {result.stopped_by}: {result.message}", file=sys.stderr)
    return code


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes run`` to the subcommands."""
    from controller.trial.backends import SENSORS, STIMULATORS

    run = sub.add_parser(
        "run",
        help="run the live loop against a stimulator board on a serial port",
        description="Run a live trial against a board speaking docs/protocol.md (--port): "
        "the board's sensor stream drives the gait detector, the scheduler's commands go "
        "through the safety watchdog to the board; or against a stimulator without "
        "sensors (--stimulator openemsstim:URL) with a recorded walk replayed in real time "
        "as the sensors (--sensors replay:PATH). Writes the same files as fes sim; true "
        "events and toe clearance only when the board is the emulator.",
        epilog=EPILOG,
    )
    run.add_argument(
        "--port", metavar="URL",
        help="the project's board (sensors and stimulator): a device path (/dev/ttyACM0, "
        "COM3, the path fes board-emulator prints), socket://HOST:PORT or "
        "rfc2217://HOST:PORT",
    )
    run.add_argument(
        "--stimulator", metavar="KIND:URL",
        help="the stimulator by kind instead of --port: "
        + "; ".join(f"{kind}:URL, {k.help}" for kind, k in STIMULATORS.items()),
    )
    run.add_argument(
        "--sensors", metavar="SOURCE",
        help="the sensor source: "
        + "; ".join(f"{name}: {text}" for name, text in SENSORS.items())
        + ". A replay runs at the recording's own rate, for its length unless "
        "--duration-s is given, and ends with exit 0 when it has played",
    )
    run.add_argument(
        "--stimulator-settings", type=Path, metavar="FILE",
        help="settings of the --stimulator device (openemsstim: its firmware version, the "
        "unit's calibration, pulse width and rate, hold_ms; default "
        "configs/boards/openemsstim.toml); the trial is refused (exit 2, naming each field "
        "and its range) when it asks for what the device cannot deliver",
    )
    run.add_argument(
        "--config", type=input_path, metavar="FILE",
        help="TOML file overriding any subset of configs/default.toml (its [sim] section "
        "is not used: the patient is whoever wears the board)",
    )
    add_stim_option(run)
    run.add_argument(
        "--duration-s", type=float, metavar="S",
        help="trial length in seconds (default loop.duration_s, 60)",
    )
    add_output_options(run, "runs/live")
    add_format_option(run, "samples, events and timing")
    run.add_argument(
        "--link-timeout-ms", type=_milliseconds, default=100.0, metavar="MS",
        help="no frame from the board, a command unacknowledged, or no new sample, for "
        "this long ends the trial as link lost (default 100; the board's own timeout "
        "protects the patient whatever this is)",
    )
    run.add_argument(
        "--max-lag-ms", type=_milliseconds, default=100.0, metavar="MS",
        help="the loop may fall this far behind the board's sample stream before the "
        "trial ends as a host fault: stimulation timed from older samples would be late "
        "(default 100)",
    )
    run.add_argument(
        "--no-status", action="store_true",
        help="do not write the status line (once a second of trial time on stderr: "
        "phase, stimulation, cadence, watchdog faults, the link's state and counters, "
        "the loop's timing)",
    )
    run.set_defaults(handler=_run)
