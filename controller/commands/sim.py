"""``fes sim``: a closed-loop walking trial against the simulated patient."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from controller.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REQUIREMENT_FAILED,
    EXIT_USAGE,
    add_format_option,
    add_output_options,
    add_realtime_options,
    add_require_option,
    add_stim_option,
    files_line,
    input_path,
    load_checked,
    not_a_sweep_folder,
    realtime_overrides,
    stim_overrides,
)
from controller.errors import ConfigError
from controller.resources import available

#: What a ``fes sim`` whose files cannot fit may change (``diskroom.check_room``).
ROOM_CHANGES = "give a --duration-s of at most {seconds} or another --out on a disk with room"


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as a config layer, validated with the rest."""
    overrides: dict[str, Any] = {}
    if args.patient is not None:
        overrides.setdefault("sim", {})["patient"] = args.patient
    if args.seed is not None:
        overrides.setdefault("sim", {})["seed"] = args.seed
    if args.duration_s is not None:
        overrides.setdefault("loop", {})["duration_s"] = args.duration_s
    if args.rate_hz is not None:
        overrides.setdefault("loop", {})["sample_rate_hz"] = args.rate_hz
    overrides.update(stim_overrides(args))
    loop_options = realtime_overrides(args)
    if loop_options:
        overrides.setdefault("loop", {}).update(loop_options)
    if args.no_stim:
        if args.stim is not None:
            raise ConfigError("--no-stim", [
                f"--no-stim turns stimulation off, --stim {args.stim} chooses how to "
                "stimulate: give one of them"])
        overrides.setdefault("stim", {})["enabled"] = False
    return overrides


def _run(args: argparse.Namespace) -> int:
    """``fes sim`` without Python's cycle collector (``hotpath.collector_off``), as ``fes
    detect`` runs: it walked the objects of numpy, numba and pydantic again and again
    while they were imported, 0.06 s of a warm 60 s ``fes sim`` (0.66 -> 0.59 s, mean
    of five runs each, alternated), and a trial makes no cycles worth collecting. It
    is on again once the command returns, the objects that exist then frozen (the
    process ends: a full collection of what a first run's compilation left took 0.3 s
    there). The log writer, forked inside, runs without it too (it makes no cycles; a
    first collection there would walk, and copy on write, the whole inherited heap).
    Its frames sit in one chunk of the interpreter's frame stack
    (``hotpath.in_one_chunk``): a first run compiles the trial's CSV kernels as its
    files open, outside ``LoopCompile``."""
    from controller.hotpath import collector_off, in_one_chunk

    with collector_off(freeze_after=True):
        return in_one_chunk(lambda: _simulate(args))


def _simulate(args: argparse.Namespace) -> int:
    from controller.config import simulated_problems
    from controller.trial.diskroom import check_room, simulated_files
    from controller.trial.figures import flatten
    from controller.trial.parquet import pyarrow_modules
    from controller.trial.require import SOURCE as REQUIRE
    from controller.trial.require import failures, parse_requirements, unknown_names
    from controller.trial.simulated import (
        blank_summary,
        channel_notes,
        channel_problems,
        run_simulated_trial,
    )
    from controller.trial.status import StatusLine
    from controller.trial.summary import render_text

    checks = parse_requirements(args.require)
    config = load_checked(args.config, _overrides(args))
    if problems := simulated_problems(config) + channel_problems(config):
        raise ConfigError(str(args.config or "configs/default.toml"), problems)
    if checks and (unknown := unknown_names(checks, flatten(blank_summary(config, args.realtime)))):
        raise ConfigError(REQUIRE, unknown)  # before the trial: a typo costs no trial
    for note in channel_notes(config):
        print(f"fes: note: {note}", file=sys.stderr)
    out_dir = args.out or Path("runs") / f"{Path(config.sim.patient).stem}-seed{config.sim.seed}"
    not_a_sweep_folder(out_dir)
    sinks = [StatusLine(sys.stderr)] if args.realtime else []
    if args.data_format == "parquet":
        pyarrow_modules()  # a usage error now if pyarrow is missing, not after the trial
    # Before the folder is claimed: a trial that cannot fit writes nothing.
    check_room(out_dir, simulated_files(config.model_dump(), args.realtime, args.data_format),
               changes=ROOM_CHANGES, overwrite=args.overwrite, notes=sys.stderr)
    summary = run_simulated_trial(
        config, out_dir, args.realtime, sinks, sys.stderr, overwrite=args.overwrite,
        data_format=args.data_format,
    )
    print(render_text(summary))
    print(files_line(out_dir, args.data_format, timed=args.realtime))
    if summary["stopped_by"] == "interrupted":
        print("interrupted: outputs off, files hold the samples recorded so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = failures(checks, flatten(summary))
    for message in failed:
        print(f"fes: requirement {message}", file=sys.stderr)
    return EXIT_REQUIREMENT_FAILED if failed else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes sim`` to the subcommands."""
    sim = sub.add_parser(
        "sim",
        help="run a closed-loop walking trial against the simulated patient",
        description="Run a closed-loop walking trial against the simulated patient and "
        "write samples.csv, events.csv, summary.json and config.json into the output folder.",
        epilog=f"exit codes: {EXIT_OK} trial completed (every --require check met); "
        f"{EXIT_USAGE} bad usage or configuration (each bad field named with its allowed "
        "range), or an output that cannot be written (files the output folder's disk "
        "cannot hold: before the trial, nothing written; a disk filled by others: once "
        f"the trial has run); {EXIT_REQUIREMENT_FAILED} a --require check failed (each "
        f"named with the value found); {EXIT_INTERRUPTED} interrupted by Ctrl-C, SIGTERM or SIGHUP "
        "(outputs off, files written with the samples recorded so far).",
    )
    sim.add_argument(
        "--config", type=input_path, metavar="FILE",
        help="TOML file overriding any subset of configs/default.toml",
    )
    sim.add_argument(
        "--patient", metavar="NAME",
        help="patient profile: a name from configs/patients/ "
        f"({', '.join(available('patients'))}) or a path to a TOML file (default: the "
        "config's sim.patient, moderate)",
    )
    sim.add_argument(
        "--duration-s", type=float, metavar="S",
        help="trial length in seconds, above 0 and at most 86400 (default 60)",
    )
    sim.add_argument(
        "--seed", type=int, metavar="N",
        help="random seed, 0-4294967295; the same seed gives the same files (default 0)",
    )
    sim.add_argument(
        "--rate-hz", type=float, metavar="N",
        help="control loop sample rate in Hz, 100-2000 (default 500)",
    )
    add_stim_option(sim)
    sim.add_argument(
        "--no-stim", action="store_true", help="disable stimulation (the patient's own gait)"
    )
    sim.add_argument(
        "--realtime", action="store_true",
        help="pace the loop by the wall clock, one sample per period as a live loop would, "
        "print a status line every second (stderr) and report lateness, misses and "
        "latency in summary.json; without it the trial runs as fast as possible",
    )
    add_realtime_options(sim)
    add_output_options(sim, "runs/<patient>-seed<N>")
    add_format_option(sim, "samples, events (and timing)")
    add_require_option(sim, "the trial's summary")
    sim.set_defaults(handler=_run)
