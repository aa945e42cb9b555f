"""One trial from wired stages to files on disk, whatever the back end.

The caller claims the trial's folder and opens its files first
(``controller.trial.streams.TrialFiles``: ``config.json``, the streamed CSV files), so an
output that cannot be written stops the command before anything starts. ``run_trial``
then runs the loop inside the log writer (a process of its own that streams the rows to
the files, and to any further sinks, while the loop runs) and, for a real-time trial,
inside the OS settings of ``[loop]`` (CPU pinning, real-time priority). However the loop
ends (its duration, the source's end, Ctrl-C, SIGTERM, an error) the files are
completed: the writer's last pass, ``events.csv`` sorted, ``summary.json``; Ctrl-C and
SIGTERM while that happens are held back until the files are complete
(``controller.interrupts``). What differs between back ends is passed in as ``finish``:
called once the loop has ended, it shuts the back end down and returns the ground truth
it has (the simulator's exact truth, the board emulator's debug frames, or nothing for
a real board) and the back end's own entries of the summary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np

from controller.clock import VirtualClock
from controller.config import TrialConfig
from controller.deadlines import DeadlineMonitor
from controller.detect.detector import GaitDetector
from controller.events import EVENT_NAMES
from controller.interrupts import interrupts_deferred, raise_if_interrupted
from controller.loop import LoopOutcome, run_loop
from controller.outputs import OutputError
from controller.trial.parts import TrialParts
from controller.trial.recorder import SAMPLE_ROWS, STIM_COLUMNS
from controller.trial.streams import TIMING_COLUMNS, TrialFiles
from controller.trial.summary import TrialFacts, strides_not_stimulated, summarize
from controller.trial.writer import InlineWriter, LogSink, LogWriter, LogWriterError


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


def numbers_per_sample(config: TrialConfig, truth_columns: int) -> int:
    """The numbers a trial keeps per sample: its recorded columns, ``truth_columns`` of
    the back end's truth and the deadline accounting (``controller.trial.memory``)."""
    recorded = len(SAMPLE_ROWS) + len(STIM_COLUMNS) * (1 + len(recorded_channels(config)))
    return recorded + truth_columns + len(TIMING_COLUMNS)


def new_deadlines(config: TrialConfig, n_samples: int) -> DeadlineMonitor:
    """The deadline accounting of a trial of ``n_samples`` with the ``[loop]`` bounds."""
    loop = config.loop
    return DeadlineMonitor(n_samples, 1.0 / loop.sample_rate_hz, loop.max_overrun_ms / 1000.0)


#: How often the log writer looks for new rows: a simulation on the virtual clock
#: publishes thousands of rows a millisecond, a paced loop one row a period. (It writes
#: a row ``poll_s`` after it saw it counted, for CPUs that make stores visible out of
#: order: half a millisecond is still thousands of times what a store takes to show;
#: at 2 ms a writer with a core of its own idled a third of a minute's loop and left
#: 20,000-35,000 rows, 5-8 ms of writing, to the pass the trial waits for.)
VIRTUAL_POLL_S = 0.0005
PACED_POLL_S = 0.05


def run_trial(
    parts: TrialParts,
    n_samples: int,
    open_files: Callable[[], TrialFiles],
    finish: Finish,
    sinks: Sequence[LogSink] = (),
    realtime: bool = False,
    notes: TextIO | None = None,
    loop: LoopRunner = run_parts,
    stream: bool = True,
) -> tuple[LoopOutcome, dict[str, Any]]:
    """Open the files, run the loop for up to ``n_samples``, complete the files; return
    outcome and summary.

    ``open_files`` opens the trial's files (``TrialFiles.open``); Ctrl-C and SIGTERM wait
    until it has, so from then on every ending completes them. ``loop`` runs the stages
    (``run_parts`` by default). ``realtime`` applies the ``[loop]`` CPU and priority
    settings around the loop; what they did (or why the OS refused them) is written to
    ``notes``. ``stream`` False writes the files after the loop in this process instead
    of during it (no writer process: for a caller that keeps only finished trials
    anyway, as a sweep does).

    Raises ``KeyboardInterrupt`` after completing the files when Ctrl-C or SIGTERM came
    before the loop or while the files were completed, and ``OutputError`` when a file
    could not be written.
    """
    from controller.hotpath import realtime_section

    virtual = parts.clock.kind == VirtualClock.kind
    files: TrialFiles | None = None
    writer: LogWriter | None = None
    settings: list[str] = []
    try:
        with interrupts_deferred():
            files = open_files()
        raise_if_interrupted()  # one swallowed before: the files are completed, nothing runs
        if not virtual:
            # A paced loop must not wait for the kernel to map a page on first touch:
            # every page of the per-sample arrays is touched now (ms for a minute).
            for tail in files.tails:
                tail.prefault()
        writer_type = LogWriter if stream else InlineWriter
        writer = writer_type(files.tails, [*files.sinks, *sinks],
                             poll_s=VIRTUAL_POLL_S if virtual else PACED_POLL_S)
        with contextlib.ExitStack() as stack:
            writer.start()  # forked first: the writer must not inherit the loop's settings
            stack.callback(writer.request_stop)
            if parts.window is not None:
                parts.window.attach(writer)
            if realtime:
                os_settings = parts.config.loop
                settings += stack.enter_context(
                    realtime_section(os_settings.cpu_index, os_settings.realtime_priority)
                )
                if notes is not None:
                    notes.write(f"real-time settings: {'; '.join(settings)}\n")
            if not virtual:  # the main source of lateness on an ordinary machine
                settings.append("load average {:.2f} {:.2f} {:.2f} at the start"
                                .format(*os.getloadavg()))
            outcome = loop(parts, n_samples)
    except BaseException as err:
        if files is not None:
            stopped_by = "interrupted" if isinstance(err, KeyboardInterrupt) else "error"
            with interrupts_deferred():
                if writer is None:
                    writer = InlineWriter(files.tails, files.sinks)
                failed = LoopOutcome(parts.recorder.count, 0.0, stopped_by)
                complete_trial(parts, files, writer, failed, finish, settings)
        raise
    with interrupts_deferred():
        summary = complete_trial(parts, files, writer, outcome, finish, settings)
    return outcome, summary


def complete_trial(
    parts: TrialParts,
    files: TrialFiles,
    writer: LogWriter,
    outcome: LoopOutcome,
    finish: Finish,
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Finish the back end, score the trial, let the writer finish, complete the files;
    returns the summary.

    ``finish``'s entries override the summary's (a live trial says why it stopped more
    precisely than the loop can). The scoring runs while the writer makes its last pass.
    """
    writer.request_stop()
    truth, extra = finish(outcome)
    recorder = parts.recorder
    period_s = parts.source.sample_period_s
    if parts.window is None:
        columns = recorder.columns()
        columns |= {name: np.asarray(col)[: recorder.count] for name, col in truth.columns.items()}
    else:  # rows in a ring, scored as they passed: the columns' names, for the files
        columns = {name: np.zeros(0) for name in [*recorder.index, *truth.columns]}
    end_s = recorder.count * period_s
    true_events = [(t, e) for t, e in truth.events if t < end_s]
    detected = recorder.detected
    deadlines = parts.deadlines
    clock = parts.clock
    timing = deadlines.figures(clock.kind, outcome.warm_up_s, clock.not_measured)
    timing["settings"] = list(settings)
    watchdog = parts.watchdog
    # A windowed trial's rows were scored as they passed (and freed once written).
    scores = parts.window.finish(recorder.count) if parts.window is not None else None
    facts = TrialFacts(
        columns=columns,
        true_events=true_events,
        detected=detected,
        period_s=period_s,
        # The loop's own time: without what a windowed trial did between its blocks.
        wall_s=outcome.wall_s - (parts.window.spent_s if parts.window is not None else 0.0),
        stopped_by=outcome.stopped_by,
        faults=watchdog.faults,
        clamped_commands=watchdog.clamped_commands,
        interventions=[asdict(i) for i in watchdog.interventions],
        stim_timeouts=parts.scheduler.timeouts,
        stim_channels=parts.scheduler.reports(),
        timing=timing,
        scores=scores,
    )
    m = parts.config.metrics
    summary = summarize(facts, m.event_tolerance_ms, m.onset_window_ms, m.clearance_trim_fraction)
    if isinstance(parts.detector, GaitDetector):
        mounting = parts.detector.mounting_block()
        if mounting is not None:
            decided = mounting["decided_s"]
            stim = parts.config.stim
            gait_triggered = stim.mode == "walking" and any(
                name == "peroneal" for name, _ in stim.active_channels())
            # (without gait-triggered peroneal stimulation the check cost no stimulation)
            mounting["strides_not_stimulated"] = strides_not_stimulated(
                facts, decided if isinstance(decided, float) else None
            ) if gait_triggered else None
        summary["gyro_mounting"] = mounting
        axis = parts.detector.axis_block()
        if axis is not None:  # a live trial on the project's board checks the axis
            summary["gyro_axis"] = axis
    summary |= extra
    broken: LogWriterError | None = None
    try:
        writer.stop()
    except LogWriterError as err:
        broken = err
    if writer.forked:
        files.release()
    else:
        files.forget_streams()  # the sinks closed them, in this process
    events = [(t, "true", e) for t, e in true_events] + [
        (d.t_est_s, "detected", EVENT_NAMES[d.event]) for d in detected
    ]
    try:
        files.complete(columns, events, summary)
    except OutputError as err:
        if writer.failure is None:
            raise
        raise writer.failure from err  # the first file that could not be written
    if broken is not None:
        raise broken
    if writer.failure is not None:
        raise writer.failure
    return summary
