"""How long a killed trial's folder stays locked: its log writer's last writes.

    python -m controller.bench.kill_lock [--runs 3] [--after-s 1] [--dir /tmp/kill-lock]

A trial's folder is locked (``flock``, ``controller.trial.folder``) by the trial's
process and by its forked log writer, which outlives a SIGKILL of the trial and writes
every row the loop had published before it closes the files and so frees the folder; a
retry into the folder (``--overwrite``) is refused until then (docs/files.md, "What
survives a crash"). For each command of ``COMMANDS``, ``--runs`` times: start it, wait
until its first file appears, let it run ``--after-s`` more, SIGKILL the trial's process
(not the writer), reap it, then try the folder's lock every 0.1 ms and print how long
after the reaping it was first free. Each trial is first run once for 1 s to its end,
so that numba's cache holds its kernels: a first run compiles for seconds after its
first file, and a kill then falls before the loop and its writer have started. A
virtual-clock trial's writer has many rows still to write when its trial dies; a
real-time trial's writer keeps up with its loop.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: The ``fes sim`` options of each trial killed: one that outruns its writer (the
#: virtual clock at 1 kHz, Parquet), one paced by the wall clock.
COMMANDS = (
    ("--rate-hz", "1000", "--duration-s", "86400", "--format", "parquet"),
    ("--realtime", "--duration-s", "600"),
)
#: How often the folder's lock is tried once the trial is reaped.
TRY_EVERY_S = 1e-4


def _first_file(folder: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until ``folder`` holds a file (False: the trial ended or ``timeout_s`` ran
    out first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.iterdir()):
            return True
        time.sleep(0.001)
    return False


def lock_free_after(folder: Path, timeout_s: float) -> float | None:
    """Seconds until an exclusive ``flock`` of ``folder`` succeeds, tried every
    ``TRY_EVERY_S`` (None: still held after ``timeout_s``). The lock is let go at once."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout_s:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(TRY_EVERY_S)
                continue
            return time.monotonic() - start
        return None
    finally:
        os.close(fd)


def warm_up(options: Sequence[str], folder: Path) -> None:
    """Run the trial of ``options`` for 1 s to its end (its kernels compiled and cached)."""
    shutil.rmtree(folder, ignore_errors=True)
    short = [*options, "--duration-s", "1"]  # the last --duration-s counts
    subprocess.run([sys.executable, "-m", "controller.cli", "sim", *short, "--out",
                    str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)


def kill_once(options: Sequence[str], folder: Path, after_s: float,
              timeout_s: float) -> float | None:
    """One run: the seconds from the killed trial's reaping to its folder's lock being
    free (None: still held after ``timeout_s``). ``RuntimeError`` if the trial wrote
    nothing or ended by itself before its kill."""
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "controller.cli", "sim", *options, "--out", str(folder)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _first_file(folder, proc, timeout_s):
            raise RuntimeError(f"fes sim {' '.join(options)} wrote no file within "
                               f"{timeout_s:g} s (exit {proc.poll()})")
        time.sleep(after_s)
        if proc.poll() is not None:
            raise RuntimeError(f"fes sim {' '.join(options)} ended (exit {proc.returncode}) "
                               f"before its kill at {after_s:g} s")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return lock_free_after(folder, timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Kill every trial of ``COMMANDS`` ``--runs`` times and print the lock's times."""
    parser = argparse.ArgumentParser(prog="python -m controller.bench.kill_lock",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="kills of each trial (default 3)")
    parser.add_argument("--after-s", type=float, default=1.0,
                        help="the kill comes this long after the first file (default 1)")
    parser.add_argument("--timeout-s", type=float, default=60.0,
                        help="give up waiting for a file or the lock after this (default 60)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/kill-lock"),
                        help="the trial folder, removed before each run (default "
                             "/tmp/kill-lock)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.after_s < 0 or args.timeout_s <= 0:
        parser.error("--runs must be at least 1, --after-s at least 0, --timeout-s positive")
    load = os.getloadavg()[0]
    for options in COMMANDS:
        try:
            warm_up(options, args.dir)
        except subprocess.CalledProcessError as error:
            print(f"kill_lock: fes sim {' '.join(options)} --duration-s 1 failed (exit "
                  f"{error.returncode})", file=sys.stderr)
            return 1
        times = []
        for _ in range(args.runs):
            try:
                free = kill_once(options, args.dir, args.after_s, args.timeout_s)
            except RuntimeError as error:
                print(f"kill_lock: {error}", file=sys.stderr)
                return 1
            times.append(f"still held after {args.timeout_s:g} s" if free is None
                         else f"{free * 1e3:.1f} ms")
        print(f"fes sim {' '.join(options)}, SIGKILL {args.after_s:g} s after its first "
              f"file: folder free {', '.join(times)} after the reaping")
    shutil.rmtree(args.dir, ignore_errors=True)
    print(f"machine load average {load:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
