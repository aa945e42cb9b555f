"""Benchmark of the log writer's resident set around a paced trial's first cell that the
CSV renderer leaves to Python.

    python -m controller.bench.writer_first_use [--duration-s S] [--at-s S] [--rate-hz HZ]
                                                [--code DIR] [-- fes sim options]

Runs ``fes sim --realtime`` in a child interpreter whose limb truth column
``ankle_angle_deg`` reaches the files as an infinity from ``--at-s`` of trial on (a cell
the renderer leaves to Python, as a lateness of a second or more in ``timing.csv``
would be), and reads its log writer's resident set (``VmRSS``) and its parts
(``controller.bench.live_memory.PARTS``: anonymous, mapped files, shared) from ``/proc``
every second of wall time. A writer that compiles or loads a kernel on that cell maps
LLVM's code then (mapped files jump); one that was ready before the loop does not. Where
the code has a writer warm-up, the child also prints how long it took (options after
``--`` go to the ``fes sim``: ``--format parquet``, a warm-up with Parquet's sinks). Exit
1 when the trial did not end with exit 0 (its output above says why): its figures
measured nothing.

``--code DIR`` runs the trial on the code of another checkout (``git archive <commit>
controller sim hw configs | tar -x -C DIR``: its numba cache is its own, so its first
run compiles everything, the writer's kernels included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from controller.bench.live_memory import PARTS, children, resident_mb

#: The child: argv 1 folder, 2 duration, 3 rate, 4 the first infinite sample, 5 the rate's
#: config file, then options for ``fes sim``.
_TRIAL = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from controller.cli import main
    from controller.trial import streams, writer
    first = int(sys.argv[4])
    rows = streams.TruthRows.rows

    def infinite_from(self, start, stop):
        block = rows(self, start, stop)
        if stop > first:
            column = np.array(block["ankle_angle_deg"])
            column[max(0, first - start):] = np.inf
            block["ankle_angle_deg"] = column
        return block

    streams.TruthRows.rows = infinite_from
    warm_up = getattr(writer.LogWriter, "_warm_up", None)
    if warm_up is not None:
        def timed(self, sinks):
            started = time.perf_counter()
            warm_up(self, sinks)
            print(f"log writer warmed up in {1e3 * (time.perf_counter() - started):.1f} ms",
                  file=sys.stderr, flush=True)
        writer.LogWriter._warm_up = timed
    with open(sys.argv[5], "w") as config:
        config.write(f"[loop]\\nsample_rate_hz = {sys.argv[3]}\\n")
    sys.exit(main(["sim", "--realtime", "--duration-s", sys.argv[2], "--out", sys.argv[1],
                   "--config", sys.argv[5], *sys.argv[6:]]))
    """
)


def _parts(pid: int) -> str:
    return ", ".join(f"{part.removeprefix('Rss').lower()} {resident_mb(pid, part):.1f}"
                     for part in PARTS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.writer_first_use",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=20.0,
                        help="trial length in seconds (default 20)")
    parser.add_argument("--at-s", type=float, default=10.0,
                        help="trial time of the first infinite cell (default 10)")
    parser.add_argument("--rate-hz", type=float, default=1000.0,
                        help="sample rate, Hz (default 1000)")
    parser.add_argument("--code", type=Path, default=None, metavar="DIR",
                        help="a checkout whose controller/, sim/ and hw/ the trial runs "
                        "(default: this one)")
    parser.add_argument("options", nargs="*", help="after --: options for the fes sim")
    args = parser.parse_args(argv)
    if not 0.0 < args.at_s < args.duration_s:
        parser.error("--at-s: above 0 and below --duration-s")
    if not 0.0 < args.rate_hz <= 10_000.0:
        parser.error("--rate-hz: above 0, at most 10000")
    if args.code is not None and not (args.code / "controller" / "cli.py").is_file():
        parser.error(f"--code: {args.code} holds no controller/cli.py")
    env = dict(os.environ)
    if args.code is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(args.code.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="fes-bench-writer-") as folder:
        said = Path(folder) / "stderr"
        with said.open("w") as stderr:  # the status line and the warm-up's time
            process = subprocess.Popen(
                [sys.executable, "-c", _TRIAL, str(Path(folder) / "trial"),
                 f"{args.duration_s:g}", f"{args.rate_hz:g}",
                 str(round(args.at_s * args.rate_hz)), str(Path(folder) / "rate.toml"),
                 *args.options],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                cwd=folder)  # not this checkout's folder: ``-c`` puts it on the path
            started = time.monotonic()
            while process.poll() is None:
                writers = children(process.pid)
                if writers:
                    print(f"{time.monotonic() - started:6.1f} s wall  log writer "
                          f"{resident_mb(writers[0]):6.1f} MB ({_parts(writers[0])})",
                          flush=True)
                time.sleep(1.0)
        for line in said.read_text().splitlines():
            if not line.startswith("t "):  # not a status line
                print(line)
        print(f"exit {process.returncode}; the first infinite cell at {args.at_s:g} s of trial")
    # A trial that failed measured nothing: say so by the exit code too, not only in print.
    return 0 if process.returncode == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
