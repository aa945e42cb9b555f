"""Whether a trial's files fit on the disk of its output folder, said before it starts.

A trial writes its files while it records (``controller.trial.writer``): a day of ``fes
sim`` at 1 kHz wrote 12.9 GB. A disk that fills part way ends the trial safely
(outputs off, the first file that could not be written named), but for a person
walking with the device a session planned for a day that ends at hour 9 is lost: so
``fes sim``, ``fes run`` and ``fes sweep`` estimate the bytes their planned trials will
write into the folder and compare them with the free space of its file system
(``os.statvfs``: ``f_bavail``, what an unprivileged writer may use) before anything is
written or a board is asked anything. A trial that cannot fit is refused
(``OutputError``, exit 2) naming the estimate, the free space, the folder and what to
change; one that fits within ``NARROW_FRACTION`` of the free space is said and run.

The estimate follows what the writer writes, column by column
(``controller.trial.files.column_kind``): a ``%.6f`` cell ``FLOAT_CELL_BYTES``, a flag or
count one byte, a phase its longest name, ``time_s`` its exact digits over the trial,
one separator per cell; ``events.csv`` per second of walking; ``timing.csv`` of a
wall-clock trial; the log writer's spill of a long wall-clock trial's lateness and
latency (16 bytes a sample, an unnamed file in the folder until the trial ends); the
moments two copies exist (``events.csv`` rewritten sorted at the end, ``samples.csv``
rewritten with a board emulator's truth, Parquet parts beside the merged file). The
widths were measured on real trials (docs/files.md, "Room on the disk";
``python -m controller.bench.disk_room``) and ``tests/test_disk_room.py`` holds the
estimate against the bytes a real short trial wrote, so a column added later is counted
or the test fails. At its top it imports the standard library, ``controller.outputs``
and ``controller.sizes`` only (the writer's modules inside its functions): the commands
import it in their handlers, off ``fes --help``'s path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from controller.outputs import OutputError
from controller.sizes import size_text

#: A ``%.6f`` cell: a sign, integer digits, the point and six decimals. Measured over 30 s
#: trials of every shipped patient at 1 kHz and of every stimulation preset at 200 Hz
#: (7 Dec 2026): 8.37-8.50 bytes a cell on average over a trial's float columns (one
#: column's mean 8.00-9.36: ``pulse_width_us``, 300.000000 while stimulating), widest 10.
FLOAT_CELL_BYTES = 8.75
#: ``timing.csv``'s lateness and latency, in microseconds: some 8-9 bytes a cell on an
#: idle machine (21.25-21.39 bytes a row measured), 10 once a loaded machine's latencies
#: reach hundreds of microseconds.
TIMING_CELL_BYTES = {"lateness_us": 9.5, "latency_us": 9.5}
#: A flag or a count (``stim_on``, ``heel_switch``, ``pulses``, ``skipped_periods``).
INTEGER_CELL_BYTES = 1.0
#: ``events.csv`` per second of trial: at most two strides a second, four events each,
#: true and detected, some 34 bytes a line ("86399.999999,detected,heel_strike").
#: Measured: 137 bytes a second (20 s, moderate).
EVENT_BYTES_PER_S = 2 * 4 * 2 * 34
#: The log writer's spill of a windowed wall-clock trial: two 8-byte values a sample
#: (``controller.quantiles.SpilledCounts``).
SPILL_BYTES_PER_SAMPLE = 16
#: ``config.json``, ``summary.json`` and their temporary twins.
DOCUMENT_BYTES = 64 * 1024
#: ``config.json`` at most (5.7 kB with one channel; each further channel some 0.6 kB).
CONFIG_BYTES = 8192
#: A Parquet part per second of trial and table (a wall-clock trial's writer writes
#: one a second; the virtual clock's, one a second of wall time, fewer) carries the
#: schema and the trial's config in its footer: some twice ``config.json``. Measured
#: (``python -m controller.bench.disk_room --parts``, 7 Dec 2026):
#: ``events.parquet.partial/`` grew 10.0 kB a second (config.json 5.7 kB).
PARQUET_PART_FOOTER_FACTOR = 2
PARQUET_TABLES = 3
#: Kept on top of the estimate: walks unlike the measured ones (a heel force over 1000 N
#: or a negative ankle angle is a byte wider a cell), file system blocks. The spread of
#: ``samples.csv`` bytes a sample between the shipped patients was 1 % (145.0-146.4).
MARGIN = 0.05
#: A trial whose estimate (with its margin) takes more than this share of the free
#: space runs, said to fit only narrowly.
NARROW_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class PlannedFiles:
    """What one trial will write at most into its folder: ``bytes`` in all, at
    ``bytes_per_s`` of trial, ``what`` in words (its files)."""

    bytes: int
    bytes_per_s: float
    what: str


def time_text_bytes(n_samples: int, rate_hz: float) -> int:
    """The bytes of the ``time_s`` cells (``%.6f`` of sample / rate) of ``n_samples``
    samples, exactly: seven for the point and decimals, and the integer digits."""
    total = 7 * n_samples
    digits, below = 1, 0
    while below < n_samples:
        # samples whose time has at most ``digits`` integer digits: t < 10**digits
        upto = min(n_samples, math.ceil(10**digits * rate_hz))
        total += digits * (upto - below)
        below, digits = upto, digits + 1
    return total


def table_bytes(columns: Sequence[str], n_samples: int, rate_hz: float) -> int:
    """``samples.csv`` or ``timing.csv`` with ``columns`` over ``n_samples`` rows: the
    header and each cell by its kind, a separator (comma or newline) after each."""
    from controller.events import PHASE_NAMES
    from controller.trial.csvtext import FLOAT6, INTEGER
    from controller.trial.files import column_kind, header

    widths = {FLOAT6: FLOAT_CELL_BYTES, INTEGER: INTEGER_CELL_BYTES}
    phase_bytes = max(len(name) for name in PHASE_NAMES.values())
    per_row = 0.0
    timed = 0
    for name in columns:
        if name == "time_s":
            timed = time_text_bytes(n_samples, rate_hz)
            per_row += 1
        elif name in TIMING_CELL_BYTES:
            per_row += TIMING_CELL_BYTES[name] + 1
        else:
            per_row += widths.get(column_kind(name), float(phase_bytes)) + 1
    return len(header(columns)) + timed + math.ceil(per_row * n_samples)


def sample_columns(channels: Iterable[str], truth: Sequence[str]) -> list[str]:
    """The columns of ``samples.csv``: the recorder's (``channels``, the further enabled
    channels by name), then the back end's ``truth``."""
    from controller.trial.recorder import SAMPLE_ROWS, STIM_COLUMNS, stim_column_prefix

    names = list(SAMPLE_ROWS) + list(STIM_COLUMNS)
    for name in channels:
        names += [stim_column_prefix(name) + column for column in STIM_COLUMNS]
    return names + list(truth)


def planned_files(
    columns: Sequence[str],
    rate_hz: float,
    duration_s: float,
    *,
    timed: bool,
    data_format: str = "csv",
    rewritten: Sequence[str] = (),
) -> PlannedFiles:
    """The most a trial writes into its folder at once (``columns`` streamed into
    ``samples``, ``timed``: a wall-clock trial's timing table, and its spill when it is
    windowed; ``rewritten``: the columns ``samples.csv`` is written again with at the
    end, beside the streamed one, by a short ``fes run`` against a board that may send
    an emulator's truth)."""
    from controller.trial.streams import TIMING_COLUMNS
    from controller.trial.window import window_rows

    n = round(duration_s * rate_hz)
    tables = table_bytes(columns, n, rate_hz)
    names = [f"samples.{data_format}", f"events.{data_format}"]
    if timed:
        tables += table_bytes(TIMING_COLUMNS, n, rate_hz)
        names.append(f"timing.{data_format}")
    if rewritten:
        tables += table_bytes(rewritten, n, rate_hz)
        names[0] += " (twice at its end, with the board's truth)"
    events = 2 * EVENT_BYTES_PER_S * duration_s  # rewritten sorted at the end
    if data_format == "parquet":
        # parts and the merged file side by side at the end, measured together under
        # the CSV's size of the same rows (docs/files.md), and the parts' footers
        events = PARQUET_TABLES * PARQUET_PART_FOOTER_FACTOR * CONFIG_BYTES * duration_s
    spill = SPILL_BYTES_PER_SAMPLE * n if timed and window_rows(n) is not None else 0
    if spill:
        names.append("the log writer's spill of lateness and latency")
    total = (tables + events + spill + DOCUMENT_BYTES) * (1 + MARGIN)
    return PlannedFiles(math.ceil(total), total / duration_s if duration_s > 0 else 0.0,
                        ", ".join(names))


def simulated_files(config: Mapping[str, Any], realtime: bool, data_format: str) -> PlannedFiles:
    """``planned_files`` of a ``fes sim`` trial (or a sweep's) of ``config`` (a trial
    config as a dict, ``model_dump``): the recorder's columns and the limb's truth."""
    from sim.limb import TRUTH_COLUMNS

    loop, channels = config["loop"], config["stim"]["channels"]
    columns = sample_columns([n for n, ch in channels.items() if ch["enabled"]], TRUTH_COLUMNS)
    return planned_files(columns, loop["sample_rate_hz"], loop["duration_s"], timed=realtime,
                         data_format=data_format)


def sweep_files(configs: Sequence[Mapping[str, Any]], summaries_only: bool,
                data_format: str) -> PlannedFiles:
    """What a sweep's unfinished trials (``configs``) write into its ``trials/`` in all:
    each trial's files (``simulated_files``; with ``summaries_only`` its documents),
    ``bytes_per_s`` per second of trial over them all."""
    if summaries_only:
        per_trial = [PlannedFiles(DOCUMENT_BYTES, 0.0, "summaries") for _ in configs]
    else:
        per_trial = [simulated_files(c, False, data_format) for c in configs]
    seconds = sum(c["loop"]["duration_s"] for c in configs)
    total = sum(p.bytes for p in per_trial)
    what = per_trial[0].what if per_trial else "nothing"
    return PlannedFiles(total, total / seconds if seconds > 0 else 0.0,
                        f"{len(configs)} trials to run, each {what}")


def live_files(config: Mapping[str, Any], board: bool, data_format: str) -> PlannedFiles:
    """``planned_files`` of a ``fes run`` trial of ``config`` (a dict, ``model_dump``):
    the recorder's columns; against the project's ``board`` a trial too short to be
    windowed writes ``samples.csv`` again at its end with a board emulator's truth (not
    known before the board is asked, which the check must not do: counted)."""
    from controller.trial.window import window_rows
    from hw.board import WIRE_TRUTH_COLUMNS

    loop, channels = config["loop"], config["stim"]["channels"]
    names = [n for n, ch in channels.items() if ch["enabled"]]
    short = window_rows(round(loop["duration_s"] * loop["sample_rate_hz"])) is None
    rewritten = sample_columns(names, WIRE_TRUTH_COLUMNS) if board and short else ()
    return planned_files(sample_columns(names, ()), loop["sample_rate_hz"],
                         loop["duration_s"], timed=True, data_format=data_format,
                         rewritten=rewritten)


def free_bytes(folder: Path) -> tuple[int, Path] | None:
    """The bytes an unprivileged writer may still use on the file system that will hold
    ``folder`` (its nearest existing ancestor's, if it does not exist yet), and that
    ancestor; None where that says nothing of room (a path that is no folder, a file
    system of no blocks such as ``/proc``): the folder's claim names the system's
    reason then (``controller.trial.folder``)."""
    place = folder.absolute()
    while not place.exists() and place.parent != place:
        place = place.parent
    try:
        stats = os.statvfs(place)
    except OSError:
        return None
    if not place.is_dir() or stats.f_blocks == 0:
        return None
    return stats.f_bavail * stats.f_frsize, place


def removed_bytes(folder: Path) -> int:
    """The bytes of an earlier trial's files in ``folder`` that ``--overwrite`` removes
    before the trial writes anything (``controller.trial.folder``)."""
    from controller.trial.folder import trial_files

    total = 0
    for name in trial_files(folder):
        path = folder / name
        paths = path.rglob("*") if path.is_dir() else [path]
        total += sum(p.stat().st_size for p in paths if p.is_file())
    return total


def hours_text(seconds: float) -> str:
    """``9.2 h`` or ``35 min`` or ``40 s``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def check_room(
    folder: Path,
    planned: PlannedFiles,
    *,
    changes: str,
    overwrite: bool = False,
    notes: TextIO | None = None,
    of_what: str = "trial",
) -> None:
    """``OutputError`` naming ``folder`` if ``planned`` does not fit in the free space
    of its file system (with what ``--overwrite`` would remove counted as free); a note
    on ``notes`` if it fits only narrowly. ``changes``: what the user may change, with
    ``{seconds}`` for the seconds of ``of_what`` that fit."""
    room = free_bytes(folder)
    if room is None:
        return
    free, place = room
    if overwrite and folder.is_dir():
        free += removed_bytes(folder)
    lasts = free / planned.bytes_per_s if planned.bytes_per_s > 0 else math.inf
    owner = "the trial's" if of_what == "trial" else f"the {of_what}'"
    needs = (f"{owner} files need about {size_text(planned.bytes)} ({planned.what}, "
             f"{size_text(planned.bytes_per_s * 3600)} an hour of {of_what}, with a "
             f"{MARGIN:.0%} margin)")
    where = f"the file system holding {place}"
    if planned.bytes > free:
        raise OutputError(folder, (
            f"{needs}, but {where} has {size_text(free)} free, room for "
            f"{hours_text(lasts)} of {of_what} at this rate: "
            f"{changes.format(seconds=math.floor(lasts))}, or free some space; nothing "
            "was written"))
    if notes is not None and planned.bytes > NARROW_FRACTION * free:
        notes.write(f"fes: note: {needs}; {where} has {size_text(free)} free, room for "
                    f"{hours_text(lasts)} of {of_what} at this rate: it fits, narrowly (other "
                    "writers on that disk could still fill it)\n")
