"""The control loop: one fixed sample period, sensor to output, for any back end.

Per sample: wait for the deadline (the clock decides whether that is virtual or real),
read the sensors, detect the gait phase, tell the watchdog how the sensors and the
detector are doing, schedule stimulation, pass the commands through the watchdog (the
only path to the stimulator) and record what happened. The loop knows the interfaces of
``controller.ports`` only, never which back end is behind them.

On any clock but the virtual one the watchdog's wall-clock monitor runs for the whole
loop, so a loop that hangs still turns the output off; a virtual-clock simulation has no
such thread and stays deterministic. SIGUSR1 and SIGTERM are e-stops while the loop runs
(``controller.safety.estop``). Whatever ends the loop (the requested duration, the
source running out, Ctrl-C, SIGTERM, an exception), the watchdog turns every output off
before ``run_loop`` returns or raises.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from controller.clock import Clock, VirtualClock
from controller.detect.events import DetectedEvent, Event, Phase
from controller.ports import Sample, SensorSource, StimCommand
from controller.safety.estop import estop_signals
from controller.trial.recorder import TrialRecorder
from controller.watchdog import Watchdog


class PhaseDetector(Protocol):
    """A causal gait detector: one sample in, the phase and any events it confirms out."""

    def process(self, sample: Sample) -> tuple[Phase, list[DetectedEvent]]: ...


class Scheduler(Protocol):
    """Turns phase and events into the commands it would like delivered."""

    def step(self, t_s: float, phase: Phase, events: tuple[Event, ...]) -> list[StimCommand]: ...


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """How the loop ended: samples processed, wall time taken and why it stopped."""

    samples: int
    wall_s: float
    stopped_by: str  # "duration", "source_ended" or "interrupted"


def run_loop(
    source: SensorSource,
    detector: PhaseDetector,
    scheduler: Scheduler,
    watchdog: Watchdog,
    clock: Clock,
    recorder: TrialRecorder,
    max_samples: int,
) -> LoopOutcome:
    """Run until ``max_samples`` samples, the end of the source, or Ctrl-C."""
    period_s = source.sample_period_s
    stopped_by = "duration"
    samples = 0
    wall_start = time.perf_counter()
    with ExitStack() as guards:
        if not isinstance(clock, VirtualClock):
            guards.enter_context(watchdog.monitoring())
        guards.enter_context(estop_signals(watchdog))
        clock.start()
        try:
            for k in range(max_samples):
                clock.wait_until(k * period_s)
                sample = source.read()
                if sample is None:
                    stopped_by = "source_ended"
                    break
                phase, detected = detector.process(sample)
                watchdog.observe(sample, phase_known=phase != Phase.UNKNOWN)
                events = tuple(e.event for e in detected)
                delivered = watchdog.submit(sample.t_s, scheduler.step(sample.t_s, phase, events))
                recorder.record(sample, phase, delivered, detected)
                samples += 1
        except KeyboardInterrupt:
            stopped_by = "interrupted"
        finally:
            watchdog.stop_all()
    return LoopOutcome(samples, time.perf_counter() - wall_start, stopped_by)
