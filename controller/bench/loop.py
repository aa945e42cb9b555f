"""``python -m controller.bench``: how well the real-time loop keeps time on this machine.

Runs the closed loop on the wall clock at a fixed rate (default 60 s at 1 kHz) against a
back end and prints what a bench engineer needs to trust it: the share of periods missed,
the lateness of the samples served (percentiles and maximum), the sensor-to-command
latency, the JIT warm-up before the loop and the first sample's figures, plus the
machine's load, since other processes are the main source of lateness on an ordinary
Linux machine. ``--platform-s S`` adds a check of the machine itself: a bare thread
with the loop's CPU and priority settings spins for S seconds and reports every gap in
its run of ``perf_counter`` reads, time the CPU was taken from it by something below the
program (interrupts, other real-time work, the hypervisor of a virtual machine); a loop
cannot be more punctual than that. ``--profile`` instead runs the same trial's Python loop
(``controller.loop.run_loop``, the one a live trial runs) on the virtual clock under
cProfile and prints where the loop's time goes.

Back ends: ``sim``, the simulated patient (in process, closed loop). A back end is a
function from a trial config and an output folder to a finished trial's summary, so the
serial board emulator on a pty (``hw/``, a separate issue) plugs in as another entry of
``BACKENDS``.

Exit codes: 0 the benchmark ran (whatever the figures), 2 bad usage or configuration,
130 interrupted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_realtime_options,
    load_checked,
    realtime_overrides,
)
from controller.config import TrialConfig
from controller.hotpath import realtime_section
from controller.validation import ConfigError

#: The issue's targets at 1 kHz on the project's 2-core machine.
TARGET_MISS_RATE = 0.001
TARGET_P99_LATENESS_US = 200.0
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
#: The platform check spins in bursts with rests between them, which keeps a SCHED_FIFO
#: spinner under Linux's real-time throttling (95 % of each second by default).
SPIN_BURST_S = 0.5
SPIN_REST_S = 0.1
PLATFORM_GAP_S = 100e-6


def _sim_backend(config: TrialConfig, out_dir: Path, realtime: bool) -> dict[str, Any]:
    from controller.trial.simulated import run_simulated_trial

    # The Python loop of a live trial also off the wall clock (``--profile``), not the
    # compiled one ``fes sim`` runs: this benchmark is about the live loop.
    return run_simulated_trial(config, out_dir, realtime, compiled=False, overwrite=True)


Backend = Callable[[TrialConfig, Path, bool], dict[str, Any]]
BACKENDS: dict[str, tuple[Backend, str]] = {
    "sim": (_sim_backend, "the simulated patient"),
}


def _percentile_line(label: str, values_us: np.ndarray) -> str:
    if values_us.size == 0:
        return f"{label:<22} n/a"
    cells = "  ".join(
        f"p{p:g} {np.percentile(values_us, p):8.1f}" for p in PERCENTILES
    )
    return f"{label:<22} {cells}  max {values_us.max():8.1f}"


def _report(config: TrialConfig, backend: str, summary: dict[str, Any], out_dir: Path) -> str:
    timing = summary["timing"]
    data = np.genfromtxt(out_dir / "timing.csv", delimiter=",", names=True, ndmin=1)
    lateness = np.asarray(data["lateness_us"], dtype=float)
    latency = np.asarray(data["latency_us"], dtype=float)
    first = timing["first_sample"]
    late_p99 = float(np.percentile(lateness, 99)) if lateness.size else float("nan")
    owed = timing["samples"] + timing["misses"]
    miss_rate = timing["misses"] / owed if owed else 0.0
    miss_ok = "met" if miss_rate < TARGET_MISS_RATE else "MISSED"
    late_ok = "met" if late_p99 < TARGET_P99_LATENESS_US else "MISSED"
    return "\n".join(
        [
            f"backend: {BACKENDS[backend][1]}, {config.loop.duration_s:g} s at "
            f"{config.loop.sample_rate_hz:g} Hz on the wall clock (period "
            f"{timing['period_ms']:g} ms), stopped by {summary['stopped_by']}",
            f"settings: {'; '.join(timing['settings'])}; spin {config.loop.spin_us:g} us",
            f"warm-up before the loop: {timing['warm_up_ms']:.1f} ms",
            f"samples served: {timing['samples']}, periods missed: {timing['misses']} "
            f"({miss_rate * 100:.3f} %; target < {TARGET_MISS_RATE * 100:g} %: "
            f"{miss_ok}), overruns: {timing['overruns']}",
            _percentile_line("lateness (us)", lateness),
            f"{'':<22} target p99 < {TARGET_P99_LATENESS_US:g} us: {late_ok}",
            _percentile_line("sensor-to-command (us)", latency),
            f"first sample: lateness {first['lateness_us']} us, sensor-to-command "
            f"{first['latency_us']} us",
            f"watchdog faults: {summary['watchdog']['faults']}",
        ]
    )


def platform_gaps_us(spin_s: float) -> np.ndarray:
    """Gaps over ``PLATFORM_GAP_S`` between consecutive clock reads of a bare spin, in us."""
    gaps: list[float] = []
    clock = time.perf_counter
    spun = 0.0
    while spun < spin_s:
        start = last = clock()
        while last - start < min(SPIN_BURST_S, spin_s - spun):
            now = clock()
            if now - last > PLATFORM_GAP_S:
                gaps.append(now - last)
            last = now
        spun += last - start
        time.sleep(SPIN_REST_S)
    return np.array(gaps) * 1e6


def _platform_report(config: TrialConfig, spin_s: float) -> str:
    with realtime_section(config.loop.cpu_index, config.loop.realtime_priority) as notes:
        gaps = platform_gaps_us(spin_s)
    longest = f"{gaps.max():.0f} us" if gaps.size else "none"
    over_ms = int((gaps > 1000.0).sum())
    return (
        f"platform check ({'; '.join(notes)}): a bare spinning thread lost the CPU "
        f"{gaps.size} times for over {PLATFORM_GAP_S * 1e6:.0f} us in {spin_s:g} s "
        f"({over_ms} of them over 1 ms), longest {longest}"
    )


def _profile(backend: Backend, config: TrialConfig, out_dir: Path, top: int) -> str:
    """cProfile of a virtual-clock trial, after the same trial unprofiled as a baseline."""
    samples = config.loop.duration_s * config.loop.sample_rate_hz
    plain = backend(config, out_dir, False)
    profiler = cProfile.Profile()
    profiled = profiler.runcall(backend, config, out_dir, False)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(top)
    per_sample_us = [
        config.loop.duration_s / summary["real_time_factor"] / samples * 1e6
        for summary in (plain, profiled)
    ]
    return (
        f"loop time per sample on the virtual clock: {per_sample_us[0]:.1f} us "
        f"({per_sample_us[1]:.1f} us under the profiler)\n" + text.getvalue()
    )


def build_parser() -> argparse.ArgumentParser:
    """Options of ``python -m controller.bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench",
        description="Run the closed loop in real time and print miss rate, lateness "
        "percentiles and sensor-to-command latency.",
        epilog="Exit codes: 0 ran, 2 bad usage or configuration, 130 interrupted.",
    )
    parser.add_argument(
        "--backend", choices=sorted(BACKENDS), default="sim",
        help="what the loop drives (default sim, the simulated patient)",
    )
    parser.add_argument(
        "--duration-s", type=float, default=60.0, metavar="S",
        help="length of the run in seconds (default 60)",
    )
    parser.add_argument(
        "--rate-hz", type=float, default=1000.0, metavar="N",
        help="loop rate in Hz, 100-2000 (default 1000)",
    )
    add_realtime_options(parser)
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file overriding configs/default.toml"
    )
    parser.add_argument(
        "--platform-s", type=float, default=0.0, metavar="S",
        help="after the run, spin a bare thread with the same CPU and priority settings "
        "for S seconds and report the gaps the machine itself imposes (default 0: off)",
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="instead: run the trial on the virtual clock under cProfile and print the "
        "functions where the loop spends its time",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    loop = {"duration_s": args.duration_s, "sample_rate_hz": args.rate_hz}
    return {"loop": loop | realtime_overrides(args)}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m controller.bench``."""
    args = build_parser().parse_args(argv)
    try:
        config = load_checked(args.config, _overrides(args))
    except ConfigError as err:
        print(f"bench: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    backend = BACKENDS[args.backend][0]
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} (1 / 5 / 15 min) at the start"
    )
    with tempfile.TemporaryDirectory(prefix="fes-bench-") as tmp:
        out_dir = Path(tmp)
        if args.profile:
            print(_profile(backend, config, out_dir, top=25))
            return EXIT_OK
        summary = backend(config, out_dir, True)
        print(_report(config, args.backend, summary, out_dir))
    if args.platform_s > 0.0:
        print(_platform_report(config, args.platform_s))
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
