"""Fault drills: how long from a fault to "output off", on real threads and the wall clock.

Each drill runs the real ``run_loop`` with a ``WallClock`` at 500 Hz (so the watchdog's
monitor thread runs, as in a live trial) against stand-in parts that stimulate steadily
(5 mA, 300 us, 40 Hz on channel 0) until one of them fails on purpose:

- ``hung_loop``: a detector call blocks and never returns;
- ``spinning_loop``: a detector call spins in Python code (holding the GIL between
  switches) and never returns;
- ``nan_sensor``: the gyroscope reads NaN from now on;
- ``blocked_sensor``: reading the sensor blocks;
- ``stalled_ack``: the stimulator stops acknowledging (its ``last_ack_monotonic_s``
  stops advancing) while commands still go out;
- ``blocked_apply``: a command to the stimulator blocks.

The latency is measured from the last moment the failing part worked (the hang's start,
the last good sample read, the last acknowledgement, the blocked call's start) to the
stimulator's ``stop_all``, both on ``time.monotonic``. ``tests/test_watchdog_faults.py``
runs each drill and asserts the 50 ms bound; this module repeats them and prints the
distribution::

    python -m controller.bench.fault_latency --runs 20

A drill *trips early* when the watchdog latches before the fault is injected: on a
loaded machine the operating system can keep the loop's thread from running for longer
than the 20 ms heartbeat timeout, which the watchdog rightly treats as a hung loop. Such
runs measure nothing about the injected fault; they are counted and reported apart.
"""

from __future__ import annotations

import argparse
import math
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from controller.clock import WallClock
from controller.events import DetectedEvent, Phase
from controller.loop import run_loop
from controller.ports import Sample, StimCommand
from controller.safety import Watchdog
from controller.safety.limits import SafetyLimits
from controller.trial.recorder import TrialRecorder

DRILLS = (
    "hung_loop",
    "spinning_loop",
    "nan_sensor",
    "blocked_sensor",
    "stalled_ack",
    "blocked_apply",
)
RATE_HZ = 500.0
BOUND_S = 0.050
STEADY = StimCommand(0, True, 5.0, 300.0, 40.0)


class _Fault:
    """The drill's shared state: when to fail, when the failing part last worked, and
    the events that end the drill."""

    def __init__(self, kind: str) -> None:
        if kind not in DRILLS:
            raise ValueError(f"unknown drill {kind!r}; choose from {', '.join(DRILLS)}")
        self.kind = kind
        self.armed = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.failed_at_s: float | None = None

    def fails(self, *kinds: str) -> bool:
        """True once armed, in a drill of one of ``kinds``."""
        return self.kind in kinds and self.armed.is_set()

    def stall(self) -> None:
        """Never return until the drill ends: block, or spin in Python code."""
        if self.kind == "spinning_loop":
            while not self.release.is_set():
                pass
        else:
            self.release.wait()


class _Source:
    def __init__(self, fault: _Fault) -> None:
        self._fault = fault
        self._k = 0
        self._last_good_s = time.monotonic()

    @property
    def sample_period_s(self) -> float:
        return 1.0 / RATE_HZ

    def read(self) -> Sample | None:
        fault = self._fault
        if fault.finished.is_set():
            return None
        t_s = self._k * self.sample_period_s
        self._k += 1
        if fault.fails("nan_sensor", "blocked_sensor"):
            if fault.failed_at_s is None:
                fault.failed_at_s = self._last_good_s
            if fault.kind == "blocked_sensor":
                fault.stall()
                return None
            return Sample(t_s, math.nan, 0)
        self._last_good_s = time.monotonic()
        return Sample(t_s, 1.0, 0)

    def close(self) -> None:
        """Nothing to release."""


class _Detector:
    def __init__(self, fault: _Fault) -> None:
        self._fault = fault

    def process(self, sample: Sample) -> tuple[Phase, list[DetectedEvent]]:
        fault = self._fault
        if fault.fails("hung_loop", "spinning_loop") and fault.failed_at_s is None:
            fault.failed_at_s = time.monotonic()
            fault.stall()
        return Phase.SWING, []


class _Scheduler:
    def step(
        self, t_s: float, phase: Phase, events: Sequence[DetectedEvent]
    ) -> list[StimCommand]:
        return [STEADY]


class _Stimulator:
    """One channel; acknowledges every command until a ``stalled_ack`` drill fails it."""

    channels = 1

    def __init__(self, fault: _Fault) -> None:
        self._fault = fault
        self._ack_s = time.monotonic()
        self.on = False
        self.off_at_s: float | None = None

    @property
    def last_ack_monotonic_s(self) -> float:
        return self._ack_s

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        fault = self._fault
        if fault.fails("blocked_apply") and fault.failed_at_s is None:
            fault.failed_at_s = time.monotonic()
            fault.stall()
        if fault.fails("stalled_ack"):
            if fault.failed_at_s is None:
                fault.failed_at_s = self._ack_s
        else:
            self._ack_s = time.monotonic()
        self.on = any(c.delivers for c in commands)

    def stop_all(self) -> None:
        if self._fault.failed_at_s is not None and self.off_at_s is None:
            self.off_at_s = time.monotonic()
        self.on = False


@dataclass(frozen=True, slots=True)
class DrillResult:
    """What one drill found: the rule that latched, whether the output was on when the
    fault was injected, the time from the fault to output off (inf: never off), and
    whether the watchdog had latched before the fault (then nothing was measured)."""

    drill: str
    rule: str | None
    was_on: bool
    latency_s: float
    early_trip: bool


def run_drill(
    kind: str, limits: SafetyLimits | None = None, warmup_s: float = 0.2, timeout_s: float = 2.0
) -> DrillResult:
    """Stimulate steadily for ``warmup_s``, inject the fault ``kind``, measure."""
    fault = _Fault(kind)
    source, stimulator = _Source(fault), _Stimulator(fault)
    watchdog = Watchdog(stimulator, limits or SafetyLimits())
    # The loop warms its stages up too, but inside the warm-up time measured here: a
    # first compile of the watchdog's kernels would outlast it.
    watchdog.warm_up()
    capacity = round((warmup_s + 2 * timeout_s) * RATE_HZ)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            run_loop(source, _Detector(fault), _Scheduler(), watchdog, WallClock(),
                     TrialRecorder(capacity), capacity)
        except BaseException as err:  # reported to the caller below
            errors.append(err)

    thread = threading.Thread(target=loop, name=f"drill-{kind}", daemon=True)
    thread.start()
    time.sleep(warmup_s)
    # On a loaded machine the loop may not have delivered yet: the fault must strike a
    # stimulating output, so wait for it (a latch meanwhile is an early trip).
    deadline = time.monotonic() + timeout_s
    while not (stimulator.on or watchdog.latched) and time.monotonic() < deadline:
        time.sleep(0.001)
    early_trip = watchdog.latched
    was_on = stimulator.on
    fault.armed.set()
    deadline = time.monotonic() + timeout_s
    while stimulator.off_at_s is None and time.monotonic() < deadline:
        time.sleep(0.001)
    fault.finished.set()
    fault.release.set()
    thread.join(timeout_s)
    if errors:
        raise errors[0]
    latency_s = math.inf
    if stimulator.off_at_s is not None and fault.failed_at_s is not None:
        latency_s = stimulator.off_at_s - fault.failed_at_s
    rule = watchdog.fault.rule if watchdog.fault is not None else None
    return DrillResult(kind, rule, was_on, latency_s, early_trip)


def run_valid_drill(kind: str, attempts: int = 5) -> DrillResult:
    """``run_drill`` again while it trips early, at most ``attempts`` times."""
    result = run_drill(kind)
    for _ in range(attempts - 1):
        if not result.early_trip:
            break
        result = run_drill(kind)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run every drill ``--runs`` times and print latency figures per drill."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.fault_latency",
        description="Time from an injected fault to output off, per fault drill "
        "(real threads, wall clock, default safety limits).",
    )
    parser.add_argument("--runs", type=int, default=20, metavar="N",
                        help="repetitions of each drill (default 20)")
    args = parser.parse_args(argv)
    limits = SafetyLimits()
    print(f"fault -> output off, {args.runs} runs per drill; limits: heartbeat, sensor and "
          f"ack timeouts {limits.heartbeat_timeout_ms:g}/{limits.sensor_timeout_ms:g}/"
          f"{limits.ack_timeout_ms:g} ms; bound {BOUND_S * 1000:g} ms")
    print(f"{'drill':<15} {'rule':<42} {'median ms':>9} {'p95 ms':>7} {'max ms':>7} "
          f"{'within':>7} {'early trips':>11}")
    for kind in DRILLS:
        runs = [run_drill(kind, limits) for _ in range(args.runs)]
        results = [r for r in runs if not r.early_trip]
        early = len(runs) - len(results)
        if not results:
            print(f"{kind:<15} every run tripped early ({early})")
            continue
        ms = sorted(r.latency_s * 1000.0 for r in results)
        rules = sorted({str(r.rule) for r in results})
        p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
        within = sum(r.latency_s <= BOUND_S and r.was_on for r in results)
        print(f"{kind:<15} {'/'.join(rules):<42} {statistics.median(ms):>9.1f} {p95:>7.1f} "
              f"{ms[-1]:>7.1f} {within:>4}/{len(results)} {early:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
