"""A closed-loop trial against the simulated patient, from config to files on disk.

Wires the stages of the data flow (simulated limb -> detector -> scheduler -> watchdog
-> simulated limb) under a virtual clock (as fast as possible) or, with ``realtime``, a
wall clock that holds the sample period as a live loop would (with the CPU and priority
settings of ``[loop]``); ``controller.trial.session`` runs it, scores it against the
limb's exact ground truth and writes the files.

The limb is stepped once per sample served: a period the real-time loop misses is a
period the simulated patient does not live either, so a real-time trial records the same
samples as a virtual one (unless a stall beyond ``loop.max_overrun_ms`` made the watchdog
turn the outputs off) and its timing figures say how well the machine kept time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from controller.clock import Clock, VirtualClock, WallClock
from controller.config import TrialConfig
from controller.detect.config import build_detector
from controller.events import EVENT_NAMES, Event
from controller.loop import LoopOutcome
from controller.safety import Watchdog
from controller.sharedmem import map_in_background, shared_empty
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import channel_path
from controller.trial.compiled_loop import LoopCompile, run_compiled_loop
from controller.trial.folder import TrialFolder
from controller.trial.memory import check_fits
from controller.trial.parts import TrialParts
from controller.trial.recorder import TrialRecorder
from controller.trial.scores import StreamedColumns
from controller.trial.session import (
    GroundTruth,
    new_deadlines,
    numbers_per_sample,
    output_channels,
    recorded_channels,
    run_parts,
    run_trial,
    streamed_columns,
    timing_block,
    trial_summary,
    watched_sensors,
)
from controller.trial.streams import BackEndTruth, TrialFiles, TruthRows
from controller.trial.summary import TrialFacts
from controller.trial.window import RowWindow, StreamedScores, event_ring_rows, window_rows
from controller.trial.writer import LogSink
from sim.limb import MUSCLES, TRUTH_COLUMNS, SimulatedLimb
from sim.patient import load_patient


def channel_problems(config: TrialConfig) -> list[str]:
    """A channel other than the peroneal one on an output of a simulated muscle
    (``sim.limb.MUSCLES``: tibialis anterior on output 0): its pulses would move the
    simulated foot under another muscle's name. Refused by ``fes sim`` and ``fes sweep``
    (a board drives whatever its electrodes are on)."""
    return [
        f"{channel_path(name)}.channel: output {ch.channel} drives the simulated "
        f"{MUSCLES[ch.channel]}, which only the peroneal channel stimulates; give {name} "
        "another output (its pulses would lift the simulated foot as if they were the "
        "peroneal nerve's)"
        for name, ch in config.stim.active_channels()
        if name != "peroneal" and ch.channel in MUSCLES
    ]


def channel_notes(config: TrialConfig) -> list[str]:
    """What a simulated trial runs but does not simulate: each enabled channel on an
    output that drives no simulated muscle (``sim.limb.MUSCLES``). Its pulses are
    delivered and counted (its charge and timing in summary.json, ``simulated_muscle``
    "none") but move nothing, so no walk figure depends on its settings and an objective
    over its charge ranks its weakest setting first."""
    muscles = " and ".join(f"{m} on output {o}" for o, m in MUSCLES.items())
    return [
        f"{channel_path(name)} (output {ch.channel}) drives no simulated muscle: the "
        f"simulated limb has only {muscles}, so this channel's settings change its own "
        "charge and timing figures and nothing of the walk (clearance, ankle, slaps): its "
        "pulses are counted, their effect is not simulated"
        for name, ch in config.stim.active_channels() if ch.channel not in MUSCLES
    ]


def run_simulated_trial(
    config: TrialConfig,
    out_dir: Path,
    realtime: bool = False,
    sinks: Sequence[LogSink] = (),
    notes: TextIO | None = None,
    compiled: bool = True,
    overwrite: bool = False,
    stream: bool = True,
    data_format: str = "csv",
    samples_done: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run one trial, write its files into ``out_dir`` and return the summary.

    ``out_dir`` must be empty or new, unless ``overwrite`` lets the trial replace an
    earlier trial's files there (``controller.trial.folder``). The files are streamed
    while the loop runs (unless ``stream`` is False: then they are written after it, in
    this process). ``sinks`` receive every sample in the log writer process while the
    loop runs; what the real-time settings did (or why the OS refused them), and that a
    first run is compiling, is written to ``notes``. ``data_format`` "parquet" writes the
    samples, events and timing as Parquet instead of CSV (``controller.trial.parquet``).
    On the virtual clock the loop runs compiled (``controller.trial.compiled_loop``) unless
    ``compiled`` is False, which runs ``controller.loop.run_loop`` instead: the same
    trial, byte for byte, some 50 times slower (tests and benchmarks compare the two).
    ``samples_done(done, total)`` is told how many of the trial's samples the compiled
    loop has run, after each of its blocks (a sweep's worker shows the progress of a
    long trial that way); the other loops do not call it.
    """
    folder = TrialFolder.claim(out_dir, overwrite)
    loop = config.loop
    rate_hz = loop.sample_rate_hz
    n_samples = round(loop.duration_s * rate_hz)
    # A long trial keeps a window of rows, as a ring (``controller.trial.window``):
    # written as the ring comes round, scored as they pass (on the virtual clock by the
    # compiled loop between its blocks; a paced loop's in the log writer process).
    ring = window_rows(n_samples)
    long = ring is not None and compiled and not realtime
    paced_ring = ring is not None and realtime
    rows = ring if ring is not None and (long or paced_ring) else n_samples
    check_fits(rows, numbers_per_sample(config, len(TRUTH_COLUMNS)), rate_hz,
               windowed=rows < n_samples)
    # The limb's truth goes into shared memory, for the writer to stream beside the rows
    # (the limb writes every column of a sample's row: it may reuse an ended trial's).
    truth_rows = shared_empty(rows * len(TRUTH_COLUMNS)).reshape(rows, -1)
    recorder = TrialRecorder(rows, config.stim.peroneal.channel, recorded_channels(config),
                             event_ring=event_ring_rows(rows) if rows < n_samples else None)
    # Fresh pages are mapped on another CPU while the stages are built (a minute at 1
    # kHz: 2,100 pages the loop no longer stops at, 4-5 ms; reused ones are mapped).
    rows_mapped = map_in_background([truth_rows, recorder.table])
    profile = load_patient(config.sim.patient)
    # The limb has an output for every configured channel (only output 0 drives the ankle).
    limb = SimulatedLimb(
        profile, rate_hz, loop.duration_s, config.sim.seed,
        channels=max(2, output_channels(config)), truth_rows=truth_rows,
    )
    # The first minute's sensor noise, drawn on another CPU while the stages are built
    # and the files open (as much of it as is drawn by the writer's fork).
    stop_drawing = limb.draw_noise_ahead()
    detector = build_detector(config.detector, rate_hz)
    scheduler = StimScheduler(config.stim)
    watchdog = Watchdog(limb, config.safety, watched_sensors(config))
    clock: Clock = WallClock(loop.spin_us * 1e-6) if realtime else VirtualClock()
    window = _window(config, limb, recorder, truth_rows) if long else None
    parts = TrialParts(
        config=config,
        source=limb,
        detector=detector,
        scheduler=scheduler,
        watchdog=watchdog,
        clock=clock,
        recorder=recorder,
        # A windowed trial's loop is compiled, on the virtual clock: it accounts its
        # samples on time (``DeadlineMonitor.on_time``), writing no row; its figures read
        # one zero. (Rows for every sample: 24 bytes each of address space.)
        deadlines=new_deadlines(config, 1 if long else rows),
        window=window,
        scores=_scores(config, limb, folder.path) if paced_ring else None,
    )

    def finish(outcome: LoopOutcome) -> tuple[GroundTruth, dict[str, Any]]:
        # The limb's truth, read where it wrote it (views: nothing is copied).
        columns = {name: truth_rows[: limb.samples_read, i] for i, name in enumerate(TRUTH_COLUMNS)}
        return GroundTruth(columns, limb.true_events()), _extra(config)

    def compiled_loop(parts: TrialParts, n_samples: int) -> LoopOutcome:
        if interrupted:  # while it compiled: now that the files are open (and completed)
            raise KeyboardInterrupt
        assert compiling is not None  # made below for this runner
        report = samples_done

        def done(k: int) -> None:
            if window is not None:
                window.after_block(k)
            if report is not None:
                report(k, n_samples)

        return run_compiled_loop(compiling, n_samples, parts.deadlines, done)

    def open_files() -> TrialFiles:
        files = TrialFiles.open(folder, parts, truth, data_format)
        stop_drawing()  # before the log writer's fork
        return files

    runner = compiled_loop if compiled and not realtime else run_parts
    truth = BackEndTruth(TruthRows(truth_rows, TRUTH_COLUMNS, parts.recorder), limb.true_events())
    # A first run compiles the loop from here, while the files open (on two CPUs when
    # this process may use them).
    compiling: LoopCompile | None = None
    interrupted = False
    if runner is compiled_loop:
        compiling = LoopCompile(limb, detector, scheduler, watchdog, parts.recorder, notes)
    rows_mapped()  # before any fork: the compile helper's, the log writer's
    if compiling is None or compiling.compiles_ahead:
        stop_drawing()
    if compiling is not None:
        try:
            compiling.start()
        except KeyboardInterrupt:  # the trial ends as interrupted, its files complete
            interrupted = True
    try:
        _, summary = run_trial(
            parts, n_samples, open_files, finish, sinks, realtime, notes, runner, stream=stream,
        )
    finally:
        if compiling is not None:
            compiling.close()
        folder.release()
    return summary


def _extra(config: TrialConfig) -> dict[str, Any]:
    """The simulated back end's own entries of ``summary.json``."""
    return {"config": {"patient": config.sim.patient, "seed": config.sim.seed}}


def blank_summary(config: TrialConfig, realtime: bool = False) -> dict[str, Any]:
    """The ``summary.json`` of a simulated trial of ``config`` that ran no sample, built
    by the code that builds every trial's (``session.trial_summary``) from the columns,
    channels, detector, clock and truth such a trial has: it holds every figure name a
    trial of ``config`` can have, a block that only a trial's data could leave null (the
    detector's, without true events) as a block, so that ``--require`` and
    ``--objective`` names are checked before any trial runs. Its values mean nothing.
    Neither the patient nor the seed changes a name (only values of ``config``): the
    limb's truth columns are those of every patient."""
    rate_hz = config.loop.sample_rate_hz
    recorder = TrialRecorder(0, config.stim.peroneal.channel, recorded_channels(config))
    clock: Clock = WallClock(config.loop.spin_us * 1e-6) if realtime else VirtualClock()
    heel_strike, toe_off = EVENT_NAMES[Event.HEEL_STRIKE], EVENT_NAMES[Event.TOE_OFF]
    facts = TrialFacts(
        columns=recorder.columns() | {name: np.zeros(0) for name in TRUTH_COLUMNS},
        true_events=[(0.0, heel_strike), (0.5, toe_off), (1.0, heel_strike)],
        detected=(),
        period_s=1.0 / rate_hz,
        wall_s=1.0,
        stopped_by="duration",
        faults=0,
        clamped_commands=0,
        interventions=(),
        stim_timeouts=0,
        stim_channels=StimScheduler(config.stim).reports(),
        timing=timing_block(new_deadlines(config, 0), clock, 0.0, ()),
    )
    return trial_summary(facts, config, build_detector(config.detector, rate_hz),
                         _extra(config))


def _columns(config: TrialConfig, limb: SimulatedLimb) -> StreamedColumns:
    """The per-sample figures of a long trial, scored against the limb's true events."""
    return streamed_columns(config, limb.sample_period_s, limb.true_events(), TRUTH_COLUMNS)


def _window(
    config: TrialConfig, limb: SimulatedLimb, recorder: TrialRecorder, truth_rows: np.ndarray
) -> RowWindow:
    """The window of a long trial's rows on the virtual clock."""
    return RowWindow(recorder, truth_rows, TRUTH_COLUMNS, _columns(config, limb))


def _scores(config: TrialConfig, limb: SimulatedLimb, spill_dir: Path) -> StreamedScores:
    """The figures of a long paced trial's rows, scored by the log writer (its timing
    spilled into ``spill_dir``)."""
    return StreamedScores(_columns(config, limb), spill_dir)
