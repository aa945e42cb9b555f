"""Where the first ``fes sim`` after an install spends its compile time, process by process.

    python -m controller.bench.first_run [--runs N] [--python PATH]

Each run is a default ``fes sim`` (the README's first command) in a fresh interpreter
with an empty numba cache of its own. numba's compile events (``numba.core.event``) of
every top-level compilation are logged, with the wall time and the CPU time of the
process that compiled (``fes sim`` itself, "here", or the forked helper of
``controller.trial.compile_ahead``). The run is then summed up along its critical path,
in CPU seconds of each process, which a shared machine disturbs less than the wall time:

    imports + before the fork + max(stages here, stages in the helper)
        + max(the loop in the helper, the rest here) + after the loop

On two idle CPUs that is about the wall time; on a busy machine compare it, alternated,
with another build's (``--python`` names another checkout's interpreter: it runs that
checkout's ``controller``). ``python -m controller.bench.startup --cold N`` times the
whole command as a user meets it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

#: The child: ``fes sim`` with a listener that logs each top-level compilation.
_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    from numba.core import event
    log = open(sys.argv[2], "a", buffering=1)
    depth = {}
    def write(kind, name):
        row = [os.getpid(), kind, time.perf_counter(), time.process_time(), name]
        log.write(json.dumps(row) + "\\n")
    class Compiled(event.Listener):
        def on_start(self, ev):
            depth[os.getpid()] = depth.get(os.getpid(), 0) + 1
            if depth[os.getpid()] == 1:
                write("S", ev.data["dispatcher"].py_func.__qualname__)
        def on_end(self, ev):
            depth[os.getpid()] -= 1
            if depth[os.getpid()] == 0:
                write("E", ev.data["dispatcher"].py_func.__qualname__)
    write("start", "")
    event.register("numba:compile", Compiled())
    from controller.cli import main
    write("imported", "")
    code = main(["sim", "--out", sys.argv[1]])
    write("end", "")
    sys.exit(code)
    """
)


class Mark(NamedTuple):
    """One logged moment: which process, what, its wall and its CPU seconds."""

    pid: int
    kind: str
    wall_s: float
    cpu_s: float
    name: str


def probe(python: str, folder: Path) -> list[Mark]:
    """One cold ``fes sim`` run by ``python``; its marks, in the order logged."""
    log = folder / "compile.log"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba-cache")}
    # Run from ``folder``: ``python -c`` puts its working directory first on the import
    # path, so run from a checkout it would import that checkout's ``controller``, not
    # the one installed for ``python`` (``--python`` then measured this build twice).
    subprocess.run([python, "-c", _PROBE, str(folder / "trial"), str(log)], env=env,
                   cwd=folder, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return [Mark(*json.loads(line)) for line in log.read_text().splitlines()]


def _first(marks: Sequence[Mark], kind: str, name: str = "") -> Mark:
    return next(m for m in marks if m.kind == kind and m.name.endswith(name))


def critical_path(marks: Sequence[Mark]) -> str:
    """The run summed up along its critical path (module docstring), in CPU seconds."""
    here = [m for m in marks if m.pid == marks[0].pid]
    helper = [m for m in marks if m.pid != marks[0].pid]
    if not helper:
        return "compiled in one process (no spare CPU): no critical path to split"
    imported = _first(here, "imported").cpu_s
    fork = _first(here, "S", "detector_step_for.<locals>.step").cpu_s
    stages_here = _first(here, "E", "watchdog_submit").cpu_s - fork
    loop_start, loop_end = _first(helper, "S", "run_block"), _first(helper, "E", "run_block")
    ends = [m.cpu_s for m in here
            if m.kind == "E" and m.wall_s <= loop_end.wall_s and m.cpu_s >= fork + stages_here]
    rest_here = max(ends) - fork - stages_here
    after = _first(here, "end").cpu_s - fork - stages_here - rest_here
    loop = loop_end.cpu_s - loop_start.cpu_s
    total = fork + max(stages_here, loop_start.cpu_s) + max(loop, rest_here) + after
    wall = _first(here, "end").wall_s - _first(here, "start").wall_s
    return (f"wall {wall:.2f} s; critical path {total:.2f} s of CPU = imports "
            f"{imported:.2f} + before the fork {fork - imported:.2f} + stages max(here "
            f"{stages_here:.2f}, helper {loop_start.cpu_s:.2f}) + max(loop {loop:.2f}, here "
            f"{rest_here:.2f}) + after {after:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.first_run",
        description="Where a first fes sim (empty numba cache) spends its compile time, "
        "process by process, along its critical path in CPU seconds.",
    )
    parser.add_argument("--runs", type=int, default=1, metavar="N",
                        help="cold runs, each with an empty numba cache (default 1)")
    parser.add_argument("--python", default=sys.executable, metavar="PATH",
                        help="interpreter to run (another checkout's venv measures that "
                        "checkout; default this one)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be 1 or more, got {args.runs}")
    for _ in range(args.runs):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="fes-first-run-") as tmp:
            marks = probe(args.python, Path(tmp))
        print(f"load {load:.2f} -> {os.getloadavg()[0]:.2f}: {critical_path(marks)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
