"""Speed of the simulated patient and of the closed loop, as multiples of real time.

``python -m controller.bench.simulator`` prints three figures and a profile:

1. the patient alone at 1 kHz: building a ``SimulatedLimb`` and ``run`` over a whole
   open-loop command sequence (stimulation in every swing, made beforehand), one
   compiled loop, one core;
2. the patient stepped sample by sample through its ports (``read``/``apply``), as
   the control loop and the board emulator drive it;
3. the whole closed loop through the ``fes sim`` path (``run_simulated_trial``: limb,
   detector, scheduler, watchdog, recorder, files), at 1 kHz and at the default rate,
   with the loop's own real-time factor (loop only) and the end-to-end one, both for
   the compiled loop ``fes sim`` runs (``controller.trial.compiled_loop``) and for the
   Python ``run_loop`` a live trial runs (the same trial, byte for byte); for the
   compiled loop "the loop alone" is also given in CPU time (this thread's, its first
   touches of the trial's shared pages included), which a loaded machine disturbs less;

then where an end-to-end ``fes sim`` trial spends its time, from ``cProfile``. Each
figure is the best of ``--repeats`` runs and is given for CPU time (the process's and its
children's: a trial's files are rendered by its log writer process while the loop
runs, on another core; not disturbed by other work on a shared machine) and for wall
time (what a user waits, which the writer running in parallel shortens); compilation
is done before timing. Later trials of a process reuse the memory files of the trials
before (``controller.sharedmem.shared_empty``) and the parsed TOML files: each
closed-loop line also gives the least and median wall time of a trial, and the first of
its trials alone, on fresh memory with the files parsed anew, as in a one-trial ``fes
sim``. Options: ``--patient``, ``--duration-s``,
``--loop-duration-s``, ``--repeats``; ``--nrt`` also times the patient alone (1.) with
numba's runtime on (``controller.bench.runtime``): what compiling its kernels without
the runtime saves per sample (docs/simulator.md, "Decisions and limits of the model").
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from controller import resources, sharedmem
from controller.bench.runtime import with_runtime
from controller.config import load_config
from controller.ports import StimCommand
from controller.trial import simulated
from controller.trial.simulated import run_simulated_trial
from controller.trial.writer import wait_for_ended_writers
from sim.limb import SimulatedLimb
from sim.openloop import Stimulation, stride_commands
from sim.patient import PatientProfile, load_patient

RATE_HZ = 1000.0


class Spent(NamedTuple):
    """The least time ``repeats`` runs took: CPU (this process's and its children's, the
    log writers), wall, and the CPU of this process and of the children alone."""

    cpu: float
    wall: float
    own: float
    children: float


def _cpu_s() -> tuple[float, float]:
    """CPU time of this process, and of its children (the log writers, each waited for
    until its process has ended: a trial returns once its writer has closed the files)."""
    wait_for_ended_writers()
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _best_s(
    work: Callable[[], object], repeats: int, after: Callable[[], object] = lambda: None
) -> Spent:
    """Shortest times of ``repeats`` calls of ``work``, each followed by ``after`` (not
    timed)."""
    best = Spent(*[float("inf")] * 4)
    for _ in range(repeats):
        (own_0, children_0), start_wall = _cpu_s(), time.perf_counter()
        work()
        wall = time.perf_counter() - start_wall
        own_1, children_1 = _cpu_s()
        own, children = own_1 - own_0, children_1 - children_0
        best = Spent(*map(min, best, (own + children, wall, own, children)))
        after()
    return best


def _factors(simulated_s: float, spent: Spent) -> str:
    """``simulated_s`` over the CPU and the wall time spent, as x real time."""
    return (f"{simulated_s / spent.cpu:,.0f}x real time (CPU), "
            f"{simulated_s / spent.wall:,.0f}x (wall)")


def stimulated_walk(patient: str, duration_s: float) -> tuple[PatientProfile, np.ndarray]:
    """A profile and the commands of open-loop stimulation in every swing of its walk."""
    profile = load_patient(patient)
    schedule = SimulatedLimb(profile, RATE_HZ, duration_s, seed=1).schedule
    n = round(duration_s * RATE_HZ)
    return profile, stride_commands(schedule, RATE_HZ, n, Stimulation())


def patient_alone(profile: PatientProfile, commands: np.ndarray) -> None:
    """Build a limb and run it open loop over ``commands`` (one per 1 kHz sample)."""
    SimulatedLimb(profile, RATE_HZ, commands.shape[0] / RATE_HZ, seed=1).run(commands)


def _alone_child(patient: str, duration_s: float, repeats: int) -> float:
    """(In ``with_runtime``'s child.) The least CPU seconds of the patient alone."""
    profile, commands = stimulated_walk(patient, duration_s)
    patient_alone(profile, commands[:2000])  # compile before timing
    return _best_s(lambda: patient_alone(profile, commands), repeats).cpu


def patient_through_ports(patient: str, duration_s: float) -> None:
    """Step a limb sample by sample, switching stimulation as a scheduler would."""
    limb = SimulatedLimb(load_patient(patient), RATE_HZ, duration_s, seed=1)
    n = round(duration_s * RATE_HZ)
    commands = stride_commands(limb.schedule, RATE_HZ, n, Stimulation())
    held = -1.0
    for k in range(n):
        on = commands[k, 0]
        if on != held:
            limb.apply(k / RATE_HZ, [StimCommand(0, bool(on), *commands[k, 1:])])
            held = on
        limb.read()


def closed_loop(
    patient: str, duration_s: float, rate_hz: float, out: Path, compiled: bool = True,
    loop_cpu_s: list[float] | None = None,
) -> float:
    """One ``fes sim`` trial into the folder ``out`` (new, or one an earlier trial
    wrote: its files are replaced); returns the loop's own real-time factor. If given,
    ``loop_cpu_s`` gets the CPU time (this thread's, page faults included) that the
    compiled loop took, as ``fes sim`` runs it."""
    config = load_config(overrides={
        "sim": {"patient": patient, "seed": 1},
        "loop": {"duration_s": duration_s, "sample_rate_hz": rate_hz},
    })
    with _cpu_of_compiled_loop(loop_cpu_s if loop_cpu_s is not None else []):
        summary = run_simulated_trial(config, out, compiled=compiled, overwrite=True)
    return float(summary["real_time_factor"])


@contextlib.contextmanager
def _cpu_of_compiled_loop(spent: list[float]) -> Iterator[None]:
    """Append to ``spent`` the thread CPU time of every compiled loop run inside."""
    original = simulated.run_compiled_loop

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.thread_time() - start)

    simulated.run_compiled_loop = timed
    try:
        yield
    finally:
        simulated.run_compiled_loop = original


def _closed_loop_line(
    patient: str, duration_s: float, rate_hz: float, out: Path, compiled: bool, repeats: int,
    label: str,
) -> str:
    """The figures of ``repeats`` closed-loop trials (the best of them), and of the first
    alone, on fresh shared memory and TOML files parsed anew, as in a one-trial ``fes
    sim`` (later trials of a process reuse both: ``controller.sharedmem.shared_empty``,
    ``controller.resources.load_toml``)."""
    factors: list[float] = []
    loop_cpu: list[float] = []
    walls: list[float] = []

    def trial() -> None:
        start = time.perf_counter()
        factors.append(closed_loop(patient, duration_s, rate_hz, out, compiled, loop_cpu))
        walls.append(time.perf_counter() - start)

    sharedmem.forget_reusable()
    resources.forget_parsed()
    # Each trial into a new folder, as ``fes sim`` writes by default (it refuses a
    # folder that holds files): removing an earlier trial's files is not part of a trial.
    first = _best_s(trial, 1, lambda: shutil.rmtree(out))
    whole = _best_s(trial, repeats - 1, lambda: shutil.rmtree(out)) if repeats > 1 else first
    whole = Spent(*map(min, whole, first))
    alone_cpu = f"{duration_s / min(loop_cpu):,.0f}x (CPU), " if loop_cpu else ""
    return (f"closed loop, {label}, at {rate_hz:g} Hz, {duration_s:g} s: the loop alone "
            f"(summary.json) {alone_cpu}{max(factors):,.0f}x (wall); end to end (config, "
            f"loop, scoring, files) {_factors(duration_s, whole)}; CPU a trial: its own "
            f"process {whole.own * 1e3:.1f} ms, the log writer {whole.children * 1e3:.1f} ms; "
            f"wall a trial: least {min(walls) * 1e3:.1f} ms, median "
            f"{statistics.median(walls) * 1e3:.1f} ms; the first trial (fresh memory and "
            f"TOML) {_factors(duration_s, first)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.simulator", description=__doc__
    )
    parser.add_argument("--patient", default="severe", help="patient profile (default severe)")
    parser.add_argument("--duration-s", type=float, default=600.0,
                        help="simulated time of the patient-alone runs (default 600)")
    parser.add_argument("--loop-duration-s", type=float, default=60.0,
                        help="simulated time of the closed-loop runs (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--nrt", action="store_true",
                        help="also time the patient alone with numba's runtime on (a child "
                        "process compiles it again)")
    args = parser.parse_args(argv)
    patient, duration, loop_duration = args.patient, args.duration_s, args.loop_duration_s

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trial"
        profile, commands = stimulated_walk(patient, duration)
        patient_alone(profile, commands[:2000])  # compile (or load the cache) before timing

        alone = _best_s(lambda: patient_alone(profile, commands), args.repeats)
        print(f"patient alone, batch run at 1 kHz ({patient}, {duration:g} s stimulated "
              f"walk): {_factors(duration, alone)}")
        if args.nrt:
            on = with_runtime("controller.bench.simulator", "_alone_child", patient,
                              duration, args.repeats)
            per_sample = [cpu / duration * 1e9 / RATE_HZ for cpu in (alone.cpu, on)]
            print(f"  with numba's runtime on: {duration / on:,.0f}x real time (CPU), "
                  f"{per_sample[1]:.0f} ns a sample against {per_sample[0]:.0f} ns: the "
                  f"runtime's share {1 - per_sample[0] / per_sample[1]:.0%}")
        ports_s = min(loop_duration, duration)
        ports = _best_s(lambda: patient_through_ports(patient, ports_s), args.repeats)
        print(f"patient alone, read/apply per sample at 1 kHz: {_factors(ports_s, ports)}")
        for compiled, label in ((True, "compiled"), (False, "Python run_loop")):
            closed_loop(patient, 2.0, RATE_HZ, out, compiled)  # compile before timing
            for rate in (RATE_HZ, 500.0):
                print(_closed_loop_line(patient, loop_duration, rate, out, compiled,
                                        args.repeats, label))

        profiler = cProfile.Profile()
        profiler.enable()
        closed_loop(patient, loop_duration, RATE_HZ, out)
        profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\nwhere an end-to-end compiled trial spends its time (cProfile, 1 kHz, "
          "sorted by own time):")
    print("\n".join(lines[start:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
