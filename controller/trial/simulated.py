"""A closed-loop trial against the simulated patient, from config to files on disk.

Wires the stages of the data flow (simulated limb -> gyro detector -> scheduler ->
watchdog -> simulated limb) under a virtual clock (as fast as possible) or, with
``realtime``, a wall clock that holds the sample period as a live loop would (with the
CPU and priority settings of ``[loop]``). Then it scores the trial against the limb's
exact ground truth and writes ``samples.csv``, ``events.csv`` and ``summary.json`` (plus
``config.json``, the full validated config, so that a trial can be repeated, and for a
real-time trial ``timing.csv``, the lateness and latency of every sample). The files
are written however the loop ended, also on Ctrl-C or an error, so nothing recorded is
lost. Log sinks (the live status line, for one) get every sample while the loop runs,
from the log writer process.

The limb is stepped once per sample served: a period the real-time loop misses is a
period the simulated patient does not live either, so a real-time trial records the same
samples as a virtual one (unless a stall beyond ``loop.max_overrun_ms`` made the watchdog
turn the outputs off) and its timing figures say how well the machine kept time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from controller.clock import Clock, VirtualClock, WallClock
from controller.config import TrialConfig
from controller.deadlines import DeadlineMonitor
from controller.detect.events import EVENT_NAMES
from controller.detect.gyro import GyroDetector
from controller.hotpath import realtime_section
from controller.loop import LoopOutcome, run_loop
from controller.stim.scheduler import StimScheduler
from controller.trial.files import write_events_csv, write_json, write_samples_csv
from controller.trial.recorder import TrialRecorder
from controller.trial.summary import TrialFacts, summarize
from controller.trial.writer import LogSink, LogWriter
from controller.watchdog import Watchdog
from sim.limb import SimulatedLimb
from sim.patient import load_patient

TRUTH_COLUMNS = ("ankle_angle_deg", "toe_clearance_mm", "ta_activation", "pulses")


@dataclass
class _Trial:
    """The pieces of one simulated trial, and what to write once its loop has ended."""

    config: TrialConfig
    out_dir: Path
    realtime: bool
    limb: SimulatedLimb
    watchdog: Watchdog
    scheduler: StimScheduler
    recorder: TrialRecorder
    deadlines: DeadlineMonitor
    settings: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, config: TrialConfig, out_dir: Path, realtime: bool) -> _Trial:
        loop = config.loop
        limb = SimulatedLimb(
            load_patient(config.sim.patient), loop.sample_rate_hz, loop.duration_s,
            config.sim.seed,
        )
        n_samples = round(loop.duration_s * loop.sample_rate_hz)
        return cls(
            config, out_dir, realtime, limb, Watchdog(limb, config.safety),
            StimScheduler(config.stim),
            TrialRecorder(n_samples, channel=config.stim.peroneal.channel),
            DeadlineMonitor(n_samples, limb.sample_period_s, loop.max_overrun_ms / 1000.0),
        )

    def run(self, sinks: Sequence[LogSink], notes: TextIO | None) -> LoopOutcome:
        """The loop, with the log writer and (real time) the OS settings around it."""
        loop = self.config.loop
        clock: Clock = WallClock(loop.spin_us * 1e-6) if self.realtime else VirtualClock()
        with contextlib.ExitStack() as stack:
            if sinks:  # forked first: the writer must not inherit the loop's settings
                stack.enter_context(LogWriter((self.recorder, self.deadlines), sinks))
            if self.realtime:
                self.settings += stack.enter_context(
                    realtime_section(loop.cpu_index, loop.realtime_priority)
                )
                if notes is not None:
                    notes.write(f"real-time settings: {'; '.join(self.settings)}\n")
            return run_loop(
                self.limb,
                GyroDetector(self.config.detector, loop.sample_rate_hz),
                self.scheduler,
                self.watchdog,
                clock,
                self.recorder,
                self.recorder.capacity,
                self.deadlines,
            )

    def write(self, outcome: LoopOutcome) -> dict[str, Any]:
        """Score the trial, write its files and return the summary."""
        limb, recorder, deadlines = self.limb, self.recorder, self.deadlines
        columns = recorder.columns()
        truth = limb.truth()
        columns |= {name: truth[name][: recorder.count] for name in TRUTH_COLUMNS}
        end_s = recorder.count * limb.sample_period_s
        true_events = [(t, e) for t, e in limb.true_events() if t < end_s]
        detected = recorder.detected
        write_samples_csv(self.out_dir / "samples.csv", columns)
        if self.realtime:
            write_samples_csv(self.out_dir / "timing.csv", deadlines.rows(0, deadlines.count))
        write_events_csv(
            self.out_dir / "events.csv",
            [(t, "true", e) for t, e in true_events]
            + [(d.t_est_s, "detected", EVENT_NAMES[d.event]) for d in detected],
        )
        timing = deadlines.figures("wall" if self.realtime else "virtual", outcome.warm_up_s)
        timing["settings"] = self.settings
        facts = TrialFacts(
            columns=columns,
            true_events=true_events,
            detected=detected,
            period_s=limb.sample_period_s,
            wall_s=outcome.wall_s,
            stopped_by=outcome.stopped_by,
            faults=self.watchdog.faults,
            clamped_commands=self.watchdog.clamped_commands,
            interventions=[asdict(i) for i in self.watchdog.interventions],
            stim_timeouts=self.scheduler.timeouts,
            timing=timing,
        )
        m = self.config.metrics
        summary = summarize(
            facts, m.event_tolerance_ms, m.onset_window_ms, m.clearance_trim_fraction
        )
        summary["config"] = {"patient": self.config.sim.patient, "seed": self.config.sim.seed}
        write_json(self.out_dir / "summary.json", summary)
        return summary


def run_simulated_trial(
    config: TrialConfig,
    out_dir: Path,
    realtime: bool = False,
    sinks: Sequence[LogSink] = (),
    notes: TextIO | None = None,
) -> dict[str, Any]:
    """Run one trial, write its files into ``out_dir`` and return the summary.

    ``sinks`` receive every sample in the log writer process while the loop runs; what
    the real-time settings did (or why the OS refused them) is written to ``notes``.
    """
    trial = _Trial.build(config, out_dir, realtime)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", config.model_dump())
    try:
        outcome = trial.run(sinks, notes)
    except BaseException:
        trial.write(LoopOutcome(trial.recorder.count, 0.0, "error"))
        raise
    return trial.write(outcome)
