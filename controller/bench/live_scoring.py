"""What a live trial's scoring holds as the trial goes on: the growth per hour.

    python -m controller.bench.live_scoring [--minutes 5,20] [--rate-hz 1000]

A windowed live trial (``fes run``, ``fes sim --realtime``) is scored by its log writer
process as the rows pass (``controller.trial.scores.StreamedColumns``); against a real
board there is no truth, so nothing per stride is known ahead and what it holds should
not grow at all. This feeds it the rows a paced writer hands it (50 ms at a time) of a
walk's peroneal stimulation (trains of 0.5 s every 1.1 s at 40 Hz, 35 mA, 300 us) and
prints the memory Python has allocated (tracemalloc: bytes, not resident pages, so the
machine's load does not move it) after each duration of trial, and the growth per hour
between the first and the last. It runs in one process, in a few seconds a simulated
minute.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Sequence

import numpy as np

#: Rows handed over at a time: a paced loop's writer looks every 50 ms.
BLOCK_S = 0.05
#: The walk's trains: one of ``TRAIN_S`` every ``STRIDE_S``.
STRIDE_S, TRAIN_S = 1.1, 0.5


def _rows(first: int, n: int, period_s: float) -> dict[str, np.ndarray]:
    t_s = (first + np.arange(n)) * period_s
    on = ((t_s % STRIDE_S) < TRAIN_S).astype(np.float64)
    return {"time_s": t_s, "stim_on": on, "amplitude_ma": 35.0 * on,
            "pulse_width_us": 300.0 * on, "frequency_hz": 40.0 * on,
            "gyro_rad_s": np.zeros(n), "heel_switch": np.zeros(n)}


def traced_after(minutes: Sequence[float], rate_hz: float) -> list[int]:
    """Bytes traced after each of ``minutes`` (ascending) of rows at ``rate_hz``."""
    from controller.config import load_config
    from controller.trial.session import streamed_columns

    period_s = 1.0 / rate_hz
    block = max(1, round(BLOCK_S * rate_hz))
    # As a live trial builds it: no true events, no truth columns.
    scores = streamed_columns(load_config(None), period_s, (), ())
    scores.add(_rows(0, block, period_s))  # the pulse kernel loaded before tracing
    tracemalloc.start()
    try:
        done, figures = block, []
        for minute in minutes:
            while done < minute * 60.0 * rate_hz:
                scores.add(_rows(done, block, period_s))
                done += block
            figures.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.live_scoring",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", default="5,20",
                        help="trial lengths in minutes, ascending (default 5,20)")
    parser.add_argument("--rate-hz", type=float, default=1000.0)
    args = parser.parse_args(argv)
    try:
        minutes = sorted(float(m) for m in args.minutes.split(","))
    except ValueError:
        parser.error(f"--minutes: numbers separated by commas, not {args.minutes!r}")
    if len(minutes) < 2 or minutes[0] <= 0.0 or not 0.0 < args.rate_hz <= 10_000.0:
        parser.error("--minutes: two lengths above 0 at least; --rate-hz: above 0, "
                     "at most 10000")
    figures = traced_after(minutes, args.rate_hz)
    for minute, traced in zip(minutes, figures, strict=True):
        print(f"{minute:8g} min  traced {traced / 1e6:8.3f} MB")
    hours = (minutes[-1] - minutes[0]) / 60.0
    print(f"growth: {(figures[-1] - figures[0]) / 1e6 / hours:.3f} MB per hour of trial")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
