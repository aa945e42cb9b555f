"""``python -m controller.bench.watchdog``: what the safety watchdog costs per sample.

Two figures for a 1 kHz walk-like stream (one channel on for 400 ms of every second,
ramped up within the rise limit, then held; phase known, sensor valid), so nothing
latches and a third of the commands change the output:

- the ``Watchdog`` shell, ``observe`` + ``submit`` from Python with command objects (the
  path of ``controller.loop.run_loop``);
- the kernels ``watchdog_observe`` + ``watchdog_submit`` called from a compiled loop on
  the shell's own arrays (the path of a compiled simulated trial), where the whole
  closed loop has about 1 us per sample for 1000x real time.

Exit codes: 0 the benchmark ran, 2 bad usage.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from controller.kernels import Floats, kernel
from controller.ports import (
    COMMAND_ROW_SIZE,
    ROW_AMPLITUDE_MA,
    ROW_ON,
    Sample,
    StimCommand,
    write_row,
)
from controller.safety import SafetyLimits, Watchdog
from controller.safety.decide import watchdog_observe, watchdog_submit

PERIOD_S = 0.001
LEVEL_MA = 20.0
RAMP_MA_PER_SAMPLE = 0.5
STRIDE_SAMPLES, ON_SAMPLES = 1000, 400


class _NullStimulator:
    channels = 2

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Nothing to drive."""

    def stop_all(self) -> None:
        """Nothing to stop."""


@kernel
def stride_amplitude_ma(k: int) -> float:
    """The amplitude the stream asks for at sample ``k`` (0: off)."""
    phase = k % STRIDE_SAMPLES
    return min(LEVEL_MA, RAMP_MA_PER_SAMPLE * (phase + 1)) if phase < ON_SAMPLES else 0.0


@kernel
def closed_loop(
    limits: Floats, state: Floats, log: Floats, rows: Floats, out: Floats, first: int,
    samples: int, period_s: float,
) -> int:
    """Samples ``first`` .. ``first + samples - 1`` of the stream through the watchdog's
    kernels, as a compiled trial calls them; the number of submits that stopped all."""
    stops = 0
    for k in range(first, first + samples):
        t = k * period_s
        stops += watchdog_observe(limits, state, log, t, 0.5, 1.0, True)
        amplitude = stride_amplitude_ma(k)
        rows[0, ROW_ON] = 1.0 if amplitude > 0.0 else 0.0
        rows[0, ROW_AMPLITUDE_MA] = amplitude
        stops += watchdog_submit(limits, state, log, t, rows, out)
    return stops


def shell_us_per_sample(samples: int) -> float:
    """Microseconds per sample of ``Watchdog.observe`` + ``Watchdog.submit``."""
    dog = Watchdog(_NullStimulator(), SafetyLimits())
    dog.warm_up()
    commands = []
    for k in range(samples):
        amplitude = stride_amplitude_ma(k)
        commands.append([StimCommand(0, amplitude > 0.0, amplitude, 300.0, 40.0)])
    start = time.perf_counter()
    for k in range(samples):
        t = k * PERIOD_S
        dog.observe(Sample(t, 0.5, 1), True)
        dog.submit(t, commands[k])
    elapsed = time.perf_counter() - start
    assert dog.faults == 0, dog.fault
    return elapsed / samples * 1e6


def kernel_us_per_sample(samples: int, chunk: int = 4096) -> float:
    """Microseconds per sample of the kernels in a compiled loop, ``drain_log`` between
    chunks of ``chunk`` samples as a compiled trial would."""
    dog = Watchdog(_NullStimulator(), SafetyLimits())
    rows = np.zeros((1, COMMAND_ROW_SIZE))
    write_row(StimCommand(0, True, 0.0, 300.0, 40.0), rows[0])
    out = np.zeros_like(rows)
    dog.reserve_log(2 * chunk)
    limits, state, log = dog.kernel_arrays
    closed_loop(limits, state.copy(), log.copy(), rows, out, 0, 1, PERIOD_S)  # compile
    start = time.perf_counter()
    for first in range(0, samples, chunk):
        closed_loop(limits, state, log, rows, out, first, min(chunk, samples - first), PERIOD_S)
        dog.drain_log()
    elapsed = time.perf_counter() - start
    assert dog.faults == 0, dog.fault
    return elapsed / samples * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Print both figures."""
    parser = argparse.ArgumentParser(prog="python -m controller.bench.watchdog",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--samples", type=int, default=100_000, metavar="N",
                        help="samples per figure (default 100000, 100 s at 1 kHz)")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    shell = shell_us_per_sample(min(args.samples, 100_000))
    compiled = kernel_us_per_sample(args.samples)
    print(f"watchdog per sample (observe + submit, 1 command, 1 kHz stream), "
          f"{args.samples} samples:")
    print(f"  Watchdog shell from Python:   {shell:8.3f} us")
    print(f"  kernels from a compiled loop: {compiled:8.3f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
