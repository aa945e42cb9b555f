"""The simulated closed loop compiled whole: ``run_loop`` for the limb on a virtual clock.

``controller.loop.run_loop`` calls each stage through its Python object, one sample at a
time, which is what a live loop must do (a board paces it, any ``SensorSource`` may be
behind it) and costs about 14 us per sample in interpreter overhead. A simulated trial on
a virtual clock has none of those constraints: every stage already runs as a numba kernel
on arrays (the limb's ``limb_step``, the detector's ``detector_step``, the scheduler's
``schedule_step``, the watchdog's ``watchdog_observe`` and ``watchdog_submit``), so this
module calls those same kernels in the same order inside one compiled loop:

    limb sample -> detector -> watchdog.observe -> scheduler -> watchdog.submit
    -> limb command (what the watchdog delivered, or all off) -> recorder row

The stages are the ones ``run_loop`` would be given, with their state in their own
arrays, so the trial is the same trial bit for bit (a test compares the files of both
paths) and the watchdog stays the only path to the limb's command. The loop runs in
blocks of up to ``sim.limb.BLOCK_SAMPLES`` samples (a block of the limb's noise); between
blocks, Python turns the watchdog's numeric intervention records into ``Intervention``
objects, adds the detected events to the recorder's ``DetectedEvents``, publishes the rows to the
log writer, and lets Ctrl-C and the e-stop signals in, so a long trial stays
interruptible within milliseconds.

The loop is compiled for the trial's detector kind and stimulation mode
(``controller.kernels.specialised``): the first run after an install compiles only the
detector and the mode it runs, and says how long that took.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import NamedTuple, TextIO

import numpy as np

from controller.deadlines import DeadlineMonitor
from controller.detect.detector import GaitDetector, detector_step, detector_step_for
from controller.detect.outbox import MAX_EVENTS, new_outbox
from controller.events import UNKNOWN
from controller.hotpath import announced_if_slow, collector_off, in_one_chunk
from controller.interrupts import interrupts_deferred, raise_if_interrupted
from controller.kernels import kernel, specialised
from controller.loop import LoopOutcome
from controller.ports import (
    ROW_AMPLITUDE_MA,
    ROW_CHANNEL,
    ROW_FREQUENCY_HZ,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
    StimCommand,
    command_of_row,
)
from controller.progress import progress
from controller.pulses import pulse_times_call
from controller.safety import Watchdog
from controller.safety.decide import outputs_off, watchdog_observe, watchdog_submit
from controller.safety.estop import estop_signals
from controller.stim.schedule import schedule_step, schedule_step_for
from controller.stim.scheduler import StimScheduler
from controller.trial.compile_ahead import KernelJob, LoopCompilation, job, python_job
from controller.trial.recorder import (
    EVENTS_PUBLISHED,
    ROWS_PUBLISHED,
    SAMPLE_ROWS,
    STIM_COLUMNS,
    TrialRecorder,
)
from sim.limb import (
    BLOCK_SAMPLES,
    C_AMPLITUDE_MA,
    C_FREQUENCY_HZ,
    C_ON,
    C_PULSE_WIDTH_US,
    O_GYRO,
    O_HEEL_FORCE,
    O_HEEL_SWITCH,
    SimulatedLimb,
    StepArrays,
    limb_step,
)

#: Said when compiling the loop outlasts ``COMPILE_NOTICE_AFTER_S``.
COMPILE_NOTICE = (
    "compiling the simulation into machine code (first run after an install; later "
    "runs load it from numba's cache) ..."
)
COMPILE_NOTICE_AFTER_S = 1.0

# Columns of the per-block event table: when known, event code, estimated time.
_E_KNOWN, _E_CODE, _E_EST = 0, 1, 2
# Recorder table rows the loop writes for every sample.
_R_TIME = SAMPLE_ROWS.index("time_s")
_R_GYRO = SAMPLE_ROWS.index("gyro_rad_s")
_R_SWITCH = SAMPLE_ROWS.index("heel_switch")
_R_FORCE = SAMPLE_ROWS.index("heel_force_n")
_R_PHASE = SAMPLE_ROWS.index("phase")
#: Command columns of a recorded channel (``stim_on`` and its three numbers).
_STIM_WIDTH = len(STIM_COLUMNS)


@kernel
def _delivers(row: np.ndarray) -> bool:
    """``StimCommand.delivers`` of a command row."""
    return (
        row[ROW_ON] != 0.0
        and row[ROW_AMPLITUDE_MA] > 0.0
        and row[ROW_PULSE_WIDTH_US] > 0.0
        and row[ROW_FREQUENCY_HZ] > 0.0
    )


@kernel
def _hold(delivered: np.ndarray, command: np.ndarray) -> None:
    """``SimulatedLimb.apply`` of the delivered rows: channel 0 drives the ankle."""
    for r in range(delivered.shape[0]):
        row = delivered[r]
        if row[ROW_CHANNEL] == 0.0:
            command[C_ON] = 1.0 if _delivers(row) else 0.0
            command[C_AMPLITUDE_MA] = row[ROW_AMPLITUDE_MA]
            command[C_PULSE_WIDTH_US] = row[ROW_PULSE_WIDTH_US]
            command[C_FREQUENCY_HZ] = row[ROW_FREQUENCY_HZ]


@kernel
def _record(
    k: int, t_s: float, sample: np.ndarray, phase: int, delivered: np.ndarray,
    stim_column: np.ndarray, table: np.ndarray,
) -> None:
    """``TrialRecorder.record`` of one sample into its table."""
    table[_R_TIME, k] = t_s
    table[_R_GYRO, k] = sample[O_GYRO]
    table[_R_SWITCH, k] = sample[O_HEEL_SWITCH]
    table[_R_FORCE, k] = sample[O_HEEL_FORCE]
    table[_R_PHASE, k] = phase
    for column in stim_column:  # every cell of the row is written (``TrialRecorder``)
        if column >= 0:
            for offset in range(_STIM_WIDTH):
                table[column + offset, k] = 0.0
    for r in range(delivered.shape[0]):
        row = delivered[r]
        column = stim_column[int(row[ROW_CHANNEL])]
        if column >= 0 and _delivers(row):
            table[column, k] = 1.0
            table[column + 1, k] = row[ROW_AMPLITUDE_MA]
            table[column + 2, k] = row[ROW_PULSE_WIDTH_US]
            table[column + 3, k] = row[ROW_FREQUENCY_HZ]


class DetectorArrays(NamedTuple):
    """The detector's kernel arrays (``GaitDetector.kernel_arrays``, less the kind, which
    the loop is compiled for), whether its heel input is the force sensor (else the
    switch), and the outbox of its events."""

    state: np.ndarray
    params: np.ndarray
    heel_is_force: bool
    outbox: np.ndarray


class ScheduleArrays(NamedTuple):
    """The scheduler's kernel arrays (``StimScheduler.kernel_arrays``): parameters,
    state and the command rows it requests."""

    params: np.ndarray
    state: np.ndarray
    requested: np.ndarray


class WatchdogArrays(NamedTuple):
    """The watchdog's live arrays (``Watchdog.kernel_arrays``) and the command rows it
    delivered."""

    limits: np.ndarray
    state: np.ndarray
    log: np.ndarray
    delivered: np.ndarray


class RecordArrays(NamedTuple):
    """Where a block's results go: the recorder's table, the column in it of each
    channel's ``stim_on`` (-1: not recorded), the block's detected events, and the
    recorder's shared events, publication counts (``TrialRecorder.events``, ``counts``)
    that the log writer reads and how many events the shared table takes in all
    (``TrialRecorder.event_limit``: a ring's, any number)."""

    table: np.ndarray
    stim_column: np.ndarray
    events: np.ndarray
    shared_events: np.ndarray
    counts: np.ndarray
    event_limit: int


@specialised
def _block_for(detector_kind: int, stim_mode: int) -> Callable[..., int]:
    """The compiled loop for one detector kind and stimulation mode (the only ones it
    compiles): ``run_block(k0, count, period_s, limb, detector, schedule, watchdog,
    record, publish_every)`` runs samples ``k0 .. k0 + count - 1``, each as one pass of
    ``run_loop``, and returns the number of detected events written into
    ``record.events``.

    Every ``publish_every`` samples the rows are published in ``record.counts``, as
    ``TrialRecorder.publish`` does, so the log writer streams a long block as it runs;
    each detected event is published as soon as it is in ``record.shared_events`` (as
    far as it takes them: event n at row n modulo its rows, a ring's), as
    ``TrialRecorder.add_detected`` does.
    """

    @kernel
    def run_block(
        k0: int,
        count: int,
        period_s: float,
        limb: StepArrays,
        detector: DetectorArrays,
        schedule: ScheduleArrays,
        watchdog: WatchdogArrays,
        record: RecordArrays,
        publish_every: int,
    ) -> int:
        sample, command, outbox = limb.sample, limb.command, detector.outbox
        events, shared_events, counts = record.events, record.shared_events, record.counts
        n_events = 0
        shared = counts[EVENTS_PUBLISHED]
        # Samples until the next publication, at every multiple of ``publish_every``
        # (counted down: ``(k + 1) % publish_every`` divided by a number known only at
        # run time, once per sample).
        due = publish_every - k0 % publish_every
        for k in range(k0, k0 + count):
            t_s = k * period_s
            limb_step(k, limb.strides, limb.features, limb.params, limb.state, limb.buffers,
                      limb.dropouts, limb.noise, command, sample, limb.truth)
            gyro = sample[O_GYRO]
            switch = sample[O_HEEL_SWITCH]
            heel = sample[O_HEEL_FORCE] if detector.heel_is_force else switch
            phase = detector_step(detector_kind, detector.state, detector.params, t_s, gyro,
                                  heel, outbox)
            # The watchdog checks the heel reading the detector reads (its limits say
            # which sensors a valid sample needs: those of the detector).
            if watchdog_observe(watchdog.limits, watchdog.state, watchdog.log, t_s, gyro,
                                heel, phase != UNKNOWN):
                command[:] = 0.0
            schedule_step(stim_mode, schedule.params, schedule.state, t_s, phase, outbox,
                          schedule.requested)
            if watchdog_submit(watchdog.limits, watchdog.state, watchdog.log, t_s,
                               schedule.requested, watchdog.delivered):
                command[:] = 0.0
            else:
                _hold(watchdog.delivered, command)
            # The recorder's row: k, modulo its rows when they are a ring (a long
            # trial's window, ``controller.trial.window``).
            row = k if k < record.table.shape[1] else k % record.table.shape[1]
            _record(row, t_s, sample, phase, watchdog.delivered, record.stim_column,
                    record.table)
            for e in range(int(outbox[0])):
                events[n_events, _E_KNOWN] = t_s
                events[n_events, _E_CODE] = outbox[1 + 2 * e]
                events[n_events, _E_EST] = outbox[2 + 2 * e]
                if shared < record.event_limit:
                    slot = shared % shared_events.shape[0]
                    for column in range(3):
                        shared_events[slot, column] = events[n_events, column]
                    shared += 1
                    counts[EVENTS_PUBLISHED] = shared
                n_events += 1
            due -= 1
            if due == 0:
                counts[ROWS_PUBLISHED] = k + 1
                due = publish_every
        return n_events

    return run_block


class _Loop(NamedTuple):
    """A trial's compiled loop and the arrays it runs on: ``block(k, count, arrays)``
    runs samples ``k .. k + count - 1`` (``arrays``: the limb's, from ``next_block``)."""

    block: Callable[[int, int, StepArrays], int]
    run_block: Callable[..., int]
    k: int  # the first sample
    arrays: StepArrays  # the limb's arrays for it
    args: tuple[object, ...]  # ``run_block``'s arguments for them, with no samples
    # The stages' kernels to compile ahead (helper, own, later: ``_stage_jobs``), typed
    # only when a first run needs them.
    jobs: Callable[[], tuple[list[KernelJob], list[KernelJob], list[KernelJob]]]
    delivered: np.ndarray
    events: np.ndarray


def _loop_of(
    limb: SimulatedLimb,
    detector: GaitDetector,
    scheduler: StimScheduler,
    watchdog: Watchdog,
    recorder: TrialRecorder,
    publish_every: int,
) -> _Loop:
    """The compiled loop of these stages, with its arrays (the watchdog's log made large
    enough for a block)."""
    kind, detector_state, detector_params = detector.kernel_arrays
    heel_is_force = detector.setup.heel_input == "force"
    detector_arrays = DetectorArrays(detector_state, detector_params, heel_is_force,
                                     new_outbox())
    schedule = ScheduleArrays(*scheduler.kernel_arrays)
    delivered = np.zeros_like(schedule.requested)
    watchdog.reserve_log(BLOCK_SAMPLES * (schedule.requested.shape[0] + 1))
    watchdog_arrays = WatchdogArrays(*watchdog.kernel_arrays, delivered)
    stim_column = np.array(
        [recorder.stim_column(channel) for channel in range(limb.channels)], dtype=np.int64
    )
    # The block's events are written before they are read (uninitialised: zeroing 400 kB
    # would map each of its pages, which a block with a handful of events never touches).
    record = RecordArrays(recorder.table, stim_column, np.empty((BLOCK_SAMPLES * MAX_EVENTS, 3)),
                          recorder.events, recorder.counts, recorder.event_limit)
    run_block = _block_for(kind, scheduler.mode)
    period_s = limb.sample_period_s

    def block(k: int, count: int, arrays: StepArrays) -> int:
        return int(run_block(k, count, period_s, arrays, detector_arrays, schedule,
                             watchdog_arrays, record, publish_every))

    k, _, arrays = limb.next_block()
    args = (k, 0, period_s, arrays, detector_arrays, schedule, watchdog_arrays, record,
            publish_every)
    jobs = functools.partial(_stage_jobs, kind, scheduler.mode, arrays, detector_arrays,
                             schedule, watchdog_arrays, record)
    return _Loop(block, run_block, k, arrays, args, jobs, delivered, record.events)


def _stage_jobs(
    kind: int,
    mode: int,
    limb: StepArrays,
    detector: DetectorArrays,
    schedule: ScheduleArrays,
    watchdog: WatchdogArrays,
    record: RecordArrays,
) -> tuple[list[KernelJob], list[KernelJob], list[KernelJob]]:
    """The stages of ``run_block`` as kernels to compile ahead, with the types it calls
    them with (``compile_ahead``), split in two of about equal compile time: the limb
    and the scheduler for a helper process, the detector and the watchdog (with its
    pulse arithmetic) and the loop's own small kernels (``_hold``, ``_record``: else
    the helper compiles them inside the loop's compilation, 0.23 s of CPU in the part
    that runs alone) here; and what the trial compiles after its loop, here while the
    helper compiles the loop (the pulse times of its scoring,
    ``controller.pulses.train_pulse_times``, and the watchdog's ``outputs_off`` as its
    ``stop_all`` calls it at the end). The detector and scheduler are compiled through
    their ``specialised`` kernels, whose calls ``run_block`` inlines (same kernels, same
    argument types)."""
    k, t_s, gyro, heel, phase = 0, 0.0, 0.0, 0.0, 0
    helper = [
        job(limb_step, 0, *limb),
        job(schedule_step_for(mode), schedule.params, schedule.state, t_s, 0,
            detector.outbox, schedule.requested),
    ]
    own = [
        job(detector_step_for(kind), detector.state, detector.params, t_s, gyro, heel,
            detector.outbox),
        job(watchdog_observe, watchdog.limits, watchdog.state, watchdog.log, t_s, gyro,
            heel, True),
        job(watchdog_submit, watchdog.limits, watchdog.state, watchdog.log, t_s,
            schedule.requested, watchdog.delivered),
        job(_hold, watchdog.delivered, limb.command),
        job(_record, k, t_s, limb.sample, phase, watchdog.delivered, record.stim_column,
            record.table),
    ]
    column = np.zeros(1)
    pulse_times, pulse_args = pulse_times_call(column, column, column, t_s)
    later = [python_job(pulse_times, *pulse_args), python_job(outputs_off, watchdog.state, t_s)]
    return helper, own, later


#: The compiled loops (``run_block`` kernels) this process has run: a later trial's
#: loop of the same detector and mode is ready, nothing to compile ahead or look up in
#: numba's cache (typing the kernels' arguments and reading the cache index took 1.5-2
#: ms of every trial of a sweep or a benchmark).
_READY: set[Callable[..., int]] = set()


class LoopCompile:
    """Compiling (or loading) a trial's compiled loop, from ``start`` (as soon as the
    trial's stages exist: a first run compiles on two CPUs meanwhile,
    ``compile_ahead.LoopCompilation``) to ``finish`` (the loop is ready to run). If it
    takes long, ``notes`` is told, and then how long it took. A loop this process has
    run already is ready at once (``_READY``). Python's cycle collector is off while it
    compiles, in the helper too (``hotpath.collector_off``), and the compiler's frames
    sit in one chunk of the interpreter's frame stack (``hotpath.in_one_chunk``)."""

    def __init__(
        self,
        limb: SimulatedLimb,
        detector: GaitDetector,
        scheduler: StimScheduler,
        watchdog: Watchdog,
        recorder: TrialRecorder,
        notes: TextIO | None = None,
        publish_every: int | None = None,
    ) -> None:
        if publish_every is None:
            publish_every = max(1, round(1.0 / limb.sample_period_s))
        started_s = time.perf_counter()
        self.limb, self.watchdog, self.recorder = limb, watchdog, recorder
        self.notes = notes
        self.loop = _loop_of(limb, detector, scheduler, watchdog, recorder, publish_every)
        self._announced = contextlib.ExitStack()
        self._ahead: LoopCompilation | None = None
        if self.loop.run_block not in _READY:
            self._ahead = LoopCompilation(self.loop.run_block, self.loop.args,
                                          *self.loop.jobs())
        self._announced.enter_context(announced_if_slow(
            notes, COMPILE_NOTICE_AFTER_S, COMPILE_NOTICE, done="compiled"
        ))
        # Seconds spent compiling (or loading) here: set-up, ``start`` and ``finish``.
        self._spent_s = time.perf_counter() - started_s

    @property
    def compiles_ahead(self) -> bool:
        """Whether ``start`` compiles ahead (a first run: it may fork a helper)."""
        return self._ahead is not None

    def start(self) -> LoopCompile:
        """Start compiling; returns this."""
        started_s = time.perf_counter()
        try:
            if self._ahead is not None:
                with collector_off():  # the helper, forked here, keeps it off
                    in_one_chunk(self._ahead.start)  # and its frame stack too
        except BaseException:
            self.close()
            raise
        self._spent_s += time.perf_counter() - started_s
        return self

    def finish(self) -> float:
        """Make the loop ready to run; returns the seconds spent here compiling it (or
        loading it) since it started, not counting what the trial did meanwhile (its
        files opened: ``notes`` is told the whole time)."""
        started_s = time.perf_counter()
        try:
            with collector_off():
                in_one_chunk(self._compile_or_load)
            _READY.add(self.loop.run_block)
        finally:
            self.close()
        return self._spent_s + time.perf_counter() - started_s

    def _compile_or_load(self) -> None:
        if self._ahead is not None:
            self._ahead.finish()
        self.loop.block(self.loop.k, 0, self.loop.arrays)  # no samples

    def close(self) -> None:
        """Stop any helper still compiling; say how long it took, if it was said."""
        if self._ahead is not None:
            self._ahead.abandon()
        self._announced.close()


def run_compiled_loop(
    compiling: LoopCompile,
    max_samples: int,
    deadlines: DeadlineMonitor,
    samples_done: Callable[[int], None] | None = None,
) -> LoopOutcome:
    """``run_loop`` over the limb of ``compiling`` (the loop's compilation, started for
    the trial's stages: ``LoopCompile``) on a virtual clock, compiled; same outcome.

    Stops after ``max_samples`` samples, at the end of the limb's trial, or on Ctrl-C;
    the watchdog turns every output off however it ends. If compiling the loop (first
    run after an install or a change of the kernels) takes long, the compilation's
    ``notes`` is told. Rows are published for the log writer at least every
    ``publish_every`` samples of the compilation (default: one second of samples), so a
    kill loses at most that much. ``samples_done`` is told the samples run so far after
    every block (a sweep's worker reports them: ``controller.sweep.underway``).
    """
    limb, watchdog, recorder = compiling.limb, compiling.watchdog, compiling.recorder
    warm_up_s = compiling.finish()
    loop = compiling.loop
    block, delivered, events = loop.block, loop.delivered, loop.events
    stopped_by = "duration"
    samples = 0
    wall_start = time.perf_counter()
    try:
        # No pause of the garbage collector, unlike ``run_loop``: it cannot run inside a
        # kernel, and between blocks a collection would delay nothing that is timed.
        # The samples done, on a terminal ``notes`` once it has taken a while.
        with estop_signals(watchdog), progress(
            max_samples, "trial", "sample", unit_scale=True, stream=compiling.notes,
            quiet=compiling.notes is None,
        ) as shown:
            wall_start = time.perf_counter()
            while samples < max_samples:
                # Python drops a Ctrl-C that comes while it runs certain callbacks (a
                # weak reference's, an import lock's, a finaliser in a garbage
                # collection: controller.interrupts remembers it), and loading the
                # kernels runs many: one that came then, or since, ends the trial here.
                raise_if_interrupted()
                # A signal waits for the block's bookkeeping: what the trial counts is
                # then what the kernel published for the log writer.
                with interrupts_deferred():
                    k, count, arrays = limb.next_block()
                    if count == 0:
                        stopped_by = "source_ended"
                        break
                    count = min(count, max_samples - samples)
                    n_events = block(k, count, arrays)
                    samples += count
                    limb.advanced(count, _held(delivered, watchdog))
                    found = events[:n_events]  # rows: known time, event code, estimate
                    recorder.detected.extend_rows(found[:, 1], found[:, 0], found[:, 2])
                    watchdog.drain_log()
                    recorder.publish(samples)
                    deadlines.on_time(count)
                    shown.advance(count)
                    if samples_done is not None:
                        samples_done(samples)
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        # The loop's wall time ends with its last block: the stop after it is no sample's
        # work, and a first run without a compiling helper (one CPU: ``spare_cpu``)
        # compiles ``stop_all``'s kernel there (66-160 ms, a fifth of a 60 s trial's loop).
        wall_s = time.perf_counter() - wall_start
        watchdog.drain_log()
        watchdog.stop_all()
    return LoopOutcome(samples, wall_s, stopped_by, warm_up_s)


def _held(delivered: np.ndarray, watchdog: Watchdog) -> list[StimCommand]:
    """The commands the limb holds after a block: the last delivered, or "off" on every
    channel they name if the watchdog has stopped everything."""
    commands = [command_of_row(row) for row in delivered]
    if watchdog.latched:
        return [StimCommand.off(command.channel) for command in commands]
    return commands
