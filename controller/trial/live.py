"""A live trial against a stimulator board on a serial port, from config to files.

The same stages as a simulated trial (gyro detector -> scheduler -> watchdog) with the
board (``hw.board``) as both sensor source and stimulator, and the same files, written
by ``controller.trial.session``. Differences:

- Pacing: the board's sample stream is the clock. ``read`` blocks until the board's
  next sample arrives, so the loop waits on the board, never on a timer of its own (two
  clocks would drift apart); the driver watches how far the loop lags behind the stream.
- Ending: besides its duration and Ctrl-C, the trial ends at the first fault anywhere:
  the link (unplugged, silent, not acknowledging), the board (its own fault report or a
  refused command), the host (the loop fell behind the stream) or the safety watchdog.
  Whatever ends it, the watchdog turns every output off, STOP_ALL is sent, and the files
  are written with everything recorded so far.
- Ground truth: a real board has none, so ``strides``, the detector figures and toe
  clearance are null and ``ground_truth`` says so. The board emulator sends its
  simulated patient's truth in debug frames, which makes a trial across the serial link
  comparable with ``fes sim`` on the same seed.
- The status line (``controller.trial.status``, printed by the log writer process once
  a second of trial time: phase, stimulation, cadence, watchdog faults, the link's
  counters and the loop's timing). The loop's thread never prints: it publishes the
  cadence, the watchdog's state and the link counters into shared memory
  (``LiveStatus``) and the line's sink reads them there.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from controller.config import TrialConfig
from controller.detect import weakheel
from controller.detect.config import build_detector
from controller.detect.detector import GaitDetector
from controller.events import Event
from controller.hotpath import announced_if_slow
from controller.loop import LoopOutcome
from controller.ports import Sample
from controller.safety import Watchdog
from controller.safety.estop import estop_keys
from controller.safety.layout import new_state
from controller.safety.rules import (
    ACK_TIMEOUT_MS,
    HEARTBEAT_TIMEOUT_MS,
    NO_RULE,
    RULE_NAMES,
    SENSOR_TIMEOUT_MS,
)
from controller.safety.watchdog import warm_up_kernels
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import channel_path
from controller.trial.backends import BackendSpec, SplitBackend, open_backend
from controller.trial.folder import TrialFolder
from controller.trial.memory import check_fits
from controller.trial.parts import TrialParts
from controller.trial.recorder import TrialRecorder
from controller.trial.session import (
    GroundTruth,
    new_deadlines,
    numbers_per_sample,
    output_channels,
    recorded_channels,
    run_parts,
    run_trial,
    streamed_columns,
    watched_sensors,
)
from controller.trial.status import (
    BAD_FRAMES,
    BOARD_RTT_LAST_MS,
    CADENCE_STEPS_PER_MIN,
    FRAMES_IN,
    FRAMES_OUT,
    GYRO_AXIS,
    GYRO_AXIS_TURNS_MOST,
    GYRO_MOUNTING,
    HEEL_LOAD,
    HEEL_LOAD_FLOOR_N,
    HEEL_LOAD_P99_N,
    LINK_STATE,
    LINK_STATES,
    LOST_FRAMES,
    MISSING_SAMPLES,
    NAKS,
    NO_GYRO_CHECK,
    NO_HEEL_CHECK,
    PULSE_STRETCH_MAX_US,
    RESENDS,
    WATCHDOG_FAULTS,
    WATCHDOG_RULE,
    StatusLine,
    live_snapshot,
)
from controller.trial.streams import TrialFiles
from controller.trial.window import StreamedScores, event_ring_rows, window_rows
from hw.board import (
    WIRE_TRUTH_COLUMNS,
    Board,
    BoardError,
    BoardFault,
    BoardRequirements,
    PulseShape,
    describe_info,
)
from hw.openems.driver import OpenEmsFault
from hw.realtime import frozen_heap

#: What the live trial drives: the project's board, or a sensorless stimulator with its
#: replayed recording in the board's shape.
LiveBoard = Board | SplitBackend

#: Why a live trial ended, as ``summary.json`` ``stopped_by`` reports it.
STOP_REASONS = (
    "duration", "source_ended", "interrupted", "link_lost", "board_fault", "host_fault",
    "watchdog_fault", "error",
)


#: Why a loop paced by its source does not measure its lateness, by the clock's kind
#: (``summary.json`` ``timing.not_measured``).
NOT_MEASURED = {
    "board": "the board's stream paces the loop, a sample is due when it arrives; the "
    "host's lag behind the stream is board.link.max_backlog_samples, samples lost on the "
    "link board.link.missing_samples",
    "replay": "the replayed recording paces the loop, a sample is due when it is read, "
    "however late; grid points the recording lacks are board.link.replay_dropouts",
}


class BoardPacedClock:
    """The board's stream is the clock: starting the clock starts the stream, and
    ``read`` blocks where another clock would wait.

    ``begin`` connects to the board (HELLO, the board's checks, START_STREAM). ``start``
    calls it, and the loop calls ``start`` last before its first sample, once it is
    ready (its kernels run once, the heap collected and frozen, the watchdog's monitor
    running): the board's communication timeout runs from its HELLO and its stream fills
    the host's queue from START_STREAM, so nothing slow may come between them and the
    loop's first read and keep-alive. (Connected before that preparation, a host kept off
    the CPU in it for 100 ms ended the trial at 0 s with the board's COMM_TIMEOUT:
    tests/test_hw_start.py.)

    For the deadline accounting, a sample is due when it arrives: ``now`` is the due time
    of the sample being served plus the wall time since the source marked its arrival.
    So the loop's lateness is not measured (``wait_until`` returns NaN, and the summary
    says so, ``not_measured``: it would be zero by construction), nor are missed periods
    (every sample is served); its sensor-to-command latency and overruns measure the
    host's own work, not the source's pace (the link's round trip is
    ``python -m controller.bench.link``'s figure). ``kind`` is ``board`` (the board's
    stream) or ``replay`` (a recording played to a sensorless stimulator).
    """

    def __init__(self, begin: Callable[[], object] | None = None, kind: str = "board") -> None:
        if kind not in NOT_MEASURED:
            raise ValueError(f"kind must be one of {sorted(NOT_MEASURED)}, got {kind!r}")
        self.kind = kind
        self.not_measured = NOT_MEASURED[kind]
        self._begin = begin
        self._due_s = 0.0
        self._arrival = time.perf_counter()

    def start(self) -> None:
        """Start the board's stream (``begin``): the loop is ready for its first sample."""
        if self._begin is not None:
            self._begin()
        self._arrival = time.perf_counter()

    def wait_until(self, t_s: float) -> float:
        """Return at once; the next ``read`` waits for the board's sample, which is due
        when it arrives: how late the loop is cannot be told (NaN)."""
        self._due_s = t_s
        return math.nan

    def arrived(self) -> None:
        """The sample being served has just arrived: it is due now."""
        self._arrival = time.perf_counter()

    def now(self) -> float:
        """The due time of the sample being served plus the time since it arrived."""
        return self._due_s + time.perf_counter() - self._arrival


class LiveSource:
    """The board as the loop's source, ended by the first watchdog fault as well; it
    tells the board-paced clock when each sample arrives, and has ``status`` publish the
    figures of the status line before it waits for the next sample."""

    def __init__(
        self, board: LiveBoard, watchdog: Watchdog, clock: BoardPacedClock, status: LiveStatus
    ) -> None:
        self._board = board
        self._watchdog = watchdog
        self._clock = clock
        self._status = status

    @property
    def sample_period_s(self) -> float:
        return self._board.sample_period_s

    def read(self) -> Sample | None:
        if self._watchdog.latched:
            return None
        self._status.publish()
        sample = self._board.read()
        self._clock.arrived()
        return sample

    def close(self) -> None:
        self._board.close()


class LiveStatus:
    """What the status line shows of a live trial beyond the recorded rows (the
    gyroscope's mounting check, cadence, watchdog faults, the board's link), published
    from the loop's thread.

    ``publish`` copies the figures into ``snapshot`` (``controller.trial.status``'s
    ``LIVE_FIELDS`` in shared memory) without a lock, I/O or a growing buffer; the status
    line sink reads them in the log writer process. The cadence comes from the last
    ``CADENCE_STRIDES`` strides of the instrumented leg (heel strike to heel strike).
    """

    CADENCE_STRIDES = 4

    def __init__(
        self, board: LiveBoard, watchdog: Watchdog, recorder: TrialRecorder,
        detector: GaitDetector, heel_check: weakheel.WeakHeelCheck | None = None,
    ) -> None:
        self.snapshot = live_snapshot()
        self._heel_check = heel_check  # fed the recorded heel force rows as they come
        self._recorder = recorder
        self._heel_rows = 0
        self._detector = detector
        self._board = board
        self._watchdog = watchdog
        self._detected = recorder.detected
        self._seen = 0
        self._strikes_s = np.zeros(self.CADENCE_STRIDES + 1)
        self._strike_count = 0

    def publish(self) -> None:
        """Publish the figures as they are now (the loop calls it once per sample)."""
        detected = self._detected
        while self._seen < len(detected):
            event = detected[self._seen]
            self._seen += 1
            if event.event == Event.HEEL_STRIKE:
                self._strikes_s[self._strike_count % self._strikes_s.size] = event.t_est_s
                self._strike_count += 1
        board, watchdog, stats = self._board, self._watchdog, self._board.stats
        fault, rtt = watchdog.fault, stats.board_rtt_last_ms
        values = self.snapshot.begin()
        values[CADENCE_STEPS_PER_MIN] = self._cadence_steps_per_min()
        values[WATCHDOG_FAULTS] = watchdog.faults
        values[WATCHDOG_RULE] = (
            RULE_NAMES.index(fault.rule)
            if watchdog.latched and fault is not None and fault.rule in RULE_NAMES
            else NO_RULE
        )
        values[LINK_STATE] = (
            0 if board.fault is None else LINK_STATES.index(f"{board.fault.kind} fault")
        )
        values[FRAMES_IN] = stats.frames_in
        values[FRAMES_OUT] = stats.frames_out
        values[BAD_FRAMES] = stats.bad_frames
        values[LOST_FRAMES] = stats.lost_frames
        values[MISSING_SAMPLES] = stats.missing_samples
        values[RESENDS] = stats.resends
        values[NAKS] = stats.naks
        values[BOARD_RTT_LAST_MS] = math.nan if rtt is None else rtt
        values[PULSE_STRETCH_MAX_US] = stats.pulse_stretch_max_us
        mounting = self._detector.mounting
        values[GYRO_MOUNTING] = NO_GYRO_CHECK if mounting is None else mounting
        axis = self._detector.axis
        values[GYRO_AXIS] = NO_GYRO_CHECK if axis is None else axis
        values[GYRO_AXIS_TURNS_MOST] = self._detector.axis_turns_most
        values[HEEL_LOAD], values[HEEL_LOAD_P99_N] = self._heel_load()
        floor = None if self._heel_check is None else self._heel_check.floor_n
        values[HEEL_LOAD_FLOOR_N] = math.nan if floor is None else floor
        self.snapshot.end()

    def _heel_load(self) -> tuple[float, float]:
        """Feed the weak-heel check the heel force rows recorded since the last sample;
        its verdict and figure (NO_HEEL_CHECK without a heel force sensor)."""
        check = self._heel_check
        if check is None:
            return NO_HEEL_CHECK, math.nan
        if check.verdict == weakheel.CHECKING:  # decided: nothing more to read
            recorder = self._recorder
            column = recorder.table[recorder.index["heel_force_n"]]
            while self._heel_rows < recorder.count:
                check.add(float(column[self._heel_rows % recorder.capacity]))
                self._heel_rows += 1
        p99 = check.p99_n
        return check.verdict, math.nan if p99 is None else p99

    def _cadence_steps_per_min(self) -> float:
        """Steps per minute over the last strides (two steps each); NaN before two heel
        strikes."""
        strikes = min(self._strike_count, self._strikes_s.size)
        if strikes < 2:
            return math.nan
        newest = self._strikes_s[(self._strike_count - 1) % self._strikes_s.size]
        oldest = self._strikes_s[(self._strike_count - strikes) % self._strikes_s.size]
        stride_s = (newest - oldest) / (strikes - 1)
        return 120.0 / stride_s if stride_s > 0.0 else math.nan


@dataclass(frozen=True, slots=True)
class LiveResult:
    """A finished live trial: its summary, why it stopped and what to tell the user."""

    summary: dict[str, Any]
    stopped_by: str
    message: str


def warm_up(config: TrialConfig) -> None:
    """Compile (or load from numba's cache) every per-sample kernel of the loop (the
    detector's, the scheduler's, the watchdog's) before the board's communication timer
    starts, so that the first samples are answered in time: on a first run compiling
    takes seconds, far beyond the board's timeout."""
    build_detector(config.detector, config.loop.sample_rate_hz).process(Sample(0.0, 0.0, 0))
    StimScheduler(config.stim).warm_up()
    warm_up_kernels(config.safety.kernel_array(watched_sensors(config)),
                    new_state(output_channels(config)))


#: Said before a long trial against the project's board (``controller.trial.window``).
LONG_TRIAL_NOTICE = (
    "fes run: a trial over {seconds:g} s keeps a window of its rows in memory, not the "
    "trial: the board is not asked for a board emulator's ground truth (docs/cli.md, "
    "\"Long work\")\n"
)
#: Said when compiling the loop's kernels before the board is asked anything outlasts
#: ``COMPILE_NOTICE_AFTER_S`` (a first run after an install).
COMPILE_NOTICE = (
    "compiling the loop's kernels into machine code (first run after an install; later "
    "runs load them from numba's cache; the board is asked nothing before) ..."
)
COMPILE_NOTICE_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """How much the host tolerates from the link before it ends the trial."""

    link_timeout_s: float = 0.1
    max_lag_s: float = 0.1


def pulse_shapes(config: TrialConfig) -> tuple[PulseShape, ...]:
    """The pulse of every active channel at its peak, for the board check at HELLO.

    STIM carries amplitude, pulse width and frequency only (a symmetric pulse with no
    interphase gap); STIM_SHAPED (protocol version 2, docs/protocol.md) adds the gap and
    the anodic width ratio. A board that cannot deliver a channel's shape (a version 1
    board, or a shape beyond its own limits) is refused, naming the field, rather than
    sent a pulse different from what the config says; so is a board whose own limits
    (amplitude, pulse width, frequency, charge per phase) are below the channel's
    settings, rather than left to refuse the first train in the middle of the walk.
    """
    return tuple(
        PulseShape(channel_path(name), ch.interphase_gap_us, ch.anodic_width_ratio,
                   ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz)
        for name, ch in config.stim.active_channels()
    )


def run_live_trial(
    config: TrialConfig,
    backend: BackendSpec | str,
    out_dir: Path,
    status: TextIO | None = None,
    limits: LinkLimits = LinkLimits(),
    overwrite: bool = False,
    data_format: str = "csv",
) -> LiveResult:
    """Connect to the back end (``controller.trial.backends``; a URL is the project's
    board there), run the trial, write its files into ``out_dir`` (empty or new, unless
    ``overwrite``: ``controller.trial.folder``).

    ``status`` gets the status line (from the log writer process) and fault reports;
    None prints no line, and faults go to stderr.

    The output folder is claimed and its files opened before the board is asked
    anything: ``controller.outputs.OutputError`` if they cannot be written. Raises
    ``hw.board.BoardError`` when no board answers or the board is refused (a pulse shape
    it cannot deliver included), and then removes the files it had opened.
    """
    spec = BackendSpec("board", backend) if isinstance(backend, str) else backend
    rate_hz = config.loop.sample_rate_hz
    channel = config.stim.peroneal.channel
    report = status if status is not None else sys.stderr
    # The folder first: a user's unwritable --out is said at once, not after compiling.
    folder = TrialFolder.claim(out_dir, overwrite)
    # On a first run compiling takes tens of seconds: say so, or fes run looks hung.
    try:
        with announced_if_slow(report, COMPILE_NOTICE_AFTER_S, COMPILE_NOTICE,
                               done="compiled"):
            warm_up(config)
    except BaseException:  # Ctrl-C while compiling: no trial took place
        folder.abandon()
        raise
    n_samples = round(config.loop.duration_s * rate_hz)
    # A long trial keeps a window of rows (``controller.trial.window``), scored by the log
    # writer as it writes them; the board emulator's truth would need them all at the
    # end, so a long trial does not ask for it.
    ring = window_rows(n_samples)
    if ring is not None and spec.kind == "board":
        report.write(LONG_TRIAL_NOTICE.format(seconds=2 * ring / rate_hz))
    board: LiveBoard = open_backend(spec) if spec.kind != "board" else Board(
        spec.url,
        BoardRequirements(config.safety, rate_hz, channels=output_channels(config),
                          pulse_shapes=pulse_shapes(config)),
        link_timeout_s=limits.link_timeout_s,
        max_backlog_s=limits.max_lag_s,
        want_truth=ring is None,
        on_bootloader_wait=lambda text: report.write(f"fes run: {text}\n"),
    )
    rows = n_samples if ring is None else ring
    check_fits(rows, numbers_per_sample(config, 0 if ring else len(WIRE_TRUTH_COLUMNS)),
               rate_hz, windowed=ring is not None)
    board.add_fault_listener(lambda fault: _report(report, fault))
    watchdog = Watchdog(board, config.safety, watched_sensors(config))
    recorder = TrialRecorder(rows, channel, recorded_channels(config),
                             event_ring=None if ring is None else event_ring_rows(ring))
    detector = build_detector(config.detector, rate_hz)
    # The mounting checks go together: mount_check_strides = 0 turns off the axis check too.
    checks_axis = config.detector.setup().uses_gyro and (
        config.detector.gyro_config().mount_check_strides > 0
    )
    heel_check = weakheel.for_detector(config.detector, rate_hz)
    live = LiveStatus(board, watchdog, recorder, detector, heel_check)
    kind = "board" if spec.kind == "board" else "replay"
    sinks = [] if status is None else [StatusLine(status, live=live.snapshot, clock=kind)]

    def begin() -> None:
        """Connect: HELLO, the board's checks, START_STREAM; called by the clock's
        ``start`` once the loop is ready for its first sample (``BoardPacedClock``)."""
        board.connect()
        if resent := _off_resent(board, "connect"):
            report.write(f"fes run: every channel off confirmed at connect, the all-off "
                         f"line {resent}\n")
        if checks_axis and isinstance(board, Board) and board.info is not None:
            # The board's SAMPLE carries all three gyro axes: check the one it declares
            # sagittal before anything gait-triggered is stimulated.
            detector.check_axis(board.info.sagittal_axis & 0x03)

    clock = BoardPacedClock(begin, kind)
    parts = TrialParts(
        config=config,
        source=LiveSource(board, watchdog, clock, live),
        detector=detector,
        scheduler=StimScheduler(config.stim),
        watchdog=watchdog,
        clock=clock,
        recorder=recorder,
        deadlines=new_deadlines(config, rows),
        scores=None if ring is None else StreamedScores(
            streamed_columns(config, board.sample_period_s, (), ()), folder.path),
    )
    ending: dict[str, str] = {}

    def run_and_close(parts: TrialParts, n_samples: int) -> LoopOutcome:
        """Run the loop, which connects when it is ready (``begin``), then close the
        board's session at once (STOP_ALL acknowledged, the stream stopped), not after
        the log writer's last pass: a slow terminal must not leave the board without a
        frame until its communication timeout faults it. Connecting is part of the
        trial: Ctrl-C while the board is asked for HELLO ends it as any interruption
        does."""
        try:
            return run_parts(parts, n_samples)
        finally:
            board.close()

    def finish(outcome: LoopOutcome) -> tuple[GroundTruth, dict[str, Any]]:
        board.close()  # closed already, unless the loop never ran
        stopped_by, message = _why_stopped(outcome, board, watchdog)
        ending.update(stopped_by=stopped_by, message=message)
        return _truth(board, parts.recorder.count), {
            "stopped_by": stopped_by,
            "ground_truth": "board emulator debug frames"
            if board.has_truth()
            else "not asked for: a trial of more than two windows of rows keeps a window, "
            "and the emulator's truth is matched to the rows at the end (docs/cli.md)"
            if ring is not None and spec.kind == "board"
            else "absent: a real board reports no true gait events or toe clearance",
            "board": _board_block(board, message),
            "config": spec.describe(),
            # as the status line had it: also when only a window of the rows is kept
            **({"heel_load": heel_check.block()} if heel_check is not None else {}),
        }

    # Everything is built, and the loop prepared, before the board's communication timer
    # starts at HELLO (the loop's clock connects: BoardPacedClock); from then on the
    # garbage collector must not pause the host (hw.realtime).
    try:
        with frozen_heap(), estop_keys(_stdin_fd(), watchdog) as keys:
            if keys:
                report.write("fes run: space or Esc is an emergency stop\n")
            # The files are opened before HELLO: an unwritable output stops the run there.
            # [loop] cpu_index and realtime_priority, when the config sets them, as for
            # fes sim --realtime: the loop runs on this (the main) thread.
            tuned = config.loop.cpu_index >= 0 or config.loop.realtime_priority > 0
            _, summary = run_trial(
                parts, n_samples, lambda: TrialFiles.open(folder, parts, data_format=data_format),
                finish, sinks, realtime=tuned, notes=report, loop=run_and_close,
            )
    except BoardError:
        folder.abandon()  # no trial took place: no trial files
        raise
    finally:
        folder.release()
    return LiveResult(summary, ending["stopped_by"], ending["message"])


def _stdin_fd() -> int | None:
    """The file descriptor of standard input, or None when there is none (closed, or
    replaced by an object without one, as under a test runner)."""
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _report(stream: TextIO, fault: BoardFault | OpenEmsFault) -> None:
    """Say at once what went wrong (from the driver's reader thread), naming its kind
    once: a board's own fault report already begins with "board fault"."""
    kind = f"{fault.kind} fault"
    text = fault.message if fault.message.startswith(kind) else f"{kind}: {fault.message}"
    stream.write(f"fes run: {text}\n")
    stream.flush()


#: The watchdog's wall-clock rules. Their figure (an age against its limit) says which
#: side fell silent, and is shown with the fault: just over the limit, the host ran and
#: heard nothing from the board (the loop waits for its samples); far over it, the
#: host's own process was off the CPU (docs/protocol.md, "On a busy host").
WALL_CLOCK_RULES = tuple(RULE_NAMES[r] for r in (HEARTBEAT_TIMEOUT_MS, SENSOR_TIMEOUT_MS,
                                                 ACK_TIMEOUT_MS))


def _why_stopped(outcome: LoopOutcome, board: LiveBoard, watchdog: Watchdog) -> tuple[str, str]:
    fault = board.fault
    resent = _off_resent(board, "close")
    again = f"; {resent}" if resent else ""
    off = (
        f"outputs off (the board acknowledged {board.off_command}{again})"
        if board.stop_confirmed
        else f"outputs off not confirmed ({board.off_command} sent but not acknowledged, "
        f"{board.stop_attempts} sent): {board.off_without_host}"
    )
    off += _pulses_stretched(board)
    if outcome.stopped_by in ("interrupted", "error"):
        return outcome.stopped_by, off
    latched = watchdog.fault
    if fault is not None and _link_came_first(fault, watchdog):
        # The watchdog's own timeouts (no command from a loop waiting for the board's next
        # sample, no sensor sample, no acknowledgement) were symptoms of the link.
        also = ""
        if latched is not None and watchdog.fault_monotonic_s is not None:
            delay_ms = (watchdog.fault_monotonic_s - fault.since_monotonic_s) * 1e3
            also = (f" (the safety watchdog switched the outputs off {delay_ms:.0f} ms "
                    f"after it began: {latched.rule})")
        return "link_lost", f"{fault.message}{also}; {off}"
    if latched is not None:
        why = latched.rule
        if why in WALL_CLOCK_RULES:
            why += f": {latched.requested}, {latched.detail}"
        return "watchdog_fault", f"safety watchdog fault ({why}); {off}"
    if fault is not None:
        kind = {"link": "link_lost", "board": "board_fault", "host": "host_fault"}[fault.kind]
        return kind, f"{fault.message}; {off}"
    return outcome.stopped_by, off


def _pulses_stretched(board: LiveBoard) -> str:
    """What the board reported of pulses that ran long (its pulse engine armed a phase's
    end late and forced the line off: hw.protocol.Status.pulse_stretch_us), as the
    terminal says it; empty when every phase ended on time."""
    stats = board.stats
    if not stats.pulse_stretch_max_us > 0.0:
        return ""
    return (f"; the board reported PULSES STRETCHED in {stats.stretched_statuses} STATUS "
            f"frames (100 ms each): a phase ran up to {stats.pulse_stretch_max_us:.1f} us "
            "past its planned end")


def _off_resent(board: LiveBoard, when: str) -> str:
    """How often openEMSstim's all-off line was sent again at ``connect`` or ``close``
    because its echo was garbled or missing (its link counters), as the terminal says
    it; empty when it was not (and for the other boards, which have no such count)."""
    resent = int(board.stats.as_dict().get(f"all_off_resends_at_{when}") or 0)
    if not resent:
        return ""
    echoes = "echo" if resent == 1 else "echoes"
    return f"sent {resent + 1} times, {resent} {echoes} garbled or missing before it"


def _link_came_first(fault: BoardFault | OpenEmsFault, watchdog: Watchdog) -> bool:
    """True when the trial's first cause is the link: a link fault whose trouble began
    (the board's last frame or new sample, the oldest unanswered command) before the
    watchdog latched anything. A link fault declared 100 ms into a silence is still the
    cause of the heartbeat fault the watchdog latched 20 ms into it."""
    if fault.kind != "link":
        return False
    latched_s = watchdog.fault_monotonic_s
    return latched_s is None or fault.since_monotonic_s <= latched_s


def _truth(board: LiveBoard, samples: int) -> GroundTruth:
    if not board.has_truth():
        return GroundTruth()
    columns, events = board.truth(samples)
    return GroundTruth(columns, events)


def _board_block(board: LiveBoard, message: str) -> dict[str, Any]:
    stats = board.stats.as_dict()
    block: dict[str, Any] = {
        "link": {k: v for k, v in stats.items() if v is not None},
        "fault": board.fault.message if board.fault is not None else None,
        # when the fault's trouble began (as far as the driver can tell) and when it
        # was declared, on the host's monotonic clock (a board's log can be set beside it)
        "fault_since_monotonic_s": board.fault.since_monotonic_s if board.fault else None,
        "fault_monotonic_s": board.fault.monotonic_s if board.fault else None,
        "outputs_off_confirmed": board.stop_confirmed,
        "stop_all_sent": board.stop_attempts,
        "ending": message,
    }
    if board.info is not None:
        block["info"] = describe_info(board.info)
    return block
