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
- A one-line status (phase, cadence, stimulation, faults, link) is written while the
  trial runs: rewritten in place on a terminal, once a second otherwise.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from controller.config import TrialConfig
from controller.detect.config import build_detector
from controller.detect.events import PHASE_NAMES, DetectedEvent, Event, Phase
from controller.loop import LoopOutcome
from controller.ports import Sample, StimCommand
from controller.safety.estop import estop_keys
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import channel_path
from controller.trial.recorder import TrialRecorder
from controller.trial.session import (
    GroundTruth,
    TrialParts,
    new_deadlines,
    output_channels,
    recorded_channels,
    run_trial,
)
from controller.watchdog import Watchdog
from hw.board import Board, BoardFault, BoardRequirements, PulseShape, describe_info
from hw.realtime import frozen_heap

#: Why a live trial ended, as ``summary.json`` ``stopped_by`` reports it.
STOP_REASONS = (
    "duration", "interrupted", "link_lost", "board_fault", "host_fault", "watchdog_fault",
    "error",
)


class BoardPacedClock:
    """The board's stream is the clock: nothing to wait for, ``read`` blocks instead.

    For the deadline accounting, a sample is due when it arrives: ``now`` is the due time
    of the sample being served plus the wall time since the source marked its arrival.
    So the loop's lateness is zero by construction and its sensor-to-command latency and
    overruns measure the host's own work, not the board's pace (the link's round trip is
    ``python -m hw.bench``'s figure).
    """

    kind = "board"

    def __init__(self) -> None:
        self._due_s = 0.0
        self._arrival = time.perf_counter()

    def start(self) -> None:
        """Nothing to start: the board started streaming at connection."""
        self._arrival = time.perf_counter()

    def wait_until(self, t_s: float) -> float:
        """Return at once, on time; the next ``read`` waits for the board's sample."""
        self._due_s = t_s
        return 0.0

    def arrived(self) -> None:
        """The sample being served has just arrived: it is due now."""
        self._arrival = time.perf_counter()

    def now(self) -> float:
        """The due time of the sample being served plus the time since it arrived."""
        return self._due_s + time.perf_counter() - self._arrival


class LiveSource:
    """The board as the loop's source, ended by the first watchdog fault as well; it
    tells the board-paced clock when each sample arrives."""

    def __init__(self, board: Board, watchdog: Watchdog, clock: BoardPacedClock) -> None:
        self._board = board
        self._watchdog = watchdog
        self._clock = clock

    @property
    def sample_period_s(self) -> float:
        return self._board.sample_period_s

    def read(self) -> Sample | None:
        if self._watchdog.latched:
            return None
        sample = self._board.read()
        self._clock.arrived()
        return sample

    def close(self) -> None:
        self._board.close()


class StatusLine:
    """The trial at a glance: time, phase, cadence, stimulation, faults, link."""

    def __init__(self, stream: TextIO | None, board: Board, watchdog: Watchdog) -> None:
        self._stream = stream
        self._board = board
        self._watchdog = watchdog
        self._tty = bool(stream is not None and stream.isatty())
        self._every_s = 0.2 if self._tty else 1.0
        self._next_s = 0.0
        self._heel_strikes: list[float] = []
        self._amplitude_ma = 0.0

    def update(
        self,
        sample: Sample,
        phase: Phase,
        delivered: Sequence[StimCommand],
        detected: Sequence[DetectedEvent],
        channel: int,
    ) -> None:
        """Take one sample's row into account; write the line when it is due."""
        self._heel_strikes += [d.t_est_s for d in detected if d.event == Event.HEEL_STRIKE]
        del self._heel_strikes[:-5]
        for command in delivered:
            if command.channel == channel:
                self._amplitude_ma = command.amplitude_ma if command.delivers else 0.0
        now = time.monotonic()
        if self._stream is None or now < self._next_s:
            return
        self._next_s = now + self._every_s
        self._write(self.text(sample.t_s, phase))

    def cadence_steps_per_min(self) -> float | None:
        """Steps per minute from the last strides of the instrumented leg."""
        if len(self._heel_strikes) < 2:
            return None
        stride_s = (self._heel_strikes[-1] - self._heel_strikes[0]) / (
            len(self._heel_strikes) - 1
        )
        return 120.0 / stride_s if stride_s > 0 else None

    def text(self, t_s: float, phase: Phase) -> str:
        """The status line."""
        cadence = self.cadence_steps_per_min()
        stats = self._board.stats
        link = "ok" if self._board.fault is None else self._board.fault.kind + " fault"
        rtt = stats.board_rtt_last_ms
        return (
            f"t {t_s:7.1f} s | {PHASE_NAMES[phase]:9s} | cadence "
            f"{'--' if cadence is None else f'{cadence:.0f}'} steps/min | stim "
            f"{self._amplitude_ma:4.1f} mA | faults {self._watchdog.faults} | link {link}"
            f"{'' if rtt is None else f', rtt {rtt:.1f} ms'}, lost {stats.missing_samples}"
        )

    def _write(self, text: str) -> None:
        assert self._stream is not None
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def end(self) -> None:
        """Finish the line on a terminal so that later messages start on their own."""
        if self._tty and self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()


class _StatusRecorder(TrialRecorder):
    """The trial recorder, also feeding the status line."""

    def __init__(
        self,
        capacity: int,
        channel: int,
        extra_channels: Mapping[str, int],
        status: StatusLine | None = None,
    ) -> None:
        super().__init__(capacity, channel, extra_channels)
        self.status = status

    def record(
        self,
        sample: Sample,
        phase: Phase,
        delivered: Sequence[StimCommand],
        detected: Sequence[DetectedEvent],
    ) -> None:
        super().record(sample, phase, delivered, detected)
        if self.status is not None:
            self.status.update(sample, phase, delivered, detected, self.channel)


@dataclass(frozen=True, slots=True)
class LiveResult:
    """A finished live trial: its summary, why it stopped and what to tell the user."""

    summary: dict[str, Any]
    stopped_by: str
    message: str


def warm_up(config: TrialConfig) -> None:
    """Compile (or load from numba's cache) the detector's kernel before the board's
    communication timer starts, so that the first samples are answered in time."""
    build_detector(config.detector, config.loop.sample_rate_hz).process(Sample(0.0, 0.0, 0))


@dataclass(frozen=True, slots=True)
class LinkLimits:
    """How much the host tolerates from the link before it ends the trial."""

    link_timeout_s: float = 0.1
    max_lag_s: float = 0.1


def pulse_shapes(config: TrialConfig) -> tuple[PulseShape, ...]:
    """The pulse shape of every active channel, for the board check at HELLO.

    STIM carries amplitude, pulse width and frequency only (a symmetric pulse with no
    interphase gap); STIM_SHAPED (protocol version 2, docs/protocol.md) adds the gap and
    the anodic width ratio. A board that cannot deliver a channel's shape (a version 1
    board, or a shape beyond its own limits) is refused, naming the field, rather than
    sent a pulse different from what the config says.
    """
    return tuple(
        PulseShape(channel_path(name), ch.interphase_gap_us, ch.anodic_width_ratio)
        for name, ch in config.stim.active_channels()
    )


def run_live_trial(
    config: TrialConfig,
    url: str,
    out_dir: Path,
    status: TextIO | None = None,
    limits: LinkLimits = LinkLimits(),
) -> LiveResult:
    """Connect to the board at ``url``, run the trial, write its files.

    Raises ``hw.board.BoardError`` when no board answers or the board is refused (a
    pulse shape it cannot deliver included), before any file is written.
    """
    rate_hz = config.loop.sample_rate_hz
    channel = config.stim.peroneal.channel
    warm_up(config)
    board = Board(
        url,
        BoardRequirements(config.safety, rate_hz, channels=output_channels(config),
                          pulse_shapes=pulse_shapes(config)),
        link_timeout_s=limits.link_timeout_s,
        max_backlog_s=limits.max_lag_s,
    )
    n_samples = round(config.loop.duration_s * rate_hz)
    report = status if status is not None else sys.stderr
    board.add_fault_listener(lambda fault: _report(report, fault))
    watchdog = Watchdog(board, config.safety)
    line = StatusLine(status, board, watchdog)
    clock = BoardPacedClock()
    parts = TrialParts(
        config=config,
        source=LiveSource(board, watchdog, clock),
        detector=build_detector(config.detector, rate_hz),
        scheduler=StimScheduler(config.stim),
        watchdog=watchdog,
        clock=clock,
        recorder=_StatusRecorder(n_samples, channel, recorded_channels(config), line),
        deadlines=new_deadlines(config, n_samples),
    )
    ending: dict[str, str] = {}

    def finish(outcome: LoopOutcome) -> tuple[GroundTruth, dict[str, Any]]:
        board.close()
        line.end()
        stopped_by, message = _why_stopped(outcome, board, watchdog)
        ending.update(stopped_by=stopped_by, message=message)
        return _truth(board, parts.recorder.count), {
            "stopped_by": stopped_by,
            "ground_truth": "board emulator debug frames"
            if board.has_truth()
            else "absent: a real board reports no true gait events or toe clearance",
            "board": _board_block(board, message),
            "config": {"port": url},
        }

    # Everything is built before the board's communication timer starts at HELLO; from
    # then on the garbage collector must not pause the host (hw.realtime).
    with frozen_heap(), estop_keys(_stdin_fd(), watchdog) as keys:
        if keys:
            report.write("fes run: space or Esc is an emergency stop\n")
        board.connect()
        _, summary = run_trial(parts, n_samples, out_dir, finish)
    return LiveResult(summary, ending["stopped_by"], ending["message"])


def _stdin_fd() -> int | None:
    """The file descriptor of standard input, or None when there is none (closed, or
    replaced by an object without one, as under a test runner)."""
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _report(stream: TextIO, fault: BoardFault) -> None:
    """Say at once what went wrong (from the driver's reader thread)."""
    stream.write(f"\nfes run: {fault.kind} fault: {fault.message}\n")
    stream.flush()


def _why_stopped(outcome: LoopOutcome, board: Board, watchdog: Watchdog) -> tuple[str, str]:
    fault = board.fault
    off = (
        "outputs off (the board acknowledged STOP_ALL)"
        if board.stop_confirmed
        else "STOP_ALL sent but not acknowledged: the board's own communication timeout "
        "switches its outputs off"
    )
    if outcome.stopped_by in ("interrupted", "error"):
        return outcome.stopped_by, off
    if watchdog.fault is not None:
        rule = watchdog.fault.rule
        return "watchdog_fault", f"safety watchdog fault ({rule}); {off}"
    if fault is not None:
        kind = {"link": "link_lost", "board": "board_fault", "host": "host_fault"}[fault.kind]
        return kind, f"{fault.message}; {off}"
    return outcome.stopped_by, off


def _truth(board: Board, samples: int) -> GroundTruth:
    if not board.has_truth():
        return GroundTruth()
    columns, events = board.truth(samples)
    return GroundTruth(columns, events)


def _board_block(board: Board, message: str) -> dict[str, Any]:
    stats = board.stats.as_dict()
    block: dict[str, Any] = {
        "link": {k: v for k, v in stats.items() if v is not None and not _nan(v)},
        "fault": board.fault.message if board.fault is not None else None,
        "outputs_off_confirmed": board.stop_confirmed,
        "ending": message,
    }
    if board.info is not None:
        block["info"] = describe_info(board.info)
    return block


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
