"""Benchmark of the command line's start-up: what a CI job pays per ``fes`` call.

    python -m controller.bench.startup [--repeat N] [--cold N]

Every case runs the installed ``fes`` command in a fresh process, ``--repeat`` times
(hyperfine-style), and prints the best and the median wall time and the median CPU time
(user + system, from the child's resource usage) beside its target:

* ``python -c pass``, the floor any Python command pays;
* ``fes --help`` and every ``fes <command> --help`` (target 0.15 s: a parser imports no
  numpy, numba or pydantic, tests/test_startup.py);
* a Python script whose only work is one cached numba kernel: what any program that
  runs a kernel pays (numpy and numba imported, numba's CPU target set up on the first
  call, the kernel loaded from its cache), and the same kernel run the way ``fes`` runs
  its kernels (one OpenBLAS thread, no cycle collection, ``controller.kernels``'
  dispatcher, objects frozen at exit): the floor under ``fes detect``;
* ``fes detect`` over a 1-minute recording (``fes sim --duration-s 60``, 500 Hz), after
  one untimed run has compiled its kernel (target 0.5 s end to end);
* with ``--cold N``: the first ``fes sim`` after an install, N times, each with an empty
  numba cache of its own (``NUMBA_CACHE_DIR``, so the installed caches are left alone),
  with the compile time the command itself reports (target 8 s).

The machine may be shared: the load average is printed before and after, and the best
of the runs is the figure least disturbed by other processes; a target is judged on
the best and on the median (what a user meets half the time). CPU time is printed too
because it moves less with the load than the wall time does.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.cli import command_names

HELP_TARGET_S = 0.15
DETECT_TARGET_S = 0.5
FIRST_RUN_TARGET_S = 8.0
#: What ``fes sim`` prints once it has compiled its kernels (``controller.hotpath``).
_COMPILED = re.compile(r"compiled in ([0-9.]+) s")


@dataclass(frozen=True)
class Run:
    """One process: wall seconds, CPU seconds (user + system) and what it wrote on stderr."""

    wall_s: float
    cpu_s: float
    stderr: str


def fes_command() -> list[str]:
    """The installed ``fes`` script beside this interpreter, else ``python -m``."""
    script = shutil.which("fes", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "controller.cli"]


def run_once(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` to the end; its wall and CPU time (raises if it fails)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr[-500:]}")
    return Run(wall_s, usage.ru_utime + usage.ru_stime, stderr)


def _row(name: str, runs: Sequence[Run], target_s: float | None) -> str:
    walls = [r.wall_s for r in runs]
    best, median = min(walls), statistics.median(walls)
    cpu = statistics.median(r.cpu_s for r in runs)
    verdict = "" if target_s is None else (
        f"  target {target_s:g} s: {'met' if best <= target_s else 'MISSED'} by the best, "
        f"{'met' if median <= target_s else 'MISSED'} by the median"
    )
    return (f"{name:<34} best {best:6.3f} s  median {median:6.3f} s  "
            f"cpu {cpu:6.3f} s{verdict}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_help(fes: list[str], repeat: int) -> list[str]:
    """``python -c pass``, ``fes --help`` and every ``fes <command> --help``."""
    lines = [_row("python -c pass", [run_once([sys.executable, "-c", "pass"])
                                     for _ in range(repeat)], None)]
    for args in [["--help"], *([c, "--help"] for c in command_names())]:
        runs = [run_once([*fes, *args]) for _ in range(repeat)]
        lines.append(_row(f"fes {' '.join(args)}", runs, HELP_TARGET_S))
    return lines


#: The least any command that runs a numba kernel pays: import numpy and numba, load one
#: cached one-line kernel from numba's cache (which sets up numba's CPU target) and call it.
_ONE_CACHED_KERNEL = """\
import numba
import numpy as np

@numba.njit(cache=True)
def total(x):
    return x.sum()

total(np.ones(3))
"""


#: The same kernel the way ``fes`` runs its kernels, the floor under ``fes detect``: one
#: OpenBLAS thread (``controller.cli.one_blas_thread``), no cycle collection while the
#: modules import (as ``fes detect``), ``controller.kernels``' dispatcher (no refresh of
#: numba's CPU target, no ``numpy.ma``), the objects frozen at exit (``controller.cli``).
_ONE_PROJECT_KERNEL = """\
import gc
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
gc.disable()
import numpy as np

from controller.kernels import kernel

@kernel
def total(x):
    return x.sum()

total(np.ones(3))
gc.freeze()
"""


def bench_numba_floor(repeat: int, folder: Path) -> list[str]:
    """Scripts whose only work is one cached numba kernel, after one untimed run each:
    a plain ``numba.njit`` one, and one run the way ``fes`` runs its kernels (the floor
    under ``fes detect``'s end-to-end time)."""
    lines = []
    for name, text, label in (
        ("one_cached_kernel.py", _ONE_CACHED_KERNEL, "python: one cached numba kernel"),
        ("one_project_kernel.py", _ONE_PROJECT_KERNEL, "python: the same, as fes runs it"),
    ):
        script = folder / name
        script.write_text(text)
        argv = [sys.executable, str(script)]
        run_once(argv)
        runs = [run_once(argv) for _ in range(repeat)]
        lines.append(_row(label, runs, None))
    return lines


def bench_detect(fes: list[str], repeat: int, folder: Path) -> list[str]:
    """``fes detect`` over a 1-minute simulated recording, after one untimed run."""
    walk = folder / "walk"
    run_once([*fes, "sim", "--duration-s", "60", "--out", str(walk)])
    argv = [*fes, "detect", "--input", str(walk / "samples.csv"),
            "--output", str(folder / "replay.csv")]
    run_once(argv)
    runs = [run_once(argv) for _ in range(repeat)]
    return [_row("fes detect (60 s recording)", runs, DETECT_TARGET_S)]


def bench_first_run(fes: list[str], times: int, folder: Path) -> list[str]:
    """The first ``fes sim`` after an install: an empty numba cache each time."""
    runs, compiled = [], []
    for i in range(times):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / f"numba-cache-{i}")}
        run = run_once([*fes, "sim", "--out", str(folder / f"first-{i}")], env)
        runs.append(run)
        found = _COMPILED.search(run.stderr)
        compiled.append(float(found.group(1)) if found else float("nan"))
    return [
        _row("fes sim, empty numba cache", runs, FIRST_RUN_TARGET_S),
        f"{'':<34} compile time it reported: "
        + ", ".join(f"{c:.1f} s" for c in compiled),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.startup",
        description="Time fes --help, every fes <command> --help, fes detect on a "
        "1-minute recording and (with --cold) the first fes sim after an install.",
    )
    parser.add_argument("--repeat", type=int, default=10, metavar="N",
                        help="runs of each quick case (default 10)")
    parser.add_argument("--cold", type=int, default=1, metavar="N",
                        help="first runs of fes sim, each with an empty numba cache "
                        "(default 1; 0 skips them, each takes many seconds)")
    args = parser.parse_args(argv)
    fes = fes_command()
    print(f"fes: {' '.join(fes)}; load average before: {_load()}")
    with tempfile.TemporaryDirectory(prefix="fes-startup-") as tmp:
        folder = Path(tmp)
        for line in bench_help(fes, args.repeat):
            print(line, flush=True)
        for line in bench_numba_floor(args.repeat, folder) + bench_detect(
                fes, args.repeat, folder):
            print(line, flush=True)
        if args.cold > 0:
            for line in bench_first_run(fes, args.cold, folder):
                print(line, flush=True)
    print(f"load average after: {_load()} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
