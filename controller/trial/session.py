"""One trial from wired stages to files on disk, whatever the back end.

Runs the loop, then writes ``samples.csv``, ``events.csv`` and ``summary.json`` (and
``config.json`` before the loop starts, so that a trial can be repeated). The files are
written however the loop ended, also on Ctrl-C or an error, so nothing recorded is lost.
The loop runs inside the log writer (when sinks are given: they get every sample from
a separate process while the loop runs) and, for a real-time trial, inside the OS
settings of ``[loop]`` (CPU pinning, real-time priority); a trial paced by a clock other
than the virtual one also writes ``timing.csv``, every sample's lateness and latency.
What differs between back ends is passed in as ``finish``: called once the loop has
ended, it shuts the back end down and returns the ground truth it has (the simulator's
exact truth, the board emulator's debug frames, or nothing for a real board) and the
back end's own entries of the summary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from controller.clock import Clock, VirtualClock
from controller.config import TrialConfig
from controller.deadlines import DeadlineMonitor
from controller.detect.events import EVENT_NAMES
from controller.loop import LoopOutcome, PhaseDetector, run_loop
from controller.ports import SensorSource
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.files import write_events_csv, write_json, write_samples_csv
from controller.trial.recorder import TrialRecorder
from controller.trial.summary import TrialFacts, summarize
from controller.trial.writer import LogSink, LogWriter


@dataclass(frozen=True, slots=True)
class TrialParts:
    """The wired stages of one trial."""

    config: TrialConfig
    source: SensorSource
    detector: PhaseDetector
    scheduler: StimScheduler
    watchdog: Watchdog
    clock: Clock
    recorder: TrialRecorder
    deadlines: DeadlineMonitor


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What really happened: per-sample columns aligned with the recorded rows (written
    after the recorded columns of ``samples.csv``) and the true gait events."""

    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    events: Sequence[tuple[float, str]] = ()


Finish = Callable[[LoopOutcome], tuple[GroundTruth, dict[str, Any]]]
#: Runs the wired stages for up to n samples (``run_parts`` unless a back end has a
#: faster loop of the same meaning, as the simulated limb on a virtual clock does).
LoopRunner = Callable[["TrialParts", int], LoopOutcome]


def run_parts(parts: TrialParts, n_samples: int) -> LoopOutcome:
    """``controller.loop.run_loop`` over the wired stages."""
    return run_loop(
        parts.source,
        parts.detector,
        parts.scheduler,
        parts.watchdog,
        parts.clock,
        parts.recorder,
        n_samples,
        parts.deadlines,
    )


def output_channels(config: TrialConfig) -> int:
    """How many stimulator outputs the trial's configured channels need."""
    return 1 + max(ch.channel for _, ch in config.stim.named_channels())


def recorded_channels(config: TrialConfig) -> dict[str, int]:
    """The enabled further channels (beside the peroneal one) to record, by name."""
    return {name: ch.channel for name, ch in config.stim.channels.items() if ch.enabled}


def new_deadlines(config: TrialConfig, n_samples: int) -> DeadlineMonitor:
    """The deadline accounting of a trial of ``n_samples`` with the ``[loop]`` bounds."""
    loop = config.loop
    return DeadlineMonitor(n_samples, 1.0 / loop.sample_rate_hz, loop.max_overrun_ms / 1000.0)


def run_trial(
    parts: TrialParts,
    n_samples: int,
    out_dir: Path,
    finish: Finish,
    sinks: Sequence[LogSink] = (),
    realtime: bool = False,
    notes: TextIO | None = None,
    loop: LoopRunner = run_parts,
) -> tuple[LoopOutcome, dict[str, Any]]:
    """Run the loop for up to ``n_samples``, write the files, return outcome and summary.

    ``loop`` runs the stages (``run_parts`` by default). ``realtime`` applies the
    ``[loop]`` CPU and priority settings around the loop; what they did (or why the OS
    refused them) is written to ``notes``.
    """
    from controller.hotpath import realtime_section

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", parts.config.model_dump())
    settings: list[str] = []
    os_settings = parts.config.loop
    try:
        with contextlib.ExitStack() as stack:
            if sinks:  # forked first: the writer must not inherit the loop's settings
                stack.enter_context(LogWriter((parts.recorder, parts.deadlines), sinks))
            if realtime:
                settings += stack.enter_context(
                    realtime_section(os_settings.cpu_index, os_settings.realtime_priority)
                )
                if notes is not None:
                    notes.write(f"real-time settings: {'; '.join(settings)}\n")
            outcome = loop(parts, n_samples)
    except BaseException:
        failed = LoopOutcome(parts.recorder.count, 0.0, "error")
        write_trial(parts, out_dir, failed, finish, settings)
        raise
    return outcome, write_trial(parts, out_dir, outcome, finish, settings)


def write_trial(
    parts: TrialParts,
    out_dir: Path,
    outcome: LoopOutcome,
    finish: Finish,
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Finish the back end, score the trial and write its files; returns the summary.

    ``finish``'s entries override the summary's (a live trial says why it stopped more
    precisely than the loop can).
    """
    truth, extra = finish(outcome)
    recorder = parts.recorder
    period_s = parts.source.sample_period_s
    columns = recorder.columns()
    columns |= {name: np.asarray(col)[: recorder.count] for name, col in truth.columns.items()}
    end_s = recorder.count * period_s
    true_events = [(t, e) for t, e in truth.events if t < end_s]
    detected = recorder.detected
    write_samples_csv(out_dir / "samples.csv", columns)
    deadlines = parts.deadlines
    if parts.clock.kind != VirtualClock.kind:
        write_samples_csv(out_dir / "timing.csv", deadlines.rows(0, deadlines.count))
    timing = deadlines.figures(parts.clock.kind, outcome.warm_up_s)
    timing["settings"] = list(settings)
    write_events_csv(
        out_dir / "events.csv",
        [(t, "true", e) for t, e in true_events]
        + [(d.t_est_s, "detected", EVENT_NAMES[d.event]) for d in detected],
    )
    watchdog = parts.watchdog
    facts = TrialFacts(
        columns=columns,
        true_events=true_events,
        detected=detected,
        period_s=period_s,
        wall_s=outcome.wall_s,
        stopped_by=outcome.stopped_by,
        faults=watchdog.faults,
        clamped_commands=watchdog.clamped_commands,
        interventions=[asdict(i) for i in watchdog.interventions],
        stim_timeouts=parts.scheduler.timeouts,
        stim_channels=parts.scheduler.reports(),
        timing=timing,
    )
    m = parts.config.metrics
    summary = summarize(facts, m.event_tolerance_ms, m.onset_window_ms, m.clearance_trim_fraction)
    summary |= extra
    write_json(out_dir / "summary.json", summary)
    return summary
