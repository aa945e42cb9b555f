"""Benchmark of the stimulation scheduler: cost per sample at 1 kHz, through the loop's
object and from a compiled loop.

    python -m controller.bench.scheduler [--seconds S] [--repeat N]

The input is what the shank gyro detector reports for the simulated ``moderate`` patient
walking at 1 kHz (seed 0): its phase at every sample and its events. For each
stimulation setup it prints the cost per sample of

* ``StimScheduler.step`` (Python call, outbox filling and command objects included),
  which is what the control loop pays today;
* ``schedule_step`` called from a compiled loop (``replay``) on the same arrays, which
  is what a compiled closed loop pays: the budget of a 1000x real-time simulation at
  1 kHz is 1 us per sample for limb, detector, scheduler and watchdog together.

Both run the same kernel; the benchmark checks that they end with the same state.
Timings are the best of ``--repeat`` runs (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Sequence

import numpy as np

from controller.bench.detector import walk
from controller.detect import outbox
from controller.detect.config import DetectorConfig
from controller.detect.detector import detect_batch
from controller.events import DetectedEvent, Event, Phase
from controller.kernels import kernel
from controller.stim.schedule import schedule_step
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import ChannelConfig, StimConfig

RATE_HZ = 1000.0
SETUPS = {
    "peroneal, pre-swing": StimConfig(),
    "peroneal + calf, predicted toe off": StimConfig(
        peroneal=ChannelConfig(trigger="predicted_toe_off"),
        channels={"calf": ChannelConfig(
            channel=1, trigger="predicted_toe_off", stop="predicted_toe_off", lead_ms=250.0,
            extension_ms=0.0,
        )},
    ),
    "training": StimConfig(mode="training"),
}

#: The detector's output at every sample: time, phase, and the events as outboxes.
DetectorOutput = tuple[np.ndarray, np.ndarray, np.ndarray]


@kernel
def replay(
    mode: int,
    params: np.ndarray,
    state: np.ndarray,
    t_s: np.ndarray,
    phases: np.ndarray,
    outboxes: np.ndarray,
    commands: np.ndarray,
) -> float:
    """``schedule_step`` at every sample, as a compiled loop calls it; returns the sum of
    the commanded amplitudes (so that the work cannot be optimised away)."""
    total = 0.0
    for i in range(t_s.size):
        schedule_step(mode, params, state, t_s[i], phases[i], outboxes[i], commands)
        total += commands[0, 2]
    return total


def outboxes_of(t_s: np.ndarray, events: Sequence[DetectedEvent]) -> np.ndarray:
    """One outbox per sample holding the events that became known at it."""
    index = {float(t): i for i, t in enumerate(t_s)}
    boxes = np.zeros((t_s.size, outbox.SIZE))
    for event in events:
        outbox.push(boxes[index[event.t_known_s]], int(event.event), event.t_est_s)
    return boxes


def detector_output(seconds: float) -> DetectorOutput:
    """Time, phase and outboxes of the shank gyro detector on the simulated walk."""
    t, gyro, _, _ = walk(seconds)
    phases, events = detect_batch(DetectorConfig().setup(), t, gyro)
    return t, phases.astype(np.int64), outboxes_of(t, events)


def _replay(scheduler: StimScheduler, output: DetectorOutput) -> None:
    params, state, commands = scheduler.kernel_arrays
    replay(scheduler.mode, params, state, *output, commands)


def measure(config: StimConfig, output: DetectorOutput, repeat: int) -> dict[str, float]:
    """Per-sample cost of ``StimScheduler.step`` and of compiled ``schedule_step``, in
    seconds, and whether both paths end in the same state (1.0) or not (0.0)."""
    t, phases, boxes = output
    per_sample = [
        (float(ti), Phase(int(p)), [
            DetectedEvent(Event(int(box[1 + 2 * k])), float(ti), float(box[2 + 2 * k]))
            for k in range(int(box[0]))
        ])
        for ti, p, box in zip(t, phases, boxes, strict=True)
    ]
    finished: dict[str, StimScheduler] = {}

    def through_step() -> None:
        scheduler = StimScheduler(config)
        for ti, phase, events in per_sample:
            scheduler.step(ti, phase, events)
        finished["step"] = scheduler

    def compiled_loop() -> None:
        scheduler = StimScheduler(config)
        _replay(scheduler, output)
        finished["kernel"] = scheduler

    StimScheduler(config).warm_up()
    _replay(StimScheduler(config), (t[:10], phases[:10], boxes[:10]))
    step_s = min(timeit.repeat(through_step, number=1, repeat=repeat)) / t.size
    kernel_s = min(timeit.repeat(compiled_loop, number=1, repeat=repeat)) / t.size
    same = np.array_equal(
        finished["step"].kernel_arrays[1], finished["kernel"].kernel_arrays[1], equal_nan=True
    )
    return {"step_s": step_s, "kernel_s": kernel_s, "same": float(same)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.scheduler",
        description="Per-sample cost of the stimulation scheduler at 1 kHz, through "
        "StimScheduler.step and from a compiled loop.",
    )
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S",
                        help="simulated walk replayed (default 60)")
    parser.add_argument("--repeat", type=int, default=5, metavar="N",
                        help="timing runs; the best counts (default 5)")
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and args.repeat >= 1):
        parser.error("--seconds must be positive, --repeat at least 1")
    output = detector_output(args.seconds)
    print(f"shank gyro detector on the simulated walk (moderate, seed 0) at {RATE_HZ:g} Hz, "
          f"{args.seconds:g} s; best of {args.repeat}")
    print("| setup | StimScheduler.step us/sample | schedule_step in a compiled loop "
          "ns/sample | same state |")
    print("|---|---|---|---|")
    for name, config in SETUPS.items():
        row = measure(config, output, args.repeat)
        print(f"| {name} | {row['step_s'] * 1e6:.2f} | {row['kernel_s'] * 1e9:.0f} | "
              f"{'yes' if row['same'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
