"""The control loop: one fixed sample period, sensor to output, for any back end.

Per sample: wait for the deadline (the clock decides whether that is virtual or real),
read the sensors, detect the gait phase, tell the watchdog how the sensors and the
detector are doing, schedule stimulation, pass the commands through the watchdog (the
only path to the stimulator) and record what happened. The loop knows the interfaces of
``controller.ports`` only, never which back end is behind them.

Timing (``controller.deadlines``): the loop reports when each sample started and when
its commands were out. Commands that would reach the stimulator later than
``loop.max_overrun_ms`` after their sample's deadline fault the watchdog first, so they
go out as "off"; periods missed entirely are skipped, never served in a burst. Before
the first sample, every stage's numba kernels are warmed up
(``controller.hotpath.warm_up``, timed and reported), and automatic garbage collection
is paused for the loop. Nothing in the loop allocates a growing buffer, logs or takes a
lock: the recorder and the deadline monitor write into preallocated shared arrays,
which ``controller.trial.writer`` streams to log sinks from its own process.

On any clock but the virtual one the watchdog's wall-clock monitor runs for the whole
loop, so a loop that hangs still turns the output off; a virtual-clock simulation has no
such thread and stays deterministic. SIGUSR1 and SIGTERM are e-stops while the loop runs
(``controller.safety.estop``). Whatever ends the loop (the requested duration, the
source running out, Ctrl-C, SIGTERM, an exception), the watchdog turns every output off
before ``run_loop`` returns or raises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from controller.clock import Clock, VirtualClock
from controller.deadlines import DeadlineMonitor
from controller.events import DetectedEvent, Phase
from controller.hotpath import gc_paused, warm_up
from controller.interrupts import raise_if_interrupted
from controller.ports import Sample, SensorSource, StimCommand
from controller.safety import Watchdog
from controller.safety.estop import estop_signals


class PhaseDetector(Protocol):
    """A causal gait detector: one sample in, the phase and any events it confirms out."""

    def process(self, sample: Sample) -> tuple[Phase, list[DetectedEvent]]: ...


class Scheduler(Protocol):
    """Turns phase and events into the commands it would like delivered.

    ``events`` are the detector's events that became known at ``t_s``, with their
    estimated times (a scheduler predicting the next toe off needs them).
    """

    def step(
        self, t_s: float, phase: Phase, events: Sequence[DetectedEvent]
    ) -> list[StimCommand]: ...


class Recorder(Protocol):
    """Keeps what happened at each sample: what was read, the phase, what the watchdog
    delivered and the events detected (``controller.trial.recorder.TrialRecorder``
    writes it into shared memory for the log writer). It must not block or allocate a
    growing buffer: it runs inside the sample period."""

    def record(
        self,
        sample: Sample,
        phase: Phase,
        delivered: Sequence[StimCommand],
        detected: Sequence[DetectedEvent],
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """How the loop ended: samples processed, wall time taken and why it stopped.

    ``wall_s`` covers the loop only; ``warm_up_s`` is the JIT warm-up before it.
    """

    samples: int
    wall_s: float
    stopped_by: str  # "duration", "source_ended" or "interrupted"
    warm_up_s: float = 0.0


def run_loop(
    source: SensorSource,
    detector: PhaseDetector,
    scheduler: Scheduler,
    watchdog: Watchdog,
    clock: Clock,
    recorder: Recorder,
    max_samples: int,
    deadlines: DeadlineMonitor | None = None,
) -> LoopOutcome:
    """Run until ``max_samples`` samples, the end of the source, or Ctrl-C.

    ``deadlines`` receives the timing of every sample (by default a monitor without an
    overrun bound is made and discarded).
    """
    period_s = source.sample_period_s
    if deadlines is None:
        deadlines = DeadlineMonitor(max_samples, period_s)
    stopped_by = "duration"
    samples = 0
    warm_up_s = warm_up(source, detector, scheduler, watchdog)
    wall_start = time.perf_counter()
    try:
        with gc_paused(), ExitStack() as guards:
            if not isinstance(clock, VirtualClock):
                guards.enter_context(watchdog.monitoring())
            guards.enter_context(estop_signals(watchdog))
            # Last before the first sample: a board-paced clock starts the board's stream
            # here, and the board's timers with it (controller.trial.live).
            clock.start()
            wall_start = time.perf_counter()
            for _ in range(max_samples):
                raise_if_interrupted()  # a Ctrl-C Python swallowed in a callback ends it too
                deadlines.woke(clock.wait_until(deadlines.due_s))
                sample = source.read()
                if sample is None:
                    stopped_by = "source_ended"
                    break
                phase, detected = detector.process(sample)
                watchdog.observe(sample, phase_known=phase != Phase.UNKNOWN)
                commands = scheduler.step(sample.t_s, phase, detected)
                late_s = deadlines.stale(clock.now())
                if late_s is not None:
                    watchdog.loop_overrun(sample.t_s, late_s)
                delivered = watchdog.submit(sample.t_s, commands)
                deadlines.delivered(clock.now())
                recorder.record(sample, phase, delivered, detected)
                samples += 1
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        watchdog.stop_all()
    return LoopOutcome(samples, time.perf_counter() - wall_start, stopped_by, warm_up_s)
