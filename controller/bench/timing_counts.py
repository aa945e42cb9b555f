"""What a live trial's lateness and latency counts cost over hours: memory, disk, end.

    python -m controller.bench.timing_counts [--hours 0.1,1,24] [--rate-hz 1000] [--dir .]

The log writer of a windowed live trial (``fes run``, ``fes sim --realtime``) counts
every sample's lateness and latency in whole nanoseconds for the summary's exact
median and percentiles (``controller.quantiles.SpilledCounts``, two of them in
``controller.trial.window.StreamedScores``): counts per bucket in memory, the values in
a spill file in the trial's folder, read back at the end. This feeds the writer's two
counts the values of a noisy machine (a gamma of some 60 us and a heavy tail, every
value drawn anew: nearly every one a new nanosecond value once the trial is long), 50 ms
at a time as a paced writer hands them over, and prints after each duration of trial
the bytes Python has allocated (tracemalloc: not resident pages, so the machine's load
does not move it), the bytes of the spill files, and the wall and CPU time finding the
summary's figures takes at that point (what the writer does when the trial ends). One
process, no trial: a day at 1 kHz in some tens of seconds.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Rows handed over at a time: a paced loop's writer looks every 50 ms.
BLOCK_S = 0.05


def _block(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lateness and latency of ``n`` samples in ns: mostly tens of us, one in a
    thousand a stall of up to tens of ms."""
    lateness = np.rint(rng.gamma(2.0, 3e4, n)).astype(np.int64)
    latency = np.rint(rng.gamma(3.0, 2e4, n)).astype(np.int64)
    stalls = rng.random(n) < 1e-3
    lateness[stalls] += np.rint(rng.pareto(1.5, int(stalls.sum())) * 1e6).astype(np.int64)
    return lateness, latency


def measured(hours: Sequence[float], rate_hz: float, folder: Path) -> list[dict[str, float]]:
    """After each of ``hours`` (ascending) of samples at ``rate_hz``: bytes traced, bytes
    spilled, the seconds (wall and CPU) the figures took, and the figures."""
    from controller.deadlines import counted_us
    from controller.quantiles import SpilledCounts

    rng = np.random.default_rng(0)
    block = max(1, round(BLOCK_S * rate_hz))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        counts = (SpilledCounts(folder), SpilledCounts(folder))  # as the log writer's
        done, rows = 0, []
        for h in hours:
            while done < h * 3600.0 * rate_hz:
                for each, values in zip(counts, _block(rng, block), strict=True):
                    each.add(values)
                done += block
            held = tracemalloc.get_traced_memory()[0] - before
            wall, cpu = time.perf_counter(), time.process_time()
            figures = [counted_us(each) for each in counts]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append({"hours": h, "samples": done, "traced_bytes": held,
                         "spilled_bytes": 8 * sum(each.size for each in counts),
                         "figures_wall_s": wall, "figures_cpu_s": cpu,
                         "lateness_p99_us": figures[0]["p99"] or 0.0,
                         "latency_median_us": figures[1]["median"] or 0.0})
        for each in counts:
            each.close()
    finally:
        tracemalloc.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.timing_counts",
        description="Memory, disk and end-of-trial time of a live trial's lateness and "
                    "latency counts over hours of samples.")
    parser.add_argument("--hours", default="0.1,1,24",
                        help="trial lengths, ascending, comma-separated (default 0.1,1,24)")
    parser.add_argument("--rate-hz", type=float, default=1000.0,
                        help="sample rate, Hz (default 1000)")
    parser.add_argument("--dir", type=Path, default=Path("."),
                        help="folder of the spill files, as a trial's folder (default .)")
    args = parser.parse_args(argv)
    try:
        hours = [float(h) for h in args.hours.split(",")]
    except ValueError:
        parser.error(f"--hours: comma-separated numbers, got {args.hours!r}")
    if not hours or any(h <= 0.0 for h in hours) or hours != sorted(hours):
        parser.error(f"--hours: positive and ascending, got {args.hours!r}")
    if not 1.0 <= args.rate_hz <= 10000.0:
        parser.error(f"--rate-hz: 1-10000 Hz, got {args.rate_hz:g}")
    if not args.dir.is_dir():
        parser.error(f"--dir: not a folder: {args.dir}")
    print(f"lateness and latency counts at {args.rate_hz:g} Hz, spilled into {args.dir}")
    for row in measured(hours, args.rate_hz, args.dir):
        print(f"{row['hours']:7g} h  {row['samples']:>11,.0f} samples  traced "
              f"{row['traced_bytes'] / 1e6:6.3f} MB  spilled {row['spilled_bytes'] / 1e6:9.1f} MB"
              f"  figures in {row['figures_wall_s']:6.2f} s wall, {row['figures_cpu_s']:6.2f} s"
              f" cpu  (lateness p99 {row['lateness_p99_us']:.3f} us, latency median "
              f"{row['latency_median_us']:.3f} us)")


if __name__ == "__main__":
    main()
