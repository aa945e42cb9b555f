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

from controller.clock import Clock, VirtualClock
from controller.config import TrialConfig
from controller.deadlines import DeadlineMonitor
from controller.detect.detector import GaitDetector
from controller.detect.weakheel import fed, for_detector
from controller.eventlog import EventRows, TrueEvents
from controller.events import EVENT_NAMES, DetectedEvent, Event
from controller.interrupts import interrupts_deferred, raise_if_interrupted
from controller.loop import LoopOutcome, run_loop
from controller.outputs import OutputError
from controller.quantiles import SpilledCounts
from controller.safety.sensors import (
    GYRO_SENSOR,
    HEEL_FORCE_SENSOR,
    HEEL_SWITCH_SENSOR,
)
from controller.trial.parts import TrialParts
from controller.trial.recorder import SAMPLE_ROWS, STIM_COLUMNS, stim_column_prefix
from controller.trial.scores import ColumnScores, StreamedColumns
from controller.trial.streams import TIMING_COLUMNS, TrialFiles
from controller.trial.summary import TrialFacts, strides_not_stimulated, summarize
from controller.trial.writer import (
    InlineWriter,
    LogSink,
    LogWriter,
    LogWriterError,
    WriterNotReady,
)


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


def watched_sensors(config: TrialConfig) -> int:
    """The sensors the watchdog needs valid in a sample (``controller.safety.sensors``):
    those the configured detector reads. A lost sample of a sensor the detector does
    not read (the heel switch of a gyroscope trial) is no reason to stop; one it reads
    stays invalid. The fused detector needs both: it holds a lost sensor's phase for
    that sensor's ``unknown_after_missing_ms`` (20 ms at least, 100 ms by default)
    before it runs on the other alone, longer than any sensor timeout (30 ms at most),
    and meanwhile the held phase still decides (docs/safety.md)."""
    detector = config.detector
    heel = HEEL_FORCE_SENSOR if detector.heel_input == "force" else HEEL_SWITCH_SENSOR
    return {"gyro": GYRO_SENSOR, "heel": heel, "fused": GYRO_SENSOR | heel}[detector.sensor]


def recorded_channels(config: TrialConfig) -> dict[str, int]:
    """The enabled further channels (beside the peroneal one) to record, by name."""
    return {name: ch.channel for name, ch in config.stim.channels.items() if ch.enabled}


def numbers_per_sample(config: TrialConfig, truth_columns: int) -> int:
    """The numbers a trial keeps per sample: its recorded columns, ``truth_columns`` of
    the back end's truth and the deadline accounting (``controller.trial.memory``)."""
    recorded = len(SAMPLE_ROWS) + len(STIM_COLUMNS) * (1 + len(recorded_channels(config)))
    return recorded + truth_columns + len(TIMING_COLUMNS)


def streamed_columns(
    config: TrialConfig, period_s: float, true_events: Sequence[tuple[float, str]],
    truth_columns: Sequence[str],
) -> StreamedColumns:
    """``StreamedColumns`` of a trial of ``config``, scored against ``true_events`` (known
    before the trial: the simulated patient's; none for a live trial without truth)."""
    toe_offs = [t for t, e in true_events if e == EVENT_NAMES[Event.TOE_OFF]]
    heel_strikes = [t for t, e in true_events if e == EVENT_NAMES[Event.HEEL_STRIKE]]
    prefixes = ["", *(stim_column_prefix(name) for name in recorded_channels(config))]
    return StreamedColumns(period_s, toe_offs, heel_strikes,
                           config.metrics.clearance_trim_fraction, prefixes, truth_columns,
                           edge_times=bool(true_events))


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
        ring = parts.recorder.capacity if parts.recorder.capacity < n_samples else None
        scoring = [parts.scores] if parts.scores is not None else []
        writer = writer_type(files.tails, [*files.sinks, *sinks, *scoring],
                             poll_s=VIRTUAL_POLL_S if virtual else PACED_POLL_S,
                             ring_rows=ring, copy_rows=files.keeps_rows or bool(sinks),
                             paced=not virtual)
        try:
            # Forked first: the writer must not inherit the loop's settings. It returns
            # once the writer is ready for the first rows (``LogWriter.start``).
            writer.start()
        except WriterNotReady:
            _abandon(parts, files, finish)
            files = None  # no trial took place: nothing to complete
            raise
        with contextlib.ExitStack() as stack:
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


def _abandon(parts: TrialParts, files: TrialFiles, finish: Finish) -> None:
    """A trial that never started (its log writer was not ready): the back end shut down
    (a board asked nothing is let go), the files opened for it removed."""
    with interrupts_deferred():
        finish(LoopOutcome(parts.recorder.count, 0.0, "error"))
        files.release()
        files.folder.abandon()


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
    precisely than the loop can). The scoring runs while the writer makes its last pass,
    unless the writer scores the rows itself (a long paced trial, ``parts.scores``): then
    once it has ended. Without the writer's figures of every row (it failed, or fell a
    ring behind the loop) no ``summary.json`` is written and the writer's failure is
    raised.
    """
    writer.request_stop()
    truth, extra = finish(outcome)
    recorder = parts.recorder
    period_s = parts.source.sample_period_s
    broken: LogWriterError | None = None
    scores: ColumnScores | None = None
    counts: tuple[SpilledCounts, SpilledCounts] | None = None
    streamed = parts.scores
    if streamed is not None:
        # Scored in the writer process, which hands the figures back once it has ended.
        try:
            writer.stop()
        except LogWriterError as err:
            broken = err
        result = streamed.result()
        if result is not None and result[0].samples == recorder.count:
            scores, counts = result
    if parts.window is None and streamed is None:
        columns = recorder.columns()
        columns |= {name: np.asarray(col)[: recorder.count] for name, col in truth.columns.items()}
    else:  # rows in a ring, scored as they passed: the columns' names, for the files
        columns = {name: np.zeros(0) for name in [*recorder.index, *truth.columns]}
    end_s = recorder.count * period_s
    true_events = _true_before(truth.events, end_s)
    detected = recorder.detected
    deadlines = parts.deadlines
    clock = parts.clock
    watchdog = parts.watchdog
    # A windowed trial's rows were scored as they passed (and freed once written).
    if parts.window is not None:
        scores = parts.window.finish(recorder.count)
    if streamed is not None and scores is None:
        # The writer failed or fell behind the loop before it scored every row: no
        # figures rather than wrong ones; the files hold the rows it wrote.
        return _without_summary(files, writer, broken, true_events, detected)
    timing = timing_block(deadlines, clock, outcome.warm_up_s, settings, counts)
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
        # A wall-clock reading has no place in a trial on the virtual clock, whose files
        # are the same at every run (and the compiled loop's the Python loop's).
        fault_monotonic_s=watchdog.fault_monotonic_s if clock.kind != "virtual" else None,
        stim_timeouts=parts.scheduler.timeouts,
        stim_channels=parts.scheduler.reports(),
        timing=timing,
        scores=scores,
    )
    summary = trial_summary(facts, parts.config, parts.detector, extra)
    if streamed is None:
        try:
            writer.stop()
        except LogWriterError as err:
            broken = err
    _complete_files(files, writer, columns, _events(true_events, detected), summary, broken)
    return summary


def timing_block(
    deadlines: DeadlineMonitor, clock: Clock, warm_up_s: float, settings: Sequence[str],
    counts: tuple[SpilledCounts, SpilledCounts] | None = None,
) -> dict[str, Any]:
    """The ``timing`` block of ``summary.json``: the deadline figures on ``clock`` and
    the OS ``settings`` the loop ran with."""
    timing = deadlines.figures(clock.kind, warm_up_s, clock.not_measured, counts)
    timing["settings"] = list(settings)
    return timing


def trial_summary(facts: TrialFacts, config: TrialConfig, detector: object,
                  extra: Mapping[str, Any]) -> dict[str, Any]:
    """``summary.json`` of a trial: the figures of ``facts`` (``summarize``), the gait
    detector's checks and the back end's entries ``extra`` (which override the rest).
    Every trial's summary is built here, and so is the blank one whose names
    ``--require`` checks are held to before a trial runs (``simulated.blank_summary``)."""
    m = config.metrics
    summary = summarize(facts, m.event_tolerance_ms, m.onset_window_ms, m.clearance_trim_fraction)
    if isinstance(detector, GaitDetector):
        mounting = detector.mounting_block()
        if mounting is not None:
            decided = mounting["decided_s"]
            stim = config.stim
            gait_triggered = stim.mode == "walking" and any(
                name == "peroneal" for name, _ in stim.active_channels())
            # (without gait-triggered peroneal stimulation the check cost no stimulation)
            mounting["strides_not_stimulated"] = strides_not_stimulated(
                facts, decided if isinstance(decided, float) else None
            ) if gait_triggered else None
        summary["gyro_mounting"] = _to_microseconds(mounting)
        axis = detector.axis_block()
        if axis is not None:  # a live trial on the project's board checks the axis
            summary["gyro_axis"] = _to_microseconds(axis)
    heel_check = for_detector(config.detector, 1.0 / facts.period_s)
    if heel_check is not None and "heel_force_n" in facts.columns:
        summary["heel_load"] = fed(heel_check, facts.columns["heel_force_n"]).block()
    return summary | dict(extra)


def _true_before(events: Sequence[tuple[float, str]], end_s: float
                 ) -> Sequence[tuple[float, str]]:
    """The true ``events`` before ``end_s`` (views of the arrays of ``TrueEvents``)."""
    if isinstance(events, TrueEvents):
        return events.before(end_s)
    return [(t, e) for t, e in events if t < end_s]


def _events(true_events: Sequence[tuple[float, str]], detected: Sequence[DetectedEvent]
            ) -> EventRows:
    """The rows of ``events.csv``, sorted, as arrays (``controller.eventlog``)."""
    return EventRows.of(true_events, detected)


def _to_microseconds(block: dict[str, Any] | None) -> dict[str, Any] | None:
    """A detector's block with its floats rounded to 6 decimals, as the files' times: a
    time of samples summed in binary (``4.3500000000000005``) failed a CI check
    ``gyro_mounting.decided_s<=4.35``, and the rest of the summary is rounded too."""
    if block is None:
        return None
    return {key: {k: round(v, 6) if isinstance(v, float) else v for k, v in value.items()}
            if isinstance(value, dict) else round(value, 6) if isinstance(value, float)
            else value for key, value in block.items()}


def _complete_files(
    files: TrialFiles,
    writer: LogWriter,
    columns: Mapping[str, np.ndarray],
    events: Sequence[tuple[float, str, str]],
    summary: Mapping[str, Any] | None,
    broken: LogWriterError | None,
) -> None:
    """Complete the files once the writer has ended (``summary.json`` unless
    ``summary`` is None); raise the writer's failure, if any."""
    if writer.forked:
        files.release()
    else:
        files.forget_streams()  # the sinks closed them, in this process
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


def _without_summary(
    files: TrialFiles,
    writer: LogWriter,
    broken: LogWriterError | None,
    true_events: Sequence[tuple[float, str]],
    detected: Sequence[DetectedEvent],
) -> dict[str, Any]:
    """Complete the files of a trial whose rows the writer could not score to the end
    (no ``summary.json``) and raise why."""
    _complete_files(files, writer, {}, _events(true_events, detected), None, broken)
    raise LogWriterError("the log writer ended without the trial's figures")
