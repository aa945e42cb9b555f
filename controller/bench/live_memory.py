"""Benchmark of a live trial's memory over its length: the resident set of the trial's
process and of its log writer at trial times, and their growth per hour of trial.

    python -m controller.bench.live_memory [--realtime] [--duration-s S] [--every-s S]
                                           [--speed X] [--rate-hz HZ] [--loose-timeouts]
                                           [--from-s S] [-- fes run / fes sim options]

By default it runs the installed ``fes board-emulator --no-truth --speed X`` (a board
that, as a real one, sends no ground truth; its time runs X times faster than the wall
clock) and ``fes run`` against it; with ``--realtime``, ``fes sim --realtime`` (the
paced loop on the wall clock, durations in wall time). Both print a status line every
second of trial time; at every ``--every-s`` of trial time read off that line, the
resident set (``VmRSS``) of the trial's process and of its children (the log writer,
forked) is read from ``/proc``, the writer's split into anonymous memory, mapped files and
shared memory (``PARTS``: a jump in one says what it was). So the figures are per trial
second, not per wall second, whatever the speed and the machine's load.

A trial longer than two windows of rows keeps a window (``controller.trial.window``:
2**17 rows, 524 s at 500 Hz, 262 s at 1 kHz), and its writer maps the ring's pages as
it first writes them: the growth per hour is taken from the first reading at or after
``--from-s`` (two windows by default) to the last one, so that it measures what grows
with the trial, not the window filling up.

A trial ended early (the watchdog's heartbeat fault on a machine too loaded for the
loop, a link fault) still gives the figures of the time it reached; its last line says
why it ended. ``--loose-timeouts`` sets the watchdog's wall-clock timeouts at their
compiled maximum (30 ms, as the live tests do on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.bench import LOOSE_TIMEOUTS_TOML
from controller.bench.startup import fes_command

#: A status line's trial time (``controller.trial.status``): ``t   12.0 s | ...``.
STATUS_TIME = re.compile(r"^t\s+(\d+(?:\.\d*)?) s \|")
#: Rows of a window (``controller.trial.window.WINDOW_ROWS``, not imported: it would
#: bring numpy and the trial package into a bench that only runs commands).
WINDOW_ROWS = 2**17


#: The parts of a resident set ``/proc/PID/status`` gives: anonymous memory, pages of
#: mapped files (the code of the libraries a process has run: a numba compile maps some
#: 57 MB of LLVM's, docs/files.md), shared memory (the trial's rows).
PARTS = ("RssAnon", "RssFile", "RssShmem")


@dataclass(frozen=True, slots=True)
class Reading:
    """The resident sets at one trial time: the trial's process and its children, and
    the children's ``PARTS`` (MB each)."""

    t_s: float
    host_mb: float
    writer_mb: float
    writer_parts_mb: tuple[float, ...] = ()


def resident_mb(pid: int, field: str = "VmRSS") -> float:
    """``field`` (``VmRSS`` or one of ``PARTS``) of process ``pid`` in MB (10**6 bytes),
    NaN once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError):
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (the trial's log writer)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return [int(c) for c in listed.read().split()]
    except OSError:
        return []


def read_while_running(process: subprocess.Popen[str], every_s: float,
                       echo: bool) -> tuple[list[Reading], list[str]]:
    """Readings every ``every_s`` of trial time from ``process``'s status lines, and
    the lines that were not status lines (its notes and its closing figures)."""
    assert process.stdout is not None
    readings: list[Reading] = []
    other: list[str] = []
    due_s = every_s
    for line in process.stdout:
        match = STATUS_TIME.match(line)
        if match is None:
            other.append(line.rstrip("\n"))
            continue
        t_s = float(match.group(1))
        if t_s + 1e-9 < due_s:
            continue
        due_s += every_s * (1 + int((t_s - due_s) // every_s))
        writers = children(process.pid)
        reading = Reading(t_s, resident_mb(process.pid), sum(map(resident_mb, writers)),
                          tuple(sum(resident_mb(c, part) for c in writers) for part in PARTS))
        readings.append(reading)
        if echo:
            print(_row(reading), flush=True)
    return readings, other


def _row(r: Reading) -> str:
    parts = ", ".join(f"{part.removeprefix('Rss').lower()} {mb:.1f}"
                      for part, mb in zip(PARTS, r.writer_parts_mb, strict=True))
    return (f"t {r.t_s:8.1f} s  trial process {r.host_mb:7.1f} MB  log writer "
            f"{r.writer_mb:7.1f} MB" + (f" ({parts})" if parts else ""))


def growth_per_hour(readings: Sequence[Reading], from_s: float) -> tuple[float, float,
                                                                          Reading, Reading]:
    """MB an hour of trial of the trial's process and of its writer, from the first
    reading at or after ``from_s`` to the last; and those two readings."""
    after = [r for r in readings if r.t_s >= from_s]
    if len(after) < 2:
        raise ValueError(f"fewer than two readings at or after {from_s:g} s of trial "
                         f"(readings up to {readings[-1].t_s if readings else 0:g} s)")
    first, last = after[0], after[-1]
    hours = (last.t_s - first.t_s) / 3600.0
    return ((last.host_mb - first.host_mb) / hours, (last.writer_mb - first.writer_mb) / hours,
            first, last)


def _start_emulator(fes: Sequence[str], folder: Path, speed: float,
                    rate_hz: float) -> tuple[subprocess.Popen[bytes], str]:
    link = str(folder / "board")
    emulator = subprocess.Popen(
        [*fes, "board-emulator", "--no-truth", "--speed", f"{speed:g}", "--rate-hz",
         f"{rate_hz:g}", "--link", link],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60.0
    while not os.path.exists(link):
        if emulator.poll() is not None or time.monotonic() > deadline:
            assert emulator.stderr is not None
            raise RuntimeError("fes board-emulator did not start: "
                               + emulator.stderr.read().decode(errors="replace")[-500:])
        time.sleep(0.05)
    return emulator, link


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def add_trial_options(parser: argparse.ArgumentParser, duration_s: float, every_s: float,
                      speed: float) -> None:
    """``--duration-s``, ``--every-s``, ``--speed`` and ``--rate-hz`` of a benchmark that
    reads a live trial at trial times (``check_trial_options`` checks them)."""
    parser.add_argument("--duration-s", type=float, default=duration_s,
                        help=f"trial length in trial seconds (default {duration_s:g})")
    parser.add_argument("--every-s", type=float, default=every_s,
                        help=f"trial seconds between readings (default {every_s:g})")
    parser.add_argument("--speed", type=float, default=speed,
                        help="the emulator's board time per wall second, 0.1-20 "
                        f"(default {speed:g})")
    parser.add_argument("--rate-hz", type=float, default=500.0,
                        help="sample rate of the trial (and of the emulator), Hz (default 500)")


def check_trial_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 naming the option (``parser.error``) for a value ``add_trial_options``'s
    options do not take."""
    if not 0.0 < args.every_s < args.duration_s:
        parser.error("--every-s: above 0 and below --duration-s")
    if not 0.1 <= args.speed <= 20.0:
        parser.error("--speed: 0.1-20")
    if not 0.0 < args.rate_hz <= 10_000.0:
        parser.error("--rate-hz: above 0, at most 10000")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.live_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--realtime", action="store_true",
                        help="fes sim --realtime instead of fes run against the emulator")
    add_trial_options(parser, duration_s=1800.0, every_s=60.0, speed=4.0)
    parser.add_argument("--from-s", type=float, default=None,
                        help="growth from the first reading at or after this trial time "
                        "(default: two windows of rows at the rate)")
    parser.add_argument("--loose-timeouts", action="store_true",
                        help="the watchdog's wall-clock timeouts at 30 ms, their maximum")
    parser.add_argument("options", nargs="*", help="after --: options for fes run or fes sim")
    args = parser.parse_args(argv)
    check_trial_options(parser, args)
    from_s = 2 * WINDOW_ROWS / args.rate_hz if args.from_s is None else args.from_s
    fes = fes_command()
    folder = Path(tempfile.mkdtemp(prefix="fes-bench-live-memory-"))
    emulator: subprocess.Popen[bytes] | None = None
    try:
        config = folder / "bench.toml"
        config.write_text(f"[loop]\nsample_rate_hz = {args.rate_hz:g}\n"
                          + (LOOSE_TIMEOUTS_TOML if args.loose_timeouts else ""))
        common = ["--duration-s", f"{args.duration_s:g}", "--out", str(folder / "trial"),
                  "--config", str(config), *args.options]
        if args.realtime:
            argv_ = [*fes, "sim", "--realtime", *common]
            what = f"fes sim --realtime at {args.rate_hz:g} Hz"
        else:
            emulator, link = _start_emulator(fes, folder, args.speed, args.rate_hz)
            argv_ = [*fes, "run", "--port", link, *common]
            what = (f"fes run against fes board-emulator --no-truth --speed {args.speed:g} "
                    f"at {args.rate_hz:g} Hz")
        print(f"{what}, {args.duration_s:g} s of trial"
              + (", wall-clock timeouts 30 ms" if args.loose_timeouts else ""))
        print(f"load average before: {_load()}", flush=True)
        process = subprocess.Popen(argv_, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        readings, other = read_while_running(process, args.every_s, echo=True)
        _, status, usage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        ending = [line for line in other if line.startswith(("trial:", "fes run: stopped",
                                                             "fes sim: stopped"))]
        print(f"exit {code}; " + "; ".join(ending or other[-1:]))
        print(f"CPU {usage.ru_utime + usage.ru_stime:.1f} s (the trial's process); "
              f"load average after: {_load()}")
        try:
            host, writer, first, last = growth_per_hour(readings, from_s)
        except ValueError as err:
            print(f"no growth figure: {err}")
            return 1
        print(f"growth from {first.t_s:g} s to {last.t_s:g} s of trial: trial process "
              f"{host:+.2f} MB an hour, log writer {writer:+.2f} MB an hour")
        return 0
    finally:
        if emulator is not None:
            emulator.send_signal(signal.SIGTERM)
            try:
                emulator.wait(10.0)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
