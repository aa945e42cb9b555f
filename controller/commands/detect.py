"""``fes detect``: run a detector sample by sample over a recorded CSV, optionally scored.

The detector is the one a trial would run (``[detector]`` of ``configs/default.toml``,
then ``--config``, then the options here), fed with the same compiled kernel as the live
loop, one sample at a time in file order. Events are written with their estimated time.
The recording is read and checked by ``controller.detect``: its rows
(``samplerows``: a last row cut off, empty lines and rows), the time of each
sample (``sampletimes``), the gyro column's axis, units and sign over the whole file
(``gyrocolumn``: a wrong axis is replaced and a flipped sign inverted, each with a
warning naming the option; since the file has been checked, the trial's own check of
the first strides is not repeated, so every stride is reported), the heel column's kind
(``heelcolumn``) and the reference events' span (``references``). What cannot be read
exits 2 naming the file; what may not be read as meant is a note after the events.
With ``--truth`` the events are matched to reference events and the scores printed as
JSON: per event kind, recall, precision, median signed error, median and 95th
percentile of the absolute error, and the detection latency.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from controller.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    input_path,
    note_unread,
    output_path,
)
from controller.errors import ConfigError
from controller.events import EVENT_TOLERANCE_MS, MOST_EVENT_TOLERANCE_MS
from controller.outputs import writing

if TYPE_CHECKING:
    from controller.detect.notes import Note

#: The units of a time column (``controller.detect.sampletimes.TIME_UNITS``, which
#: --help does not import).
TIME_UNIT_NAMES = ("s", "ms", "us")
#: The units of a gyro column (``controller.detect.gyrocolumn.RAD_S_PER_UNIT``).
GYRO_UNIT_NAMES = ("rad/s", "deg/s")

#: What a missing column of the recording holds, and the option that names another.
_MEANINGS = {
    "time_s": "the time of each sample in seconds; name your time column with "
    "--time-column NAME (e.g. timestamp), with --time-unit ms or us if it is not in "
    "seconds; for samples at a fixed rate give --rate-hz N instead, e.g. --rate-hz 100",
    "gyro_rad_s": "the sagittal angular velocity; name your column with --gyro-column "
    "NAME, and add --gyro-units deg/s if it is in deg/s",
    "heel_switch": "the heel switch, 0/1; name your column with --heel-column NAME, "
    "and add --heel-threshold-n F if it is a force in N",
    "heel_force_n": "the heel force in N; name your column with --heel-column NAME",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The detector options as a config layer, validated with the rest."""
    detector: dict[str, Any] = {}
    if args.sensor is not None:
        detector["sensor"] = args.sensor
    if args.placement is not None:
        detector["placement"] = args.placement
    if args.heel_threshold_n is not None:
        detector["heel_input"] = "force"
        detector["heel"] = {
            "force": {
                "contact_force_n": args.heel_threshold_n,
                "release_force_n": args.heel_threshold_n / 2.0,
            }
        }
    return {"detector": detector} if detector else {}


def _time_options(args: argparse.Namespace) -> None:
    """``ConfigError`` for --time-column or --time-unit beside --rate-hz, which dates
    the samples itself (a time column is then only compared with it)."""
    given = [f"--time-column {args.time_column}" if args.time_column else None,
             f"--time-unit {args.time_unit}" if args.time_unit else None]
    if args.rate_hz is not None and any(given):
        raise ConfigError("--rate-hz", [
            f"--rate-hz dates the samples at a fixed rate, so {' and '.join(filter(None, given))} "
            "would not be read: give --rate-hz, or the time column and its unit"])


def _run(args: argparse.Namespace) -> int:
    """``fes detect`` without Python's cycle collector. One pass over one file: the
    collector found nothing to free here (ten objects), but it ran about 150 times while
    numpy, numba and pydantic were imported, walking their sixty thousand objects each
    time it reached the older generations: a fifth of a warm ``fes detect`` (0.08-0.10 s
    of 0.5 s, timed with gc.callbacks). Memory is still freed by reference counting, and
    the collector is on again once the command returns (it may run inside a test)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _detect(args)
    finally:
        if was_enabled:
            gc.enable()


def _meanings(args: argparse.Namespace) -> dict[str, str]:
    """``_MEANINGS``, with the time column named by --time-column if given."""
    if not args.time_column:
        return _MEANINGS
    unit = args.time_unit or "s"
    return _MEANINGS | {args.time_column: f"the time of each sample in {unit} "
                        "(--time-column); for samples at a fixed rate give --rate-hz N instead"}


def _not_an_input(args: argparse.Namespace) -> None:
    """``ConfigError`` if ``--output`` is the file of ``--input`` or ``--truth`` (by a
    link or another spelling too): writing the events would replace it."""
    for option, given in (("--input", args.input), ("--truth", args.truth)):
        try:
            same = given is not None and os.path.samefile(args.output, given)
        except OSError:  # either does not exist (yet): not the same file
            same = False
        if same:
            raise ConfigError("--output", [
                f"--output {args.output} is the file given as {option}: the events written "
                "there would replace it; choose another --output"])


def _detect(args: argparse.Namespace) -> int:
    from controller.detect.config import load_detector_config
    from controller.detect.csvfiles import (
        CsvError,
        read_events,
        require_regular_file,
        write_events,
    )
    from controller.detect.detector import detect_batch
    from controller.detect.gyrocolumn import axis_columns, checked_sign, gyro_rad_s
    from controller.detect.heelcolumn import kind_note
    from controller.detect.references import outside_note
    from controller.detect.samplerows import read_samples
    from controller.detect.sampletimes import SampleClock
    from controller.events import EVENT_NAMES
    from controller.progress import progress

    _not_an_input(args)
    config = load_detector_config(args.config, _overrides(args))
    if args.config is not None:
        note_unread(args.config, config.unused())
    setup = config.setup()
    heel_column = args.heel_column or (
        "heel_force_n" if config.heel_input == "force" else "heel_switch"
    )
    _time_options(args)
    clock = SampleClock(args.rate_hz, args.time_column or "time_s", args.time_unit or "s")
    fixed_rate = args.rate_hz is not None
    wanted = [] if fixed_rate else [clock.column]
    axes = axis_columns(args.gyro_column) if setup.uses_gyro else None
    optional = [*(axes[0] if axes is not None else ()),  # the axis check's
                *(["time_s"] if fixed_rate else [])]  # compared with the rate
    if setup.uses_gyro:
        wanted.append(args.gyro_column)
    if setup.heel_input is not None:
        wanted.append(heel_column)
    try:
        require_regular_file(args.input)
        with progress(args.input.stat().st_size, f"reading {args.input.name}", "B",
                      unit_scale=True) as shown:
            columns, cut_note = read_samples(args.input, wanted, optional,
                                             fixed_rate=fixed_rate, meanings=_meanings(args),
                                             on_bytes=shown.advance)
        n = len(next(iter(columns.values())))
        t_s = clock.times(args.input, columns, n)
        time_note = clock.unit_note(t_s)
        rate_note = clock.rate_note(columns.get("time_s"))
        truth = read_events(args.truth) if args.truth is not None else None
        truth_note = outside_note(args.truth, truth, t_s, args.tolerance_ms) if truth else None
    except CsvError as err:
        print(f"fes: {err}", file=sys.stderr)
        return EXIT_USAGE
    gyro = None
    column, notes = args.gyro_column, [cut_note, time_note, rate_note, truth_note]
    if setup.uses_gyro:
        column, gyro, gyro_notes = gyro_rad_s(t_s, columns, column, args.gyro_units,
                                              args.invert)
        notes += gyro_notes
    heel = columns[heel_column] if setup.heel_input is not None else None
    if heel is not None:
        notes.append(kind_note(config, heel_column, heel))
    try:
        if args.rate_hz is not None:
            setup.check_period(1.0 / args.rate_hz)
        if gyro is not None:
            config, gyro, sign_note = checked_sign(config, t_s, gyro, column, args.invert)
            notes.append(sign_note)
            setup = config.setup()
        _, events = detect_batch(setup, t_s, gyro, heel)
    except ValueError as err:
        print(f"fes: {args.input}: {err}", file=sys.stderr)
        _print_notes([time_note])  # (samples too far apart: most likely the unit)
        return EXIT_USAGE
    with writing(args.output):
        write_events(args.output, events)
    _print_notes(notes)
    if truth is None:
        counts = {name: sum(e.event == kind for e in events) for kind, name in EVENT_NAMES.items()}
        listed = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
        print(f"{args.output}: {len(events)} events ({listed or 'none'}) from {n} samples")
        return EXIT_OK
    from controller.detect.score import Scorer  # only with --truth

    kinds = sorted({kind for _, kind in truth})
    scorer = Scorer(args.tolerance_ms / 1000.0, kinds)
    scorer.add(truth, events)
    report = {
        "sensor": config.sensor,  # placement and heel_input: null where no such sensor ran
        "placement": None if config.sensor == "heel" else config.placement,
        "heel_input": None if config.sensor == "gyro" else config.heel_input,
        "samples": n,
        "tolerance_ms": args.tolerance_ms,
        "events": scorer.summary(),
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return EXIT_OK


def _print_notes(notes: list[Note | None]) -> None:
    """The notes on a recording (None: no note), on standard error."""
    for note in notes:
        if note is not None:
            print(f"fes detect: {note.kind}: {note.text}", file=sys.stderr)


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _tolerance(text: str) -> float:
    value = _positive(text)
    if value > MOST_EVENT_TOLERANCE_MS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MOST_EVENT_TOLERANCE_MS:g} ms (as metrics.event_tolerance_ms: a "
            f"wider window matches an event with the next stride's), got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes detect`` to the subcommands."""
    detect = sub.add_parser(
        "detect",
        help="run a gait detector over a recorded CSV, optionally scored against truth",
        description="Run a gait-event detector sample by sample (the live loop's kernel) "
        "over a recorded CSV and write the events it finds as time_s,event. The detector "
        "is configured as in a trial ([detector] of configs/default.toml, --config, then "
        "these options).",
        epilog=f"exit codes: {EXIT_OK} events written (and scored, with --truth); "
        f"{EXIT_USAGE} bad option, configuration or recording (each named), or an output "
        f"that cannot be written; {EXIT_INTERRUPTED} interrupted by Ctrl-C, SIGTERM or "
        "SIGHUP.",
    )
    detect.add_argument("--input", type=input_path, required=True, metavar="FILE",
                        help="recording: a CSV with a header row; empty cells are missing "
                        "samples")
    detect.add_argument("--output", type=output_path, required=True, metavar="FILE",
                        help="where to write the detected events (time_s,event; time_s is "
                        "the estimated event time)")
    detect.add_argument("--config", type=input_path, metavar="FILE",
                        help="trial TOML whose [detector] section overrides the defaults "
                        "(its other sections are not checked here: fes check-config checks "
                        "a whole file)")
    detect.add_argument("--sensor", choices=("gyro", "heel", "fused"),
                        help="detector: gyroscope, heel sensor, or both with fallback "
                        "(default: the config's, gyro)")
    detect.add_argument("--placement", choices=("shank", "foot"),
                        help="where the gyroscope was worn; selects its configuration "
                        "(default: the config's, shank)")
    detect.add_argument("--rate-hz", type=_positive, metavar="N",
                        help="samples are at this fixed rate (then no time_s column is "
                        "needed, and one present is ignored, with a note if its time stamps "
                        "disagree)")
    detect.add_argument("--time-column", metavar="NAME",
                        help="column of each sample's time (default time_s), e.g. timestamp "
                        "or Time; it must increase from row to row")
    detect.add_argument("--time-unit", choices=TIME_UNIT_NAMES, metavar="s|ms|us",
                        help="unit of the time column (default s); one that dates the "
                        "samples below 4 Hz or above 20 kHz, as ms read as s (10 s apart at "
                        "100 Hz), is pointed out with a note naming the unit that fits")
    detect.add_argument("--gyro-column", default="gyro_rad_s", metavar="NAME",
                        help="column of the sagittal angular velocity (default gyro_rad_s); "
                        "when its name has an axis letter and the file has the other two "
                        "axes (Gyr_X, Gyr_Y, Gyr_Z), the axis that turns most while moving "
                        "is checked to be this one, and read instead with a warning if not")
    detect.add_argument("--gyro-units", choices=GYRO_UNIT_NAMES, default="rad/s",
                        help="units of the gyro column (default rad/s); a column that, "
                        "read so, turns faster than a gyroscope reads or slower than a "
                        "walking shank is pointed out with a note")
    detect.add_argument("--invert", action="store_true",
                        help="flip the gyro sign (the detector wants swing positive); a "
                        "flipped sign is also found from the strides and corrected, with a "
                        "warning")
    detect.add_argument("--heel-column", metavar="NAME",
                        help="column of the heel sensor (default heel_switch, or "
                        "heel_force_n with --heel-threshold-n); a switch column beyond 0/1, "
                        "or a force that never reaches the threshold, is pointed out with a "
                        "note")
    detect.add_argument("--heel-threshold-n", type=_positive, metavar="F",
                        help="the heel column is a force in N (without this option, a 0/1 "
                        "switch): contact at or above F, released below F/2; the shipped "
                        "level follows a heel that barely loads down to contact_floor_n")
    detect.add_argument("--truth", type=input_path, metavar="FILE",
                        help="reference events (time_s,event; a source column selects its "
                        "'true' rows, as in fes sim events.csv); prints scores as JSON")
    detect.add_argument("--tolerance-ms", type=_tolerance, default=EVENT_TOLERANCE_MS,
                        metavar="MS", help="largest timing error of a matched event "
                        f"(default {EVENT_TOLERANCE_MS:g}, at most "
                        f"{MOST_EVENT_TOLERANCE_MS:g})")
    detect.set_defaults(handler=_run)
