"""The board driver: a ``SensorSource`` and a ``Stimulator`` over the serial protocol.

``Board(url, requirements).connect()`` opens the port, says HELLO, checks what the board
reports (firmware known, protocol version, its own limits no looser than the safety
watchdog's, sample rate, channels) and starts the sample stream; a board that fails a
check is refused with a message naming each problem. Then the loop uses it like the
simulated limb: ``read`` returns the board's samples in order (a lost sample comes back
as a sample with every sensor NaN, so the loop keeps its fixed period; a heel switch
sample the board flags lost is NaN too), ``apply`` sends the
channels whose command changed, and ``stop_all`` sends STOP_ALL.

A reader thread decodes everything the board sends. It declares the link lost when the
port fails (unplugged), when no valid frame has arrived for ``link_timeout_s``, when
a command has gone unacknowledged that long (the board stopped acknowledging), or when
no new sample has come that long (a board that sends STATUS and ACKs but no SAMPLE, or
that numbers its samples from 0 again), and the board faulted when it reports a fault
or refuses a command. Each fault records when its trouble began (the last frame, the
last new sample, the oldest unanswered command), so that a trial can name its first
cause. Silence is measured in time
the reader has spent listening (``LISTEN_STEP_S``), so that a pause of the host's own
process is not taken for a silent board. The first fault ends the stream (``read``
returns None), is kept in ``fault``, and is passed to every listener registered with
``add_fault_listener`` (from the reader thread, at once), so that a watchdog timer can
act on it without waiting for the loop. A STIM or STOP_ALL not acknowledged within
``resend_after_s`` is followed by the full state of every channel, so the board's
outputs converge on what the host wants over a lossy link. An ACK confirms only the
latest frame sent with its sequence number and type (``Sent``): sequence numbers are 8
bits, and an ACK of a frame 256 frames older must never confirm a new one.

Keep-alive: the board switches every output off when it hears nothing valid for its
communication timeout. The driver sends nothing on its own: a HEARTBEAT goes out from
``apply`` when nothing else was sent for ``heartbeat_s`` (a quarter of the board's
timeout by default), counted both in wall time and in board time (samples), and from
``read`` after half the board's timeout, for a user who only reads the sensors. Both run
in the loop's thread, so a hung loop lets the board time out, as it should. (``read``
waits longer so that in a loop the frame answering a sample comes from ``apply``, after
the sample has been processed: that is the round trip the board measures.)
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Protocol

import numpy as np

from controller.events import EVENT_NAMES, Event
from controller.ports import Sample, StimCommand, check_commands
from hw import protocol as p
from hw import stk500v2
from hw.transport import Link, Transport, TransportError, link_name, open_link

#: Firmware versions this driver knows, with what they are. Anything else is refused.
KNOWN_FIRMWARE: dict[tuple[int, int, int], str] = {
    (1, 0, 0): "reference firmware of docs/protocol.md v1 (hw.firmware, the emulator "
    "with --protocol-version 1): symmetric pulses only",
    (1, 1, 0): "reference firmware of docs/protocol.md v2 (hw.firmware, the emulator): "
    "speaks versions 1 and 2, pulse shapes",
    (2, 0, 0): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): speaks versions 1 "
    "to 3 (3: 1 000 000 baud), pulse shapes; bytes lost to a full receive buffer are not "
    "acted on (2.0.1 switches every output off)",
    (2, 0, 1): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): speaks versions 1 "
    "to 3 (3: 1 000 000 baud), pulse shapes, every output off where received bytes were "
    "lost (docs/protocol.md section 3); a sample without a gyro reading goes out as heel "
    "off at 0 N (2.1.0 sends the heel switch and force it read), and a current rounded to "
    "the nearest DAC count, up to 10 uA above the setting (2.1.0 rounds down)",
    (2, 1, 0): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): speaks versions 1 "
    "to 3 (3: 1 000 000 baud), pulse shapes, every output off where received bytes were "
    "lost (docs/protocol.md section 3), a lost heel switch sample flagged as such (its "
    "heel fault line), a sample without a gyro reading sent with the heel switch and "
    "force it read, and the cathodic current rounded down to a DAC count, never above the "
    "setting; no charge limit of its own (amplitude x width limits only), and a phase "
    "under 4 us lengthened to 4 us (2.2.0 delivers nothing)",
    (2, 2, 0): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.1.0 and "
    "protocol version 4: its own charge-per-phase limit (INFO, ACK OVER_CHARGE) and "
    "duty-cycle limit over 10 s (INFO, FAULT DUTY), a pulse width under 4 us delivers "
    "nothing; its duty count misses a millisecond whose tick its busy main loop did not "
    "see (3 % of the on-time with the truth relay; 2.2.1 counts every millisecond)",
    (2, 2, 1): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.0 with a duty "
    "count of every millisecond, a tick its main loop missed included; its communication "
    "timeout counts from when it takes a frame from its receive buffer, so a frame that "
    "waited there behind a burst keeps the outputs on that much longer (5 ms after a "
    "247-byte burst in simavr; 2.2.2 counts from the frame's arrival)",
    (2, 2, 2): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.1 with the "
    "communication timeout counted from the arrival of the last frame that kept the "
    "session alive (its receive interrupt stamps each frame's delimiter), also after a "
    "burst; on a real chip it loses host bytes (data overrun of the 2-byte receive FIFO) "
    "while its pulse engine or its pulse planning holds interrupts off: 4 bytes lost, 3 "
    "frames damaged in 10 s of the heaviest traffic at the real byte time (2.2.3: none)",
    (2, 2, 3): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.2 whose pulse "
    "engine and pulse planning read the host's receiver while interrupts are off, so no "
    "host byte waits in the chip's 2-byte receive FIFO long enough to be overrun; "
    "tests/test_avr_*.py run it in simavr at the chip's byte time. It never reads the "
    "receiver's data-overrun and frame-error flags (DOR0, FE0): a byte its chip loses "
    "all the same only damages a frame, the outputs stay on and the host is not told, "
    "and bytes lost to a full receive buffer switch the outputs off unannounced until the "
    "next STIM (2.2.4: FAULT RX_LOST for both)",
    (2, 2, 4): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.3 that reads "
    "its receiver's DOR0 and FE0 before each byte, and ends the session with every "
    "output off and FAULT RX_LOST (code 5) where host bytes were lost, to its chip or to "
    "a full receive buffer (docs/protocol.md section 3); its ADC interrupt only copies the "
    "raw reading, and its pulse engine and clock interrupt read the host's receiver "
    "between a DAC word's two bytes and after each planning step, so a host byte waited "
    "at most 10.8-14.1 us in its 2-byte receive FIFO in simavr (2.2.3: 17.8-18.8 us, "
    "once 21.8 us and a byte lost with the truth relay; docs/hardware.md, Budgets). Its "
    "pulse engine armed a 4 us anodic phase's end about 11 cycles before the edge: 12 "
    "cycles later (a host byte and a debug byte polled just before, or a build that "
    "calls its wait) the line stayed on until Timer1 came round, through every following "
    "pulse of the train; and its recovery phase could carry up to 0.05 uC more than the "
    "charge-per-phase limit (anodic current rounded to the nearest DAC step)",
    (2, 2, 5): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.4 whose "
    "pulse engine arms a phase's end 24-27 cycles ahead even for 4 us phases (no poll of "
    "the receivers may run into its last approach), forces a line whose edge it armed "
    "too late low at once (FOC1x) and ends every pulse with both phase lines forced low; "
    "and whose recovery phase never carries more charge than the leading one (anodic "
    "current rounded down: short by under one 20 uA step over the anodic width). A host "
    "frame whose last byte its chip lost sits unrecognised until the host's next byte "
    "(a STOP_ALL missing its delimiter leaves the outputs on up to a heartbeat), and a "
    "phase it forced off late is seen only on the pins (2.2.6 reports both); a pulse "
    "that misses its preparation deadline while a host's burst is served is planned "
    "again as late, for as long as the burst lasts (2.2.6 gives it twice the lead)",
    (2, 2, 6): "AVR firmware of hw/avr (ATmega2560, Arduino Mega 2560): 2.2.5 that takes "
    "a host frame collected in part whose next byte has not come for 5 ms for a loss "
    "(every output off, FAULT RX_LOST; the chip flags a lost byte only with the next), "
    "and reports in STATUS (state bits 2-7) the most a pulse phase ran past its planned "
    "end where its pulse engine forced the line off late; its pulse engine reads the "
    "host's receiver into a side buffer in an edge's last approach (longest host byte "
    "wait 12.2-14.2 us in simavr, 2.2.5 up to 16.4 us), and plans a pulse that missed "
    "its preparation deadline again with twice the lead, not at once",
    (1, 2, 0): "reference firmware of docs/protocol.md v4 (hw.firmware, the emulator): "
    "speaks versions 1 to 4, pulse shapes, its own charge-per-phase and duty-cycle limits",
}
#: The laxest board communication timeout accepted: stricter than RehaStim 2 (about
#: 1 s) and ScienceMode 4 (2 s) (DESIGN.md).
MAX_BOARD_COMM_TIMEOUT_MS = 500
#: Handshake: HELLO is sent this many times, waiting this long for INFO each time.
HELLO_ATTEMPTS = 3
HELLO_WAIT_S = 0.3
#: A board on a serial device that did not answer its first HELLO may be an Arduino Mega
#: that the open reset into its STK500v2 bootloader: the driver signs on to it at 115 200
#: baud and tells it to start the firmware (``hw.stk500v2``). When no bootloader answers
#: that way it is given this long in silence instead, then HELLO again: Arduino's
#: bootloader catches bytes that come within 0.83 s of the reset, then starts the
#: firmware only 5.0 s after the last one (docs/hardware.md, "Auto-reset";
#: tests/test_avr_flash.py); 6 s leaves 1 s to spare. 0: no bootloader is looked for.
BOOTLOADER_QUIET_S = 6.0
#: The reader thread's clock of time spent listening advances by at most this much per
#: read. When the host itself was not running (its process or machine paused), the board
#: may well have been sending: a pause is not silence, and must not end a trial.
LISTEN_STEP_S = 0.02
#: Closing: STOP_ALL and STOP_STREAM are sent again every ``CLOSE_RESEND_S`` until
#: acknowledged, for at most ``CLOSE_WAIT_S``.
CLOSE_WAIT_S = 0.5
CLOSE_RESEND_S = 0.05

FaultKind = Literal["link", "board", "host"]



#: The simulator's truth columns a TRUTH_SAMPLES row carries (docs/protocol.md section
#: 8); the physiology columns added since (foot slap, fitness, reflex) stay simulator-only.
WIRE_TRUTH_COLUMNS = ("ankle_angle_deg", "toe_clearance_mm", "ta_activation", "pulses")

class BoardError(Exception):
    """The board cannot be used: ``kind`` is ``no_board`` or ``refused``."""

    def __init__(self, kind: Literal["no_board", "refused"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class PulseShape:
    """The pulse a channel of the trial asks for at its peak, with the config path that
    says so (``stim.peroneal``): a board that cannot deliver it (its shape, or a setting
    beyond the board's own limits) is refused, naming the field."""

    path: str
    interphase_gap_us: float
    anodic_width_ratio: float
    amplitude_ma: float
    pulse_width_us: float
    frequency_hz: float


class HostLimits(Protocol):
    """The host's limits a board's own must be no looser than: the safety watchdog's
    ``controller.safety.SafetyLimits`` is one (the driver names only what it compares,
    so the back end does not depend on the watchdog)."""

    @property
    def max_amplitude_ma(self) -> float: ...
    @property
    def max_pulse_width_us(self) -> float: ...
    @property
    def max_frequency_hz(self) -> float: ...
    @property
    def max_continuous_on_ms(self) -> float: ...
    @property
    def max_charge_per_phase_uc(self) -> float: ...
    @property
    def max_duty_cycle(self) -> float: ...
    @property
    def max_interphase_gap_us(self) -> float: ...
    @property
    def max_anodic_width_ratio(self) -> float: ...


@dataclass(frozen=True, slots=True)
class BoardRequirements:
    """What the host needs of a board before it will stimulate through it."""

    limits: HostLimits
    sample_rate_hz: float
    channels: int = 1
    pulse_shapes: tuple[PulseShape, ...] = ()


@dataclass(frozen=True, slots=True)
class BoardFault:
    """Why the stream ended: a lost link, a fault the board reported, or the host.

    ``monotonic_s`` is when the driver declared it, ``since_monotonic_s`` when the
    trouble began as far as the driver can tell: the board's last valid frame for a
    silent link, its last new sample for a stream that stopped, the oldest unanswered
    command for a board that stopped acknowledging; the declaration itself otherwise.
    (A trial's first cause is the fault that began first, not the first one declared.)"""

    kind: FaultKind
    message: str
    monotonic_s: float
    since_monotonic_s: float


@dataclass(slots=True)
class LinkStats:
    """Counters of the link, for the trial summary and the status line."""

    frames_in: int = 0
    bad_frames: int = 0
    lost_frames: int = 0
    samples: int = 0
    missing_samples: int = 0
    stale_samples: int = 0
    frames_out: int = 0
    resends: int = 0
    #: Commands not sent at once because the board had not yet answered
    #: ``protocol.COMMAND_WINDOW_BYTES`` of earlier frames (sent when it had).
    held_back: int = 0
    naks: int = 0
    board_rtt_last_ms: float | None = None
    board_rtt_max_ms: float = 0.0
    max_backlog_samples: int = 0
    #: STATUS frames reporting a pulse phase that ran past its planned end (the board's
    #: pulse engine forced it off late; one STATUS covers up to 100 ms of pulses), and
    #: the most any phase may have run long, in microseconds (Status.pulse_stretch_us).
    stretched_statuses: int = 0
    pulse_stretch_max_us: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters by name."""
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class Sent:
    """One frame this host sent: its type, when (in listening time), and the board's
    answer once an ACK for it came (None before). A sequence number is only 8 bits, so
    each transmission has its own record: an ACK updates the record of the latest frame
    sent with its sequence number and type, never one of 256 frames earlier."""

    type: int
    listen_s: float
    monotonic_s: float
    wire_bytes: int
    code: int | None = None

    @property
    def confirmed(self) -> bool:
        """True once the board acknowledged this very frame as done (ACK OK)."""
        return self.code == p.AckCode.OK


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """The link at a glance, for a watchdog that polls it."""

    acknowledging: bool
    last_frame_age_s: float
    oldest_unacked_age_s: float
    fault: BoardFault | None


def check_board(info: p.Info, req: BoardRequirements) -> list[str]:
    """Every reason not to stimulate through the board that sent ``info``."""
    problems = []
    if info.protocol_version not in p.PROTOCOL_VERSIONS:
        spoken = ", ".join(map(str, p.PROTOCOL_VERSIONS))
        problems.append(f"protocol version {info.protocol_version}, this host speaks {spoken}")
    if info.firmware not in KNOWN_FIRMWARE:
        known = ", ".join(".".join(map(str, v)) for v in KNOWN_FIRMWARE)
        problems.append(
            f"firmware {'.'.join(map(str, info.firmware))} is unknown (known: {known})"
        )
    lim = req.limits
    for name, board_value, host_field in (
        ("max amplitude", info.max_amplitude_10ua * p.AMPLITUDE_UNIT_MA, "max_amplitude_ma"),
        ("max pulse width", float(info.max_pulse_width_us), "max_pulse_width_us"),
        ("max frequency", info.max_frequency_chz * p.FREQUENCY_UNIT_HZ, "max_frequency_hz"),
        ("max continuous on-time", float(info.max_on_time_ms), "max_continuous_on_ms"),
        ("max interphase gap", float(info.max_interphase_gap_us), "max_interphase_gap_us"),
        ("max anodic width ratio", info.max_anodic_ratio_x100 * p.RATIO_UNIT,
         "max_anodic_width_ratio"),
    ):
        host_value = getattr(lim, host_field)
        if board_value > host_value + 1e-9:
            problems.append(
                f"board {name} {board_value:g} is looser than safety.{host_field} "
                f"{host_value:g}"
            )
    problems += _charge_problems(info, lim)
    if info.max_duty_permille is not None:
        problems += _duty_problems(info.max_duty_permille, lim.max_duty_cycle)
    if info.comm_timeout_ms > MAX_BOARD_COMM_TIMEOUT_MS:
        problems.append(
            f"board communication timeout {info.comm_timeout_ms} ms is longer than "
            f"{MAX_BOARD_COMM_TIMEOUT_MS} ms"
        )
    if info.comm_timeout_ms == 0:
        problems.append(
            "board communication timeout 0 ms: it would never switch its outputs off on "
            f"its own when the host falls silent (allowed: 1-{MAX_BOARD_COMM_TIMEOUT_MS} ms)"
        )
    if info.gyro_full_scale_dps == 0:
        problems.append("gyroscope full scale 0 deg/s: no angular rate can be read")
    if info.sagittal_axis & 0x7F > 2:
        problems.append(
            f"sagittal axis {info.sagittal_axis & 0x7F} is not x, y or z (0, 1 or 2, "
            "+128 for a reversed sign)"
        )
    if info.sample_rate_hz != req.sample_rate_hz:
        problems.append(
            f"board samples at {info.sample_rate_hz} Hz, the trial needs "
            f"loop.sample_rate_hz = {req.sample_rate_hz:g}"
        )
    if info.channels < req.channels:
        problems.append(f"board has {info.channels} channels, the trial needs {req.channels}")
    for shape in req.pulse_shapes:
        problems += _shape_problems(info, shape) + _setting_problems(info, shape)
    return problems


def _setting_problems(info: p.Info, shape: PulseShape) -> list[str]:
    """The channel's settings beyond the board's own limits (a board stricter than the
    trial's ``[safety]``, as one whose EEPROM lowered them): the board would refuse the
    channel's first train at its peak (ACK ``OVER_*``) and end the trial as a board fault
    seconds into the walk; refused at HELLO instead, naming the field."""
    problems = [
        f"{shape.path}.{field} {value:g} is beyond the board's max {name} {limit:g} {unit}"
        for field, value, name, limit, unit in (
            ("amplitude_ma", shape.amplitude_ma, "amplitude",
             info.max_amplitude_10ua * p.AMPLITUDE_UNIT_MA, "mA"),
            ("pulse_width_us", shape.pulse_width_us, "pulse width",
             float(info.max_pulse_width_us), "us"),
            ("frequency_hz", shape.frequency_hz, "frequency",
             info.max_frequency_chz * p.FREQUENCY_UNIT_HZ, "Hz"),
        )
        if value > limit + 1e-9
    ]
    charge_uc = shape.amplitude_ma * shape.pulse_width_us / 1000.0
    if not problems and info.max_charge_cuc and charge_uc > info.board_charge_limit_uc + 1e-9:
        problems.append(
            f"{shape.path}: charge per phase of {shape.amplitude_ma:g} mA x "
            f"{shape.pulse_width_us:g} us is {charge_uc:.4g} uC, beyond the board's max "
            f"charge per phase {info.board_charge_limit_uc:g} uC: lower the channel's "
            "amplitude or pulse width, or raise the board's limit (make eeprom "
            "MAX_CHARGE_PER_PHASE_UC=..., docs/hardware.md)"
        )
    return problems


def _charge_problems(info: p.Info, lim: HostLimits) -> list[str]:
    """The board's charge per phase against the watchdog's: its own limit (protocol
    version 4) or, for a board without one, its amplitude limit x its pulse width limit,
    must be no looser than ``safety.max_charge_per_phase_uc``."""
    if info.max_charge_cuc == 0:
        return ["board max charge per phase 0 uC: it would refuse every pulse"]
    board_uc, host_uc = info.board_charge_limit_uc, lim.max_charge_per_phase_uc
    if board_uc <= host_uc + 1e-9:
        return []
    if info.max_charge_cuc is None:
        return [
            f"board max charge per phase {board_uc:g} uC (its max amplitude x max pulse "
            f"width: protocol version {info.protocol_version} boards have no charge limit "
            f"of their own) is looser than safety.max_charge_per_phase_uc {host_uc:g}: lower "
            "the board's amplitude or pulse width limit (make eeprom, docs/hardware.md) "
            f"or use a board of protocol version {p.CHARGE_LIMIT_VERSION}"
        ]
    return [
        f"board max charge per phase {board_uc:g} uC is looser than "
        f"safety.max_charge_per_phase_uc {host_uc:g}"
    ]


def _duty_problems(permille: int, host_duty: float) -> list[str]:
    """A version 4 board's duty-cycle limit against ``safety.max_duty_cycle``: no looser,
    and not 0. (A board of versions 1 to 3 has none: the host's watchdog is then the only
    layer for the duty cycle, as it always was for such a board.)"""
    board_duty = permille * p.DUTY_UNIT
    if permille == 0:
        return ["board max duty cycle 0: it would fault at the first pulse"]
    if board_duty > host_duty + 1e-9:
        return [f"board max duty cycle {board_duty:g} is looser than safety.max_duty_cycle "
                f"{host_duty:g}"]
    return []


def _shape_problems(info: p.Info, shape: PulseShape) -> list[str]:
    """Why the board cannot deliver ``shape``: it speaks no pulse shape (protocol version
    1), or the shape is beyond its own limits (INFO of version 2)."""
    gap, ratio = shape.interphase_gap_us, shape.anodic_width_ratio
    if not info.shaped_pulses:
        why = (
            f"the board speaks protocol version {info.protocol_version}, whose STIM carries "
            "symmetric pulses without a gap only"
        )
        return [
            f"{shape.path}.{name} {value:g}: {why} (allowed: {allowed:g}; a board of "
            f"protocol version {p.SHAPED_PULSES_VERSION} carries the shape)"
            for name, value, allowed in (
                ("anodic_width_ratio", ratio, 1.0),
                ("interphase_gap_us", gap, 0.0),
            )
            if value != allowed
        ]
    problems = []
    if gap > info.max_interphase_gap_us:
        problems.append(
            f"{shape.path}.interphase_gap_us {gap:g} is beyond the board's max interphase "
            f"gap {info.max_interphase_gap_us} us"
        )
    board_ratio = info.max_anodic_ratio_x100 * p.RATIO_UNIT
    if ratio > board_ratio + 1e-9:
        problems.append(
            f"{shape.path}.anodic_width_ratio {ratio:g} is beyond the board's max anodic "
            f"width ratio {board_ratio:g}"
        )
    return problems


def describe_info(info: p.Info) -> dict[str, Any]:
    """What the board reported at HELLO, in physical units (for the summary)."""
    return {
        "firmware": ".".join(map(str, info.firmware)),
        "protocol_version": info.protocol_version,
        "board_id": info.board_id,
        "channels": info.channels,
        "sample_rate_hz": info.sample_rate_hz,
        "max_amplitude_ma": info.max_amplitude_10ua * p.AMPLITUDE_UNIT_MA,
        "max_pulse_width_us": info.max_pulse_width_us,
        "max_frequency_hz": info.max_frequency_chz * p.FREQUENCY_UNIT_HZ,
        "max_on_time_ms": info.max_on_time_ms,
        "max_charge_per_phase_uc": info.max_charge_cuc * p.CHARGE_UNIT_UC
        if info.max_charge_cuc is not None
        else None,
        "max_duty_cycle": info.max_duty_permille * p.DUTY_UNIT
        if info.max_duty_permille is not None
        else None,
        "comm_timeout_ms": info.comm_timeout_ms,
        "max_interphase_gap_us": info.max_interphase_gap_us if info.shaped_pulses else None,
        "max_anodic_width_ratio": info.max_anodic_ratio_x100 * p.RATIO_UNIT
        if info.shaped_pulses
        else None,
        "fault_before_this_session": _name(p.FaultCode, info.last_fault).lower(),
    }


def _name(kind: type[IntEnum], value: int) -> str:
    """The name of a code, or its number when this host does not know it."""
    return kind(value).name if value in kind._value2member_map_ else str(value)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


#: A truth row as the driver keeps it: the wire's fixed-point numbers (``p.TruthRow``)
#: and whether it arrived, 8 bytes (a dictionary of ``TruthRow`` objects by index took
#: 219 bytes a sample).
TRUTH_ROW = np.dtype([("ankle_cdeg", "<i2"), ("clearance_dmm", "<i2"),
                      ("activation", "<u2"), ("pulses", "u1"), ("arrived", "u1")])
#: Rows of one block of ``_Truth.blocks`` (allocated as the first of its rows arrives:
#: no storage grown by copying while the reader thread serves the loop).
TRUTH_BLOCK_ROWS = 4096


@dataclass(slots=True)
class _Truth:
    """The emulator's ground truth as it arrives: events, and rows by sample index (in
    blocks of ``TRUTH_BLOCK_ROWS`` rows of ``TRUTH_ROW``: block ``index // rows``)."""

    #: (event code, t_us, board index and t_us of the newest sample when it arrived)
    events: list[tuple[int, int, int, int]] = field(default_factory=list)
    blocks: dict[int, np.ndarray] = field(default_factory=dict)

    def add_rows(self, first_index: int, rows: Sequence[p.TruthRow]) -> None:
        """Keep ``rows``, of board samples ``first_index`` on."""
        for i, row in enumerate(rows):
            number, at = divmod(first_index + i, TRUTH_BLOCK_ROWS)
            block = self.blocks.get(number)
            if block is None:
                block = self.blocks[number] = np.zeros(TRUTH_BLOCK_ROWS, TRUTH_ROW)
            block[at] = (row.ankle_cdeg, row.clearance_dmm, row.activation, row.pulses, 1)

    def rows(self, first_index: int, count: int) -> np.ndarray:
        """The rows of board samples ``first_index`` to ``first_index + count`` (those
        that never arrived: ``arrived`` 0)."""
        out = np.zeros(count, TRUTH_ROW)
        for number, block in self.blocks.items():
            start = number * TRUTH_BLOCK_ROWS
            lo, hi = max(start, first_index), min(start + TRUTH_BLOCK_ROWS, first_index + count)
            if lo < hi:
                out[lo - first_index : hi - first_index] = block[lo - start : hi - start]
        return out


class Board:
    """Driver of one board on a serial URL or a ``hw.transport.Link``; see the module
    docstring. A port opened from a URL is the driver's to close; a link handed in stays
    its owner's (``close`` and ``reconnect`` leave it open), as with the other drivers."""

    #: The wire's steps (10 uA, 1 us, 0.01 Hz, 1 us, 0.01): the watchdog quantises every
    #: command to them before it checks it (``controller.ports.QuantisingStimulator``).
    resolution = p.RESOLUTION

    def __init__(
        self,
        port: str | Link,
        requirements: BoardRequirements,
        *,
        heartbeat_s: float | None = None,
        link_timeout_s: float = 0.1,
        resend_after_s: float = 0.01,
        max_backlog_s: float = 0.1,
        want_truth: bool = True,
        hello_wait_s: float = HELLO_WAIT_S,
        bootloader_quiet_s: float = BOOTLOADER_QUIET_S,
        on_bootloader_wait: Callable[[str], object] | None = None,
    ) -> None:
        """``on_bootloader_wait`` is told, in a sentence, what the driver did about a
        possible bootloader after the first HELLO went unanswered on a serial device
        (told one to start the firmware, or began its ``bootloader_quiet_s`` of silence:
        then before the silence, so that a person is not left before a silent terminal
        for the seconds it takes). ``bootloader_quiet_s`` 0: no bootloader is looked for."""
        self.url = link_name(port)
        self._on_bootloader_wait = on_bootloader_wait
        self._port = port
        self.requirements = requirements
        self._heartbeat_s = heartbeat_s
        self._link_timeout_s = link_timeout_s
        self._resend_after_s = resend_after_s
        self._max_backlog_s = max_backlog_s
        self._want_truth = want_truth
        self._hello_wait_s = hello_wait_s
        self._bootloader_quiet_s = bootloader_quiet_s
        #: How the last ``identify`` went on after its first HELLO, for "no board".
        self._after_bootloader = ""
        self.info: p.Info | None = None
        self.stats = LinkStats()
        self.fault: BoardFault | None = None
        self.stop_confirmed = False
        #: STOP_ALL frames sent by ``close`` (1 when the first was acknowledged).
        self.stop_attempts = 0
        self._listeners: list[Callable[[BoardFault], None]] = []
        self._listen_s = 0.0
        self._lock = threading.Lock()
        self._transport: Link | None = None
        self._reader: threading.Thread | None = None
        self._running = threading.Event()
        self._samples: queue.Queue[tuple[int, Sample] | None] = queue.Queue()
        self._truth = _Truth()
        self._reset_session()
        # Sample bookkeeping of ``read``: host sample k has board index k + offset.
        self._k = 0
        self._offset: int | None = None
        self._held: tuple[int, Sample] | None = None
        self._last_index = 0
        self._rebase = False

    def _reset_session(self) -> None:
        """Per-connection state: sequence numbers, acknowledgements, keep-alive."""
        self._seq = 0
        self._rx_seq: int | None = None
        # Frames sent and not yet answered, oldest first, and the latest frame sent with
        # each sequence number (the one an ACK naming that number answers).
        self._pending: OrderedDict[int, Sent] = OrderedDict()
        self._sent: dict[int, Sent] = {}
        self._unanswered_bytes = 0  # the wire bytes of the frames in ``_pending``
        # True while the channels' wanted state is newer than anything sent (a command
        # held back by flow control): the next ``apply`` sends it whole.
        self._held_back = False
        # Read by ``last_ack_monotonic_s`` without a lock: one float, never blocks.
        self._last_frame_monotonic_s = time.monotonic()
        self._info_wait = threading.Event()
        self._hello_seqs: set[int] = set()
        self._hello_info: p.Info | None = None
        self._last_rx_index = 0
        self._last_rx_t_us = 0
        self._last_frame_listen_s = self._listen_s
        # The stream's progress: the highest sample index of this session, and when (in
        # listening and wall time) a sample last raised it.
        self._newest_index: int | None = None
        self._lowest_since_newest: int | None = None
        self._progress_listen_s = self._listen_s
        self._progress_monotonic_s = time.monotonic()
        self._last_sent_s = -math.inf
        self._last_sent_index = 0
        self._desired: list[p.ChannelSetting] = []
        self._stim: Sent | None = None  # the latest STIM or STOP_ALL

    # --- connecting -------------------------------------------------------------------

    def connect(self) -> p.Info:
        """Open the port, handshake, check the board, start the stream.

        Raises ``BoardError("no_board")`` when the port cannot be opened or nothing
        answers HELLO, and ``BoardError("refused")`` naming every failed check.
        """
        info = self.identify()
        problems = check_board(info, self.requirements)
        if problems:
            self._send(p.StopAll())
            self._shutdown()
            raise BoardError(
                "refused",
                f"board on {self.url} refused:\n" + "\n".join(f"  - {x}" for x in problems),
            )
        self.info = info
        with self._lock:  # the stream's clock starts now, before the link check can run
            self._progress_listen_s = self._listen_s
            self._progress_monotonic_s = time.monotonic()
        self._desired = [p.ChannelSetting.off(c) for c in range(info.channels)]
        if self._want_truth and info.capabilities & p.Capability.DEBUG_TRUTH:
            self._send(p.DebugTruth(1))
        self._send(p.StartStream())
        return info

    def identify(self) -> p.Info:
        """Open the port and say HELLO; the board's INFO, unchecked, nothing started.

        The port is opened at each link rate of ``protocol.LINK_BAUD_RATES`` in turn (a
        board of protocol version 3 or 4 listens at 1 000 000 baud, older ones at 921 600)
        until a board answers (a ``Link`` handed in is tried once, as it is). Raises
        ``BoardError("no_board")`` when the port cannot be opened or nothing answers. Call
        ``close`` afterwards unless ``connect`` goes on from here.
        """
        # A link handed in is open already, at whatever rate it runs: one attempt.
        bauds = p.LINK_BAUD_RATES if isinstance(self._port, str) else p.LINK_BAUD_RATES[:1]
        # A serial device (not a socket:// or loop:// URL, nor a link) may be a board
        # that its opening reset into a bootloader (BOOTLOADER_QUIET_S).
        device = isinstance(self._port, str) and "://" not in self._port
        # The port is opened once and its rate changed in place: a second open would reset
        # a Mega into its bootloader again, which would swallow the next rate's HELLOs.
        port: Link | None = None
        self._after_bootloader = ""
        for baud in bauds:
            try:
                if port is None:
                    port = open_link(self._port, baud)
                elif isinstance(port, Transport):
                    port.set_baudrate(baud)
            except TransportError as err:
                if port is not None and isinstance(self._port, str):
                    port.close()
                raise BoardError("no_board", str(err)) from None
            self._transport = port
            self._reset_session()
            self.fault = None
            self._start_reader()
            # A Mega's bootloader caught the first HELLO: it is told to go at once.
            waking = device and baud == bauds[0] and self._bootloader_quiet_s > 0
            info = self._handshake(1 if waking else HELLO_ATTEMPTS)
            if info is None and waking and isinstance(port, Transport) and (
                    not self._link_lost()):
                info = self._through_bootloader(port, baud)
            if info is not None:
                return info
            port_failed = self._link_lost()
            last = port_failed or baud == bauds[-1]
            self._shutdown(close_port=last)
            if last:
                break
        rates = " and ".join(f"{b} baud" for b in bauds) if isinstance(self._port, str) else (
            "its own rate")
        raise BoardError(
            "no_board",
            f"no board answered HELLO on {self.url} at {rates} within "
            f"{HELLO_ATTEMPTS * self._hello_wait_s:g} s each"
            + (self._after_bootloader or " (is it powered, is this its port?)"),
        )

    def _through_bootloader(self, port: Transport, baud: int) -> p.Info | None:
        """HELLO went unanswered on a serial device: a Mega its opening reset into
        Arduino's STK500v2 bootloader is told to start its firmware (``hw.stk500v2``),
        anything else is given ``bootloader_quiet_s`` of silence; then HELLO again. Says
        which through ``on_bootloader_wait``; None when still nothing answers."""
        self._stop_reader()
        try:
            handover = stk500v2.start_application(port, baud)
            # A firmware that heard those bytes (at a rate not its own) resynchronises at
            # this delimiter, and takes the next HELLO whole.
            port.write(p.DELIMITER)
        except TransportError as err:
            self._set_fault("link", f"link lost: {err}")
            return None
        finally:
            self._start_reader()
        where = f"no answer to HELLO on {self.url}"
        found = (f"an STK500v2 bootloader ({handover.signature}) answered at "
                 f"{stk500v2.BOOTLOADER_BAUD} baud")
        if handover.left:
            self._tell(f"{where}; {found} (an Arduino Mega resets when its port is opened) "
                       "and was told to start the firmware, then HELLO again")
            self._after_bootloader = (f", and again after its STK500v2 bootloader "
                                      f"({handover.signature}) was told to start the firmware "
                                      "(is a firmware flashed? make -C hw/avr flash)")
            return self._handshake()
        why = (f"; {found} but did not acknowledge the command to start the firmware"
               if handover.signature is not None else
               f", nor to an STK500v2 sign-on at {stk500v2.BOOTLOADER_BAUD} baud")
        self._tell(f"{where}{why}: silent for {self._bootloader_quiet_s:g} s for a "
                   "bootloader (an Arduino Mega resets when its port is opened), then HELLO "
                   "again")
        self._after_bootloader = (f", and again after {self._bootloader_quiet_s:g} s of "
                                  "silence for a bootloader (is it powered, is this its "
                                  "port?)")
        time.sleep(self._bootloader_quiet_s)
        return self._handshake()

    def _tell(self, text: str) -> None:
        """Say what the driver does about a possible bootloader (``on_bootloader_wait``)."""
        if self._on_bootloader_wait is not None:
            self._on_bootloader_wait(text)

    def _start_reader(self) -> None:
        """Start the reader thread on the open transport."""
        self._running.set()
        self._reader = threading.Thread(target=self._rx_loop, name="board-reader", daemon=True)
        self._reader.start()

    def _stop_reader(self) -> None:
        """Stop the reader thread, the port left open (the bootloader exchange reads it)."""
        self._running.clear()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        self._reader = None

    def _handshake(self, attempts: int = HELLO_ATTEMPTS) -> p.Info | None:
        """HELLO in the newest version until ``attempts`` have gone unanswered; a board
        that answers in an older version this host speaks opened no session, and is
        greeted again in its own version (once per version). None when nothing answered."""
        version = p.PROTOCOL_VERSION
        first: p.Info | None = None
        unanswered = 0
        for _ in range(attempts + len(p.PROTOCOL_VERSIONS)):
            self._info_wait.clear()
            self._send(p.Hello(version))
            if self._info_wait.wait(self._hello_wait_s) and self._hello_info is not None:
                info, first = self._hello_info, first or self._hello_info
                if info.protocol_version == version or (
                    info.protocol_version not in p.PROTOCOL_VERSIONS
                ):
                    # The board reports its last fault once, at the first HELLO after it.
                    return dataclasses.replace(
                        info, last_fault=info.last_fault or first.last_fault
                    )
                version = info.protocol_version
                with self._lock:
                    self._hello_seqs.clear()  # only an answer in this version counts now
                    self._hello_info = None
                continue
            unanswered += 1
            if unanswered == attempts or self._link_lost():
                break
        return None

    def reconnect(self) -> p.Info:
        """Close the port and connect again; samples continue after the gap."""
        self._shutdown()
        self._rebase = True
        self._held = None
        self._drain_queue()
        return self.connect()

    # --- SensorSource -----------------------------------------------------------------

    @property
    def sample_period_s(self) -> float:
        """Time between the board's samples."""
        if self.info is None:
            return 1.0 / self.requirements.sample_rate_hz
        return 1.0 / self.info.sample_rate_hz

    def read(self) -> Sample | None:
        """The next sample in the board's order, or None once the link or board failed."""
        while True:
            item = self._held
            self._held = None
            if item is None:
                item = self._next_item()
                if item is None:
                    return None
            index, sample = item
            if self._offset is None or (self._rebase and index < self._k + self._offset):
                self._offset = index - self._k
            self._rebase = False
            expected = self._k + self._offset
            if index < expected:
                self.stats.stale_samples += 1
                continue
            t_s = self._k * self.sample_period_s
            self._k += 1
            if index > expected:
                self._held = item
                self.stats.missing_samples += 1
                self._last_index = expected
                # Lost whole: no reading of any sensor (not the last heel switch value).
                return Sample(t_s, math.nan, math.nan, math.nan)
            self._last_index = index
            self._keep_alive(self._comm_timeout_s() / 2.0)
            return Sample(t_s, sample.gyro_rad_s, sample.heel_switch, sample.heel_force_n,
                          sample.gyro_xyz_rad_s)

    def _next_item(self) -> tuple[int, Sample] | None:
        while self.fault is None and self._transport is not None:
            backlog = self._samples.qsize()
            self.stats.max_backlog_samples = max(self.stats.max_backlog_samples, backlog)
            if backlog * self.sample_period_s > self._max_backlog_s:
                self._set_fault(
                    "host",
                    f"the host fell {backlog * self.sample_period_s * 1000:.0f} ms behind "
                    f"the board's stream (limit {self._max_backlog_s * 1000:g} ms)",
                )
                return None
            try:
                item = self._samples.get(timeout=self._link_timeout_s)
            except queue.Empty:
                continue
            if item is not None:
                return item
        return None

    @property
    def off_command(self) -> str:
        """What the host sends to switch every output off and waits to be acknowledged."""
        return "STOP_ALL"

    @property
    def off_without_host(self) -> str:
        """What switches the outputs off when the host can no longer confirm it (a
        STOP_ALL not acknowledged: unplugged, silent)."""
        timeout = f" ({self.info.comm_timeout_ms} ms)" if self.info is not None else ""
        return f"the board's own communication timeout{timeout} switches its outputs off"

    def close(self) -> None:
        """Outputs off, stream stopped, port closed. Safe to call twice and after a fault.

        STOP_ALL and STOP_STREAM are sent, and sent again every ``CLOSE_RESEND_S``, until
        the board acknowledges them, or the link is declared lost: it already was, the
        port failed, or they went ``link_timeout_s`` of listening without an answer.
        ``stop_confirmed`` is True only for an ACK of one of these very STOP_ALL frames."""
        if self._transport is None:
            return
        self._samples.put(None)
        with self._lock:
            first = self._listen_s
        # A frame held back by flow control (None) is sent again with the next resend.
        stops = [self._send(p.StopAll())]
        streams = [self._send(p.StopStream())]
        resend_at = time.monotonic() + CLOSE_RESEND_S
        while self._reader_alive() and not self._link_lost():
            with self._lock:
                stopped = any(s is not None and s.confirmed for s in stops)
                streamed = any(s is not None and s.code is not None for s in streams)
                unanswered_s = self._listen_s - first
            if stopped and streamed:
                break
            if unanswered_s > self._link_timeout_s:
                what = "STOP_ALL" if not stopped else "STOP_STREAM"
                self._set_fault("link", f"link lost: {what} unanswered for "
                                        f"{unanswered_s * 1e3:.0f} ms")
                break
            if time.monotonic() >= resend_at:
                resend_at += CLOSE_RESEND_S
                if not stopped:
                    stops.append(self._send(p.StopAll()))
                if not streamed:
                    streams.append(self._send(p.StopStream()))
            time.sleep(0.002)
        with self._lock:
            self.stop_confirmed = any(s is not None and s.confirmed for s in stops)
        self.stop_attempts = sum(s is not None for s in stops)
        self._shutdown()

    def _link_lost(self) -> bool:
        """True once a link fault was declared (unplugged, silent, unanswered)."""
        fault = self.fault
        return fault is not None and fault.kind == "link"

    # --- Stimulator -------------------------------------------------------------------

    @property
    def channels(self) -> int:
        """Stimulation channels of the board."""
        return self.info.channels if self.info is not None else self.requirements.channels

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Send the channels whose command changed (refused as the limb refuses them,
        ``controller.ports.check_commands``: ``ValueError`` before anything is sent).
        Resends an unacknowledged state; keeps the board alive."""
        check_commands(commands, self.channels)
        settings = [p.ChannelSetting.from_command(c) for c in commands]
        if self.fault is not None or not self._desired or self.info is None:
            return
        if not self.info.shaped_pulses:
            for s in settings:
                if s.shaped:
                    raise ValueError(
                        f"channel {s.channel}: the board speaks protocol version "
                        f"{self.info.protocol_version}, which carries no pulse shape "
                        "(interphase gap, anodic width ratio)"
                    )
        # A channel named twice gets its last setting (a STIM may name it once only).
        latest = {s.channel: s for s in settings}
        changed = tuple(s for s in latest.values() if s != self._desired[s.channel])
        for s in changed:
            self._desired[s.channel] = s
        now = time.monotonic()
        if self._held_back:
            self._send_stim(tuple(self._desired))
        elif changed:
            self._send_stim(changed)
        elif self._stim_unconfirmed_for(now) > self._resend_after_s:
            self.stats.resends += 1
            self._send_stim(tuple(self._desired))
        else:
            period_s = self._heartbeat_s
            self._keep_alive(self._comm_timeout_s() / 4.0 if period_s is None else period_s)

    def _stim_unconfirmed_for(self, now: float) -> float:
        """How long the latest STIM or STOP_ALL has gone without an ACK OK (0: it has
        one, or none was sent)."""
        stim = self._stim
        return 0.0 if stim is None or stim.confirmed else now - stim.monotonic_s

    def _keep_alive(self, period_s: float) -> None:
        """A HEARTBEAT when nothing was sent for ``period_s`` (wall or board time)."""
        if self.fault is not None or not self._desired:
            return
        board_s = (self._last_index - self._last_sent_index) * self.sample_period_s
        if time.monotonic() - self._last_sent_s >= period_s or board_s >= period_s:
            self._send(p.Heartbeat(self._last_index))  # held back: the frames ahead keep it alive

    def _send_stim(self, settings: tuple[p.ChannelSetting, ...]) -> None:
        """STIM_SHAPED to a board that takes it (every setting with its shape), else STIM;
        held back (for the next ``apply``) while the board has too much unanswered."""
        shaped = self.info is not None and self.info.shaped_pulses
        sent = self._send((p.StimShaped if shaped else p.Stim)(self._last_index, settings))
        self._held_back = sent is None
        if sent is None:
            self.stats.held_back += 1

    def _comm_timeout_s(self) -> float:
        """The board's communication timeout (100 ms before it has said)."""
        return (self.info.comm_timeout_ms if self.info is not None else 100) / 1000.0

    def stop_all(self) -> None:
        """Every channel off now: STOP_ALL is sent whatever the state of the link, unless
        the board's receive buffer is full, which only STOP_ALLs sent after every command
        still unanswered can fill (``_send``): the last of those says the same."""
        self._desired = [p.ChannelSetting.off(c) for c in range(len(self._desired))]
        self._held_back = False
        self._send(p.StopAll())

    # --- link state -------------------------------------------------------------------

    @property
    def last_ack_monotonic_s(self) -> float:
        """``time.monotonic()`` of the board's latest valid frame, an ACK or any other
        (a SAMPLE every period proves it alive): the ``AcknowledgingStimulator`` of
        ``controller.ports``, so that the watchdog's ``ack_timeout_ms`` cuts the outputs
        of a board that went silent (stalled, unplugged) within that time, from its own
        monitor thread. A board that keeps streaming but leaves commands unanswered is
        the driver's to catch (a link fault after ``link_timeout_s``): a single lost
        ACK on a noisy link must not end a trial. One plain read: never blocks."""
        return self._last_frame_monotonic_s

    def add_fault_listener(self, listener: Callable[[BoardFault], None]) -> None:
        """Call ``listener(fault)`` from the reader thread when the first fault occurs."""
        self._listeners.append(listener)

    def health(self) -> LinkHealth:
        """Whether the board is acknowledging, and how long since it last spoke (in time
        spent listening): the ages the reader thread's link check ends the stream by."""
        with self._lock:
            oldest = next(iter(self._pending.values()), None)
            last = self._last_frame_listen_s
            listen = self._listen_s
        unacked = listen - oldest.listen_s if oldest is not None else 0.0
        return LinkHealth(
            acknowledging=self.fault is None and unacked <= self._link_timeout_s,
            last_frame_age_s=listen - last,
            oldest_unacked_age_s=unacked,
            fault=self.fault,
        )

    def _set_fault(self, kind: FaultKind, message: str, since_s: float | None = None) -> None:
        """Declare the first fault (later ones are symptoms); ``since_s``: when it began."""
        with self._lock:
            if self.fault is not None:
                return
            now = time.monotonic()
            self.fault = BoardFault(kind, message, now, now if since_s is None else since_s)
        self._samples.put(None)
        for listener in self._listeners:
            listener(self.fault)

    # --- the wire ---------------------------------------------------------------------

    def _send(self, message: p.Message) -> Sent | None:
        """Encode and write ``message`` with the next sequence number; returns the record
        of this transmission, or None when flow control holds it back: the frames the
        board has not answered would fill more than ``protocol.COMMAND_WINDOW_BYTES`` of
        its receive buffer with it (a STOP_ALL: more than ``BOARD_RX_BUFFER_BYTES``). A
        frame is always sent when nothing is unanswered. A write failure is a lost link
        (reported, not raised)."""
        limit = p.BOARD_RX_BUFFER_BYTES if isinstance(message, p.StopAll) else (
            p.COMMAND_WINDOW_BYTES)
        with self._lock:
            wire = message.encode((self._seq + 1) & 0xFF)
            if self._pending and self._unanswered_bytes + len(wire) > limit:
                return None
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            now = time.monotonic()
            # Recorded before writing: the answer may be read before write() returns. A
            # new record replaces the one of the frame sent 256 frames ago with this
            # number, so that frame's ACK can never confirm this one.
            sent = Sent(message.TYPE, self._listen_s, now, len(wire))
            self._forget(seq)
            if isinstance(message, p.Hello):
                self._hello_seqs.add(seq)
                self._sent.pop(seq, None)
            else:
                self._pending[seq] = sent
                self._unanswered_bytes += sent.wire_bytes
                self._sent[seq] = sent
            if isinstance(message, p.Stim | p.StopAll):
                self._stim = sent
            self._last_sent_s = now
            self._last_sent_index = self._last_index
        transport = self._transport
        if transport is None:
            return sent
        try:
            transport.write(wire)
            self.stats.frames_out += 1
        except TransportError as err:
            self._set_fault("link", f"link lost: {err}")
        return sent

    def _forget(self, seq: int) -> None:
        """No longer wait for an answer to the frame sent with ``seq`` (lock held)."""
        gone = self._pending.pop(seq, None)
        if gone is not None:
            self._unanswered_bytes -= gone.wire_bytes

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def _rx_loop(self) -> None:
        decoder = p.FrameDecoder()
        transport = self._transport
        assert transport is not None
        previous = time.monotonic()
        while self._running.is_set():
            try:
                data = transport.read()
            except TransportError as err:
                if self._running.is_set():
                    self._set_fault("link", f"link lost: {err}")
                return
            now = time.monotonic()
            with self._lock:
                self._listen_s += min(now - previous, LISTEN_STEP_S)
            previous = now
            if data:
                bad = decoder.bad_frames
                for frame in decoder.feed(data):
                    self._on_frame(frame)
                self.stats.bad_frames += decoder.bad_frames - bad
            self._check_link()

    def _check_link(self) -> None:
        if self.fault is not None or not self._desired:
            return  # not streaming yet: the handshake has its own timeout
        health = self.health()
        silent, unacked = health.last_frame_age_s, health.oldest_unacked_age_s
        with self._lock:
            stuck = self._listen_s - self._progress_listen_s
            oldest = next(iter(self._pending.values()), None)
        # A board whose samples stopped and whose last frame of any kind is more than half
        # the timeout old has gone silent (a STATUS or ACK sent just after its last
        # sample), not "still sending other frames": name the silence, the first cause.
        went_silent = stuck > self._link_timeout_s and silent > self._link_timeout_s / 2
        if silent > self._link_timeout_s or went_silent:
            samples = f", no new sample for {stuck * 1e3:.0f} ms" if went_silent else ""
            self._set_fault("link", f"link lost: no frame from the board for {silent * 1e3:.0f} ms"
                                    f"{samples}", self._last_frame_monotonic_s)
        elif unacked > self._link_timeout_s and oldest is not None:
            self._set_fault(
                "link",
                f"board stopped acknowledging: a command is {unacked * 1e3:.0f} ms without answer",
                oldest.monotonic_s,
            )
        elif stuck > self._link_timeout_s:
            self._set_fault("link", f"link lost: no new sample from the board for "
                                    f"{stuck * 1e3:.0f} ms ({self._why_no_progress()})",
                            self._progress_monotonic_s)

    def _why_no_progress(self) -> str:
        """What the board sends instead of new samples."""
        low = self._lowest_since_newest
        if low is not None:
            return (f"its sample index went back from {self._newest_index} to {low}: did "
                    "the board restart?")
        return "it still sends other frames"

    def _on_frame(self, frame: p.Frame) -> None:
        self.stats.frames_in += 1
        ahead = 1 if self._rx_seq is None else (frame.seq - self._rx_seq) & 0xFF
        if 1 <= ahead <= 127:  # in order; a late or repeated frame leaves the count alone
            self.stats.lost_frames += ahead - 1
            self._rx_seq = frame.seq
        try:
            message = p.parse(frame)
        except p.ProtocolError:
            self.stats.bad_frames += 1
            return
        with self._lock:
            self._last_frame_listen_s = self._listen_s
        self._last_frame_monotonic_s = time.monotonic()
        if isinstance(message, p.SampleFrame):
            self._on_sample(message)
        elif isinstance(message, p.Ack):
            self._on_ack(message)
        elif isinstance(message, p.Info):
            if message.hello_seq in self._hello_seqs:
                self._hello_info = message
                self._info_wait.set()
        elif isinstance(message, p.Status):
            self._on_status(message)
        elif isinstance(message, p.Fault):
            self._board_fault(message.code)
        elif isinstance(message, p.TruthEvent):
            self._truth.events.append(
                (message.event, message.t_us, self._last_rx_index, self._last_rx_t_us)
            )
        elif isinstance(message, p.TruthSamples):
            self._truth.add_rows(message.first_index, message.rows)

    def _on_sample(self, s: p.SampleFrame) -> None:
        info = self.info
        if info is None:
            return
        self.stats.samples += 1
        with self._lock:
            if self._newest_index is None or s.index > self._newest_index:
                self._newest_index, self._lowest_since_newest = s.index, None
                self._progress_listen_s = self._listen_s
                self._progress_monotonic_s = time.monotonic()
            elif self._lowest_since_newest is None or s.index < self._lowest_since_newest:
                self._lowest_since_newest = s.index
        self._last_rx_index, self._last_rx_t_us = s.index, s.t_us
        gyro = math.nan
        xyz = None
        if s.flags & p.SampleFlag.GYRO_SAGITTAL_VALID:
            lsb = p.gyro_lsb_rad_s(info.gyro_full_scale_dps)
            raw = (s.gyro_x, s.gyro_y, s.gyro_z)
            sign = -1.0 if info.sagittal_axis & p.SAGITTAL_NEGATE else 1.0
            gyro = sign * raw[info.sagittal_axis & 0x03] * lsb
            if s.flags & p.SampleFlag.GYRO_OTHER_VALID:
                xyz = (raw[0] * lsb, raw[1] * lsb, raw[2] * lsb)
        force = math.nan if s.heel_force_dn == p.FORCE_ABSENT else s.heel_force_dn * p.FORCE_UNIT_N
        self._samples.put((s.index, Sample(0.0, gyro, p.heel_switch(s.flags), force, xyz)))

    def _on_ack(self, ack: p.Ack) -> None:
        with self._lock:
            sent = self._sent.get(ack.acked_seq)
            if sent is None or sent.type != ack.acked_type:
                return  # answers no frame of this session that is still the latest
            if sent.code is None:
                sent.code = ack.code
            if self._pending.get(ack.acked_seq) is sent:
                # The board answers in order: every frame sent before this one was
                # answered, or lost for good.
                while self._pending:
                    seq, oldest = next(iter(self._pending.items()))
                    self._forget(seq)
                    if oldest is sent:
                        break
        if ack.code not in (p.AckCode.OK, p.AckCode.STALE_SEQ):
            self.stats.naks += 1
            what = _name(p.FrameType, ack.acked_type)
            self._set_fault("board", f"board refused {what}: {_name(p.AckCode, ack.code)}")

    def _on_status(self, status: p.Status) -> None:
        self.stats.board_rtt_last_ms = status.rtt_last_us / 1000.0
        self.stats.board_rtt_max_ms = max(self.stats.board_rtt_max_ms, status.rtt_max_us / 1000.0)
        stretch_us = status.pulse_stretch_us
        if stretch_us:
            self.stats.stretched_statuses += 1
            self.stats.pulse_stretch_max_us = max(self.stats.pulse_stretch_max_us, stretch_us)
        if status.last_fault:
            self._board_fault(status.last_fault)

    def _board_fault(self, code: int) -> None:
        self._set_fault(
            "board", f"board fault: {_name(p.FaultCode, code)} (the board switched its outputs off)"
        )

    # --- ground truth -----------------------------------------------------------------

    def has_truth(self) -> bool:
        """True when the board sends ground truth (the emulator's debug frames)."""
        return bool(self._truth.events or self._truth.blocks)

    def truth(self, samples: int) -> tuple[dict[str, np.ndarray], list[tuple[float, str]]]:
        """The emulator's truth for the first ``samples`` host samples: columns (NaN
        where a row never arrived) and true events in trial time."""
        offset = self._offset if self._offset is not None else 0
        period = self.sample_period_s
        rows = self._truth.rows(offset, samples)
        missing = rows["arrived"] == 0
        columns = {
            "ankle_angle_deg": rows["ankle_cdeg"] * p.ANGLE_UNIT_DEG,
            "toe_clearance_mm": rows["clearance_dmm"] * p.CLEARANCE_UNIT_MM,
            "ta_activation": rows["activation"] / p.ACTIVATION_FULL_SCALE,
            "pulses": rows["pulses"].astype(np.float64),
        }
        for column in columns.values():
            column[missing] = math.nan
        events = []
        for code, t_us, ref_index, ref_t_us in self._truth.events:
            t_s = (ref_index - offset) * period + _signed32(t_us - ref_t_us) / 1e6
            if code in Event._value2member_map_ and Event(code) in EVENT_NAMES:
                events.append((t_s, EVENT_NAMES[Event(code)]))
        return columns, sorted(e for e in events if 0.0 <= e[0] < samples * period)

    # --- shutting down ----------------------------------------------------------------

    def _drain_queue(self) -> None:
        while True:
            try:
                self._samples.get_nowait()
            except queue.Empty:
                return

    def _shutdown(self, close_port: bool = True) -> None:
        """Stop the reader; close the port if this driver opened it, unless
        ``close_port`` is False (``identify`` trying the next rate on the same port)."""
        self._stop_reader()
        transport, self._transport = self._transport, None
        if transport is not None and isinstance(self._port, str) and close_port:
            transport.close()
