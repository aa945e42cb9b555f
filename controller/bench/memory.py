"""Benchmark of a long ``fes sim``'s memory: does it grow with the trial's length?

    python -m controller.bench.memory [--durations 200,2000,20000] [--repeat N]
                                      [--realtime] [--] [fes sim options]

Every duration runs the installed ``fes sim --duration-s D --out TMP`` in a fresh process,
``--repeat`` times, the output folder deleted after each run, and prints its wall time,
CPU time (user + system) and largest resident set (the most of the command or its log
writer process, from ``wait4`` as ``/usr/bin/time -v`` reports it); then the growth of
the largest resident set per hour of trial between the shortest and the longest
duration. A simulated trial longer than two windows keeps a window of rows, not the
trial (``controller.trial.window``): what grows is per event and per pulse (docs/cli.md,
"Long work: progress and memory"). Options after ``--`` go to every ``fes sim``
(``--rate-hz 1000``, ``--no-stim``, ...).

``--realtime`` runs ``fes sim --realtime`` instead: a paced loop on the wall clock, as a
live trial (``fes run``) runs, recording into rings once it is longer than two windows
and scored by its log writer process (so its durations are wall time: ``--durations
60,600`` takes 11 minutes).

The machine may be shared: the load average is printed before and after; memory moves
far less with the load than time does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.bench.startup import fes_command


@dataclass(frozen=True)
class Run:
    """One ``fes sim``: wall and CPU seconds, largest resident set in MB."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float


def run_sim(fes: Sequence[str], duration_s: float, options: Sequence[str]) -> Run:
    """``fes sim`` of ``duration_s`` into a fresh folder, deleted afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="fes-bench-memory-"))
    try:
        argv = [*fes, "sim", "--duration-s", f"{duration_s:g}", "--out", str(scratch / "t"),
                *options]
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert process.stderr is not None
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stderr.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: "
                           f"{stderr.decode(errors='replace')[-500:]}")
    # ``ru_maxrss`` is in KiB on Linux.
    return Run(wall_s, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(duration_s: float, runs: Sequence[Run]) -> str:
    walls = ", ".join(f"{r.wall_s:.2f}" for r in runs)
    cpus = ", ".join(f"{r.cpu_s:.2f}" for r in runs)
    rss = max(r.max_rss_mb for r in runs)
    return f"{duration_s:>9g} s  max RSS {rss:8.0f} MB  wall {walls} s  cpu {cpus} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", default="200,2000,20000",
                        help="trial lengths in seconds, comma separated (default 200,2000,20000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per duration (default 1)")
    parser.add_argument("--realtime", action="store_true",
                        help="fes sim --realtime: a paced loop on the wall clock, as a live "
                        "trial (durations are wall time)")
    parser.add_argument("options", nargs="*", help="after --: options for every fes sim")
    args = parser.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",")]
    if args.realtime:
        args.options = ["--realtime", *args.options]
    fes = fes_command()
    print(f"load average before: {_load()}")
    maxima: dict[float, float] = {}
    for duration_s in durations:
        runs = [run_sim(fes, duration_s, args.options) for _ in range(max(1, args.repeat))]
        maxima[duration_s] = statistics.median(r.max_rss_mb for r in runs)
        print(_row(duration_s, runs), flush=True)
    shortest, longest = min(durations), max(durations)
    if longest > shortest:
        per_hour = (maxima[longest] - maxima[shortest]) / ((longest - shortest) / 3600.0)
        print(f"growth from {shortest:g} s to {longest:g} s: {per_hour:.1f} MB per hour of "
              "trial (median max RSS)")
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
