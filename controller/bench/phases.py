"""Where the wall time of one closed-loop ``fes sim`` trial goes, phase by phase.

``python -m controller.bench.phases`` runs ``--repeats`` compiled trials of
``--duration-s`` at ``--rate-hz`` (severe patient, as ``controller.bench.simulator``)
and prints, for the one of least wall time, when each phase of the trial's own process
started, its wall time, this thread's CPU time and the page faults of the process in it:
building the config and the parts, opening the files, starting the log writer, the
compiled loop, scoring, waiting for the writer's last pass (``writer.stop``: the wall
time the trial waits for its writer), completing the files. The writer is forked from
the trial, as ``fes sim`` does. A phase's wall time above its CPU time is time the
trial's thread did not run (the machine busy, or waiting for the writer).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from controller.bench import simulator as bench
from controller.deadlines import DeadlineMonitor
from controller.trial import session, simulated, streams, writer

#: (module or class, attribute, label) of every phase timed, in the order they run.
PHASES: tuple[tuple[Any, str, str], ...] = (
    (bench, "load_config", "config"),
    (simulated.TrialFolder, "claim", "claim the folder"),
    (simulated, "load_patient", "patient"),
    (simulated, "SimulatedLimb", "limb"),
    (simulated, "TrialRecorder", "recorder"),
    (streams.TrialFiles, "open", "open the files"),
    (writer.LogWriter, "start", "start the writer"),
    (simulated, "run_compiled_loop", "compiled loop"),
    (DeadlineMonitor, "figures", "timing figures"),
    (session, "summarize", "scoring"),
    (writer.LogWriter, "stop", "writer.stop"),
    (streams.TrialFiles, "complete", "complete the files"),
)


class Phase(NamedTuple):
    """One timed call: label, start (s after the trial's), wall, thread CPU, faults."""

    label: str
    start_s: float
    wall_s: float
    cpu_s: float
    faults: int


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@contextlib.contextmanager
def timed_phases(phases: list[Phase], origin: list[float]) -> Iterator[None]:
    """Record every call of ``PHASES`` inside the block into ``phases``."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in PHASES]

    def timer(call: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu, faults = time.perf_counter(), time.thread_time(), _faults()
            try:
                return call(*args, **kwargs)
            finally:
                phases.append(Phase(label, start - origin[0], time.perf_counter() - start,
                                    time.thread_time() - cpu, _faults() - faults))
        return timed

    for (owner, name, call), (_, _, label) in zip(originals, PHASES, strict=True):
        setattr(owner, name, timer(call, label))
    try:
        yield
    finally:
        for owner, name, call in originals:
            setattr(owner, name, call)


def best_trial(duration_s: float, rate_hz: float, repeats: int) -> tuple[float, list[Phase]]:
    """Wall time and phases of the quickest of ``repeats`` trials."""
    best: tuple[float, list[Phase]] = (float("inf"), [])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trial"
        bench.closed_loop("severe", 2.0, rate_hz, out)  # compile (or load) first
        for _ in range(repeats):
            phases: list[Phase] = []
            origin = [time.perf_counter()]
            with timed_phases(phases, origin):
                bench.closed_loop("severe", duration_s, rate_hz, out)
            wall = time.perf_counter() - origin[0]
            shutil.rmtree(out)
            writer.wait_for_ended_writers()
            if wall < best[0]:
                best = (wall, phases)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.phases",
                                     description=__doc__)
    parser.add_argument("--duration-s", type=float, default=60.0,
                        help="simulated time of a trial (default 60)")
    parser.add_argument("--rate-hz", type=float, default=1000.0, help="default 1000")
    parser.add_argument("--repeats", type=int, default=11, help="trials (default 11)")
    args = parser.parse_args(argv)
    wall, phases = best_trial(args.duration_s, args.rate_hz, args.repeats)
    print(f"{args.duration_s:g} s at {args.rate_hz:g} Hz, writer forked by the trial (as fes "
          f"sim): least wall {wall * 1e3:.1f} ms ({args.duration_s / wall:,.0f}x real time) of "
          f"{args.repeats} trials; its phases:")
    for phase in phases:
        print(f"  at {phase.start_s * 1e3:6.2f} ms  {phase.wall_s * 1e3:6.2f} ms wall "
              f"{phase.cpu_s * 1e3:6.2f} ms CPU {phase.faults:5d} faults  {phase.label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
