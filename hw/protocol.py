"""The board's wire protocol: frames, framing, checksums and messages. Pure, no I/O.

``docs/protocol.md`` is the specification; this module is its reference implementation,
shared by the host driver (``hw.board``) and the firmware model (``hw.firmware``).

A frame on the wire is ``COBS(type, seq, payload, crc16) 0x00``: COBS (Cheshire and
Baker 1999) removes every zero byte from the frame, so a single 0x00 delimits frames and
a receiver resynchronises at the next delimiter after any corruption. The CRC is
CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR) over type, seq and payload, sent high byte first so that the CRC of a whole
decoded frame is zero. It detects every error burst up to 16 bits and every odd number
of flipped bits; every message type also has an exact length, so a byte lost or
inserted inside a frame is always rejected.

Messages are small frozen dataclasses in wire units (integers, little-endian); the
conversions to the physical units of ``controller.ports`` live next to them.
"""

from __future__ import annotations

import binascii
import dataclasses
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from controller.ports import Resolution, StimCommand

#: The newest protocol version this host speaks. Version 2 added the pulse shape
#: (STIM_SHAPED, INFO's shape limits); version 3 is version 2 on a 1 000 000 baud link, the
#: rate a 16 MHz microcontroller makes exactly (the AVR board of hw/avr); version 4 adds the
#: board's own charge-per-phase limit (INFO, ACK OVER_CHARGE) and the shortest phase
#: rule, and its own duty-cycle limit (INFO, FAULT DUTY). Boards of versions 1 to 3 still
#: work.
PROTOCOL_VERSION = 4
#: Every version spoken, oldest first: the host falls back to an older one a board offers.
PROTOCOL_VERSIONS = (1, 2, 3, 4)
#: The first version whose STIM_SHAPED carries an interphase gap and an anodic width ratio.
SHAPED_PULSES_VERSION = 2
#: The first version whose INFO carries the board's charge-per-phase and duty-cycle limits.
CHARGE_LIMIT_VERSION = 4
#: The link rate of versions 1 and 2, and of versions 3 and 4.
BAUD_RATE = 921_600
BAUD_RATE_V3 = 1_000_000
#: The rates the host opens a port at, in turn, until a board answers HELLO: the newest
#: version's first. (A pseudo-terminal or native USB ignores the rate: the first answers.)
LINK_BAUD_RATES = (BAUD_RATE_V3, BAUD_RATE)
#: Largest decoded frame (type + seq + payload + CRC): COBS then adds exactly one byte.
MAX_FRAME_BYTES = 254
#: Largest encoded frame between two delimiters.
MAX_ENCODED_BYTES = MAX_FRAME_BYTES + 1
DELIMITER = b"\x00"
#: Bytes of frames a board buffers at least while it works through them (section 3, flow
#: control): the host never has more than this much unanswered on the link, so a burst
#: of commands cannot overflow a small board's receive buffer and lose a STOP_ALL.
BOARD_RX_BUFFER_BYTES = 255
#: Of those, the most the host's commands (everything but STOP_ALL) may take: the rest
#: is kept for STOP_ALL, which is held back by nothing but a full buffer.
COMMAND_WINDOW_BYTES = 192
#: Wire units: amplitude in 10 uA, frequency in 0.01 Hz, heel force in 0.1 N, charge in
#: 0.01 uC (INFO's charge limit), duty cycle in 0.1 % (INFO's duty limit).
AMPLITUDE_UNIT_MA = 0.01
CHARGE_UNIT_UC = 0.01
DUTY_UNIT = 0.001
#: The window of a board's duty-cycle limit (version 4): a channel may deliver pulses for
#: at most INFO's ``max_duty_permille`` of any such window (docs/protocol.md section 6).
BOARD_DUTY_WINDOW_S = 10.0
#: The shortest leading phase a board of version 4 delivers: a setting with a shorter
#: pulse width (on, and otherwise delivering) delivers nothing, never a lengthened phase
#: (docs/protocol.md section 5).
MIN_PULSE_WIDTH_US = 4
FREQUENCY_UNIT_HZ = 0.01
FORCE_UNIT_N = 0.1
FORCE_ABSENT = 0xFFFF
#: Anodic width ratio on the wire: hundredths (100 = 1.00, the symmetric pulse).
RATIO_UNIT = 0.01
RATIO_SYMMETRIC = 100
#: The steps of a STIM setting, per unit: 10 uA, 1 us, 0.01 Hz, 1 us, 0.01. A command is
#: carried in whole steps toward the safe side (``controller.ports.Resolution``), and the
#: watchdog checks it quantised so (the board driver exposes this as its resolution).
RESOLUTION = Resolution(
    amplitude_ma=100.0, pulse_width_us=1.0, frequency_hz=100.0, interphase_gap_us=1.0,
    anodic_width_ratio=100.0,
)
#: Fixed-point scales of the debug truth rows.
ANGLE_UNIT_DEG = 0.01
CLEARANCE_UNIT_MM = 0.1
ACTIVATION_FULL_SCALE = 65535
BROADCAST_CHANNEL = 0xFF


class FrameType(IntEnum):
    """The first byte of a frame. Host to board below 0x80, board to host from 0x80."""

    HELLO = 0x01
    START_STREAM = 0x02
    STOP_STREAM = 0x03
    STIM = 0x04
    STOP_ALL = 0x05
    HEARTBEAT = 0x06
    GET_STATUS = 0x07
    STIM_SHAPED = 0x08
    DEBUG_TRUTH = 0x3F
    INFO = 0x81
    ACK = 0x82
    SAMPLE = 0x83
    STATUS = 0x84
    FAULT = 0x85
    TRUTH_EVENT = 0xC1
    TRUTH_SAMPLES = 0xC2


class AckCode(IntEnum):
    """Result of a host command, carried by ACK. Non-zero codes mean "not acted on"."""

    OK = 0
    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_CHANNEL = 3
    OVER_AMPLITUDE = 4
    OVER_PULSE_WIDTH = 5
    OVER_FREQUENCY = 6
    NOT_READY = 7
    STALE_SEQ = 8
    OVER_INTERPHASE_GAP = 9
    BAD_WIDTH_RATIO = 10
    OVER_CHARGE = 11


class FaultCode(IntEnum):
    """Why the board switched every output off by itself. A fault closes the session:
    nothing stimulates until the next HELLO, whose INFO reports it."""

    NONE = 0
    COMM_TIMEOUT = 1
    ON_TIME = 2
    SENSOR = 3
    DUTY = 4
    #: Bytes from the host were lost (a full receive buffer, the chip's receiver); sent by
    #: AVR firmware 2.2.4 on (docs/protocol.md section 3).
    RX_LOST = 5


class ProtocolError(ValueError):
    """A frame that decodes but cannot be acted on; ``code`` is the ACK code to answer."""

    def __init__(self, code: AckCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789": 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` without any zero byte."""
    out = bytearray()
    chunks = data.split(b"\x00")
    for i, chunk in enumerate(chunks):
        while len(chunk) >= 0xFE:
            out.append(0xFF)
            out += chunk[:0xFE]
            chunk = chunk[0xFE:]
            if not chunk and i == len(chunks) - 1:
                return bytes(out)  # a full block ends the data: no implicit zero follows
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of ``cobs_encode``; raises ``ValueError`` on an impossible encoding."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ValueError("broken COBS block")
        block = data[i + 1 : end]
        if 0 in block:
            raise ValueError("zero byte inside a COBS block")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame whose CRC was correct: type byte, sequence number, payload."""

    type: int
    seq: int
    payload: bytes


def encode_frame(frame_type: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes on the wire for one frame, delimiter included."""
    body = bytes((frame_type, seq & 0xFF)) + payload
    if len(body) + 2 > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(body) + 2} bytes exceeds {MAX_FRAME_BYTES}")
    return cobs_encode(body + crc16(body).to_bytes(2, "big")) + DELIMITER


class FrameDecoder:
    """Splits a byte stream into frames; anything not a whole valid frame is counted.

    Never raises: bytes that do not decode (broken COBS, a bad CRC, too short, too long
    between delimiters) are dropped and counted in ``bad_frames``, and decoding resumes
    after the next delimiter.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflow = False
        self.bad_frames = 0
        self.good_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Decode what ``data`` completes; keep a trailing partial frame for later."""
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._append(data[start:])
                return frames
            self._append(data[start:end])
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
            start = end + 1

    def _append(self, chunk: bytes) -> None:
        if self._overflow:
            return
        self._buffer += chunk
        if len(self._buffer) > MAX_ENCODED_BYTES:
            self._buffer.clear()
            self._overflow = True

    def _finish(self) -> Frame | None:
        encoded, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = False
        if overflow:
            self.bad_frames += 1
            return None
        if not encoded:
            return None  # back-to-back delimiters: an idle line, not an error
        try:
            body = cobs_decode(encoded)
        except ValueError:
            self.bad_frames += 1
            return None
        if len(body) < 4 or crc16(body) != 0:
            self.bad_frames += 1
            return None
        self.good_frames += 1
        return Frame(body[0], body[1], body[2:-2])


# --- Messages -------------------------------------------------------------------------


class Message:
    """A message with a fixed layout; subclasses define ``TYPE`` and ``_LAYOUT``."""

    TYPE: ClassVar[FrameType]
    _LAYOUT: ClassVar[struct.Struct]

    def pack(self) -> bytes:
        """The payload bytes."""
        return self._LAYOUT.pack(*_fields(self))

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """The message of a payload; ``ProtocolError(BAD_LENGTH)`` if the size is wrong."""
        if len(payload) != cls._LAYOUT.size:
            raise ProtocolError(
                AckCode.BAD_LENGTH,
                f"{cls.TYPE.name} payload has {len(payload)} bytes, expected "
                f"{cls._LAYOUT.size}",
            )
        return cls(*cls._LAYOUT.unpack(payload))

    def encode(self, seq: int) -> bytes:
        """The whole frame on the wire."""
        return encode_frame(self.TYPE, seq, self.pack())


def _fields(message: object) -> tuple[int, ...]:
    return tuple(getattr(message, name) for name in message.__slots__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Host -> board: open a session speaking ``protocol_version``."""

    TYPE = FrameType.HELLO
    _LAYOUT = struct.Struct("<B")
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Empty(Message):
    """Base of the messages without payload."""

    _LAYOUT = struct.Struct("<")


@dataclass(frozen=True, slots=True)
class StartStream(Empty):
    """Host -> board: start the sensor sample stream."""

    TYPE = FrameType.START_STREAM


@dataclass(frozen=True, slots=True)
class StopStream(Empty):
    """Host -> board: stop the sensor sample stream."""

    TYPE = FrameType.STOP_STREAM


@dataclass(frozen=True, slots=True)
class StopAll(Empty):
    """Host -> board: every output off now. Always obeyed, in any state."""

    TYPE = FrameType.STOP_ALL


@dataclass(frozen=True, slots=True)
class GetStatus(Empty):
    """Host -> board: ask for a STATUS frame."""

    TYPE = FrameType.GET_STATUS


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Host -> board: keeps the session alive; ``ref_sample`` is the newest sample seen."""

    TYPE = FrameType.HEARTBEAT
    _LAYOUT = struct.Struct("<I")
    ref_sample: int


@dataclass(frozen=True, slots=True)
class DebugTruth(Message):
    """Host -> board (emulator only): send or stop the simulator's ground truth."""

    TYPE = FrameType.DEBUG_TRUTH
    _LAYOUT = struct.Struct("<B")
    enable: int


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """One channel's stimulation in wire units; ``on`` 0 or 1.

    The pulse: a leading (cathodic) phase of ``amplitude_10ua`` for ``pulse_width_us``, a
    pause of ``interphase_gap_us``, then a recovery (anodic) phase ``anodic_ratio_x100``
    hundredths as long at the inverse fraction of the current, so both phases carry the
    same charge by construction. STIM carries only the first five fields (the shape is
    then the symmetric pulse without a gap); STIM_SHAPED carries all seven.
    """

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHHH")
    SHAPED_LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHHHHH")
    channel: int
    on: int
    amplitude_10ua: int
    pulse_width_us: int
    frequency_chz: int
    interphase_gap_us: int = 0
    anodic_ratio_x100: int = RATIO_SYMMETRIC

    @staticmethod
    def off(channel: int) -> ChannelSetting:
        """The setting that delivers nothing on ``channel``."""
        return ChannelSetting(channel, 0, 0, 0, 0)

    @property
    def delivers(self) -> bool:
        """True when this setting produces pulses."""
        return bool(self.on) and min(
            self.amplitude_10ua, self.pulse_width_us, self.frequency_chz
        ) > 0

    @property
    def shaped(self) -> bool:
        """True when this setting delivers a pulse other than the symmetric one without a
        gap: only STIM_SHAPED (protocol version 2) can carry it."""
        return self.delivers and (
            self.interphase_gap_us != 0 or self.anodic_ratio_x100 != RATIO_SYMMETRIC
        )

    @staticmethod
    def from_command(command: StimCommand) -> ChannelSetting:
        """The wire form of a command, in whole steps of ``RESOLUTION`` toward the safe
        side (never above what was asked: a rounding up could take a command the
        watchdog passed beyond a limit); off is all zeros and the symmetric shape.

        Raises ``ValueError`` for a value that does not fit the wire format (an anodic
        width ratio below 1 included); the watchdog keeps every command far inside it.
        """
        if not command.on:
            return ChannelSetting.off(command.channel)
        values = (command.amplitude_ma, command.pulse_width_us, command.frequency_hz,
                  command.interphase_gap_us, command.anodic_width_ratio)
        if not all(math.isfinite(v) and v >= 0.0 for v in values):
            raise ValueError(f"channel {command.channel}: {command} does not fit the wire")
        steps = RESOLUTION.steps(command)
        if max(steps) > 0xFFFF or steps[4] < RATIO_SYMMETRIC:
            raise ValueError(f"channel {command.channel}: {command} does not fit the wire")
        return ChannelSetting(command.channel, 1, *steps)

    def to_command(self) -> StimCommand:
        """The command in physical units (each a whole number of steps divided by the
        steps per unit: the very number the watchdog checked)."""
        if not self.on:
            return StimCommand.off(self.channel)
        r = RESOLUTION
        return StimCommand(
            self.channel,
            True,
            self.amplitude_10ua / r.amplitude_ma,
            self.pulse_width_us / r.pulse_width_us,
            self.frequency_chz / r.frequency_hz,
            self.interphase_gap_us / r.interphase_gap_us,
            self.anodic_ratio_x100 / r.anodic_width_ratio,
        )


@dataclass(frozen=True, slots=True)
class Stim(Message):
    """Host -> board: new settings for the channels named, decided at ``ref_sample``.
    Symmetric pulses only: the shape fields of the settings are not sent."""

    TYPE = FrameType.STIM
    _HEADER: ClassVar[struct.Struct] = struct.Struct("<IB")
    _ITEM: ClassVar[struct.Struct] = ChannelSetting.LAYOUT
    _ITEM_FIELDS: ClassVar[int] = 5
    ref_sample: int
    settings: tuple[ChannelSetting, ...]

    def pack(self) -> bytes:
        out = self._HEADER.pack(self.ref_sample, len(self.settings))
        for s in self.settings:
            out += self._ITEM.pack(*_fields(s)[: self._ITEM_FIELDS])
        return out

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        header, item = cls._HEADER.size, cls._ITEM.size
        name = cls.TYPE.name
        if len(payload) < header:
            raise ProtocolError(AckCode.BAD_LENGTH, f"{name} payload shorter than its header")
        ref, count = cls._HEADER.unpack_from(payload)
        if count == 0 or len(payload) != header + count * item:
            raise ProtocolError(
                AckCode.BAD_LENGTH,
                f"{name} with {count} settings must have {header + count * item} bytes, "
                f"has {len(payload)}",
            )
        settings = tuple(
            ChannelSetting(*cls._ITEM.unpack_from(payload, header + i * item))
            for i in range(count)
        )
        return cls(ref, settings)


@dataclass(frozen=True, slots=True)
class StimShaped(Stim):
    """Host -> board (protocol version 2): STIM whose settings also carry the pulse
    shape, the interphase gap in us and the anodic width ratio in hundredths."""

    TYPE = FrameType.STIM_SHAPED
    _ITEM = ChannelSetting.SHAPED_LAYOUT
    _ITEM_FIELDS = 7


@dataclass(frozen=True, slots=True)
class Info(Message):
    """Board -> host, the answer to HELLO: identity, channels, rate, scales, own limits.

    Its layout depends on ``protocol_version`` (the second byte): version 1 has 28 bytes,
    versions 2 and 3 add the board's pulse-shape limits (32 bytes), version 4 its charge
    and duty-cycle limits (36 bytes). Every version begins with version 1's 28 bytes, so
    an INFO of a later version is read as far as those go (the host then refuses the
    version by name, never a board it cannot read)."""

    TYPE = FrameType.INFO
    _LAYOUT = struct.Struct("<BBBBBIBHHHHHHHBBBB")
    _SHAPE_LIMITS: ClassVar[struct.Struct] = struct.Struct("<HH")
    _V4_LIMITS: ClassVar[struct.Struct] = struct.Struct("<HH")
    hello_seq: int
    protocol_version: int
    firmware_major: int
    firmware_minor: int
    firmware_patch: int
    board_id: int
    channels: int
    sample_rate_hz: int
    max_amplitude_10ua: int
    max_pulse_width_us: int
    max_frequency_chz: int
    max_on_time_ms: int
    comm_timeout_ms: int
    gyro_full_scale_dps: int
    accel_full_scale_g: int
    sagittal_axis: int
    capabilities: int
    last_fault: int
    #: Version 2: the board's own limits of the pulse shape (0 us: no gap; 100: symmetric
    #: pulses only). A version 1 board carries neither, and is read as these defaults.
    max_interphase_gap_us: int = 0
    max_anodic_ratio_x100: int = RATIO_SYMMETRIC
    #: Version 4: the board's own charge-per-phase limit in 0.01 uC. None for a board of an
    #: older version, which has none of its own (``board_charge_limit_uc``).
    max_charge_cuc: int | None = None
    #: Version 4: the board's own duty-cycle limit over ``BOARD_DUTY_WINDOW_S``, in 0.1 %.
    #: None for a board of an older version, which has only its continuous on-time limit.
    max_duty_permille: int | None = None

    @property
    def firmware(self) -> tuple[int, int, int]:
        """Firmware version (major, minor, patch)."""
        return (self.firmware_major, self.firmware_minor, self.firmware_patch)

    @property
    def shaped_pulses(self) -> bool:
        """True when the board takes STIM_SHAPED (it speaks protocol version 2 or later)."""
        return self.protocol_version >= SHAPED_PULSES_VERSION

    @property
    def board_charge_limit_uc(self) -> float:
        """The most charge per phase the board lets through: its own limit (version 4),
        and in any version its amplitude limit x its pulse width limit (a recovery phase
        carries the leading phase's charge). A board of versions 1 to 3 has only the
        product."""
        product = self.max_amplitude_10ua * AMPLITUDE_UNIT_MA * self.max_pulse_width_us * 1e-3
        if self.max_charge_cuc is None:
            return product
        return min(product, self.max_charge_cuc * CHARGE_UNIT_UC)

    def pack(self) -> bytes:
        common = self._LAYOUT.pack(*_fields(self)[:-4])
        if self.protocol_version < SHAPED_PULSES_VERSION:
            return common
        shaped = common + self._SHAPE_LIMITS.pack(
            self.max_interphase_gap_us, self.max_anodic_ratio_x100
        )
        if self.protocol_version < CHARGE_LIMIT_VERSION:
            return shaped
        return shaped + self._V4_LIMITS.pack(self.max_charge_cuc or 0,
                                                self.max_duty_permille or 0)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        common = cls._LAYOUT.size
        version = payload[1] if len(payload) >= 2 else 0
        shaped = common + cls._SHAPE_LIMITS.size
        charged = shaped + cls._V4_LIMITS.size
        size = {1: common, 2: shaped, 3: shaped, 4: charged}.get(version)
        if len(payload) != size and (size is not None or len(payload) < common):
            raise ProtocolError(
                AckCode.BAD_LENGTH,
                f"INFO of protocol version {version} has {len(payload)} bytes, expected "
                f"{size if size is not None else f'at least {common}'}",
            )
        info = cls(*cls._LAYOUT.unpack_from(payload))
        if size not in (shaped, charged):
            return info
        gap, ratio = cls._SHAPE_LIMITS.unpack_from(payload, common)
        info = dataclasses.replace(info, max_interphase_gap_us=gap, max_anodic_ratio_x100=ratio)
        if size != charged:
            return info
        charge, duty = cls._V4_LIMITS.unpack_from(payload, shaped)
        return dataclasses.replace(info, max_charge_cuc=charge, max_duty_permille=duty)


def gyro_lsb_rad_s(full_scale_dps: int) -> float:
    """Angular rate of one gyroscope count: 32768 counts are ``full_scale_dps`` (INFO)."""
    return math.radians(full_scale_dps / 32768.0)


class Capability(IntEnum):
    """Bits of ``Info.capabilities``."""

    HEEL_SWITCH = 0x01
    HEEL_FORCE = 0x02
    DEBUG_TRUTH = 0x04


SAGITTAL_NEGATE = 0x80


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Board -> host: the result of one host command (HELLO and GET_STATUS excepted)."""

    TYPE = FrameType.ACK
    _LAYOUT = struct.Struct("<BBB")
    acked_seq: int
    acked_type: int
    code: int


class SampleFlag(IntEnum):
    """Bits of ``SampleFrame.flags``."""

    HEEL_CONTACT = 0x01
    GYRO_SAGITTAL_VALID = 0x02
    GYRO_OTHER_VALID = 0x04
    ACCEL_VALID = 0x08
    #: The heel switch's sample was lost (``HEEL_CONTACT`` then 0, no reading): "lost"
    #: rather than "valid", so that a board that never sets it means what it always did.
    HEEL_LOST = 0x10


def heel_flags(heel_switch: float) -> int:
    """SAMPLE ``flags`` of a heel switch sample (``controller.ports.Sample``: 1 contact,
    0 none, NaN lost): a lost one is ``HEEL_LOST``, never "no contact" nor contact."""
    if math.isnan(heel_switch):
        return SampleFlag.HEEL_LOST
    return SampleFlag.HEEL_CONTACT if heel_switch else 0


def heel_switch(flags: int) -> float:
    """The heel switch sample SAMPLE ``flags`` carry: 1.0 contact, 0.0 none, NaN lost."""
    if flags & SampleFlag.HEEL_LOST:
        return math.nan
    return 1.0 if flags & SampleFlag.HEEL_CONTACT else 0.0


@dataclass(frozen=True, slots=True)
class SampleFrame(Message):
    """Board -> host: one sensor sample. Raw IMU counts; scales are in INFO."""

    TYPE = FrameType.SAMPLE
    _LAYOUT = struct.Struct("<IIhhhhhhHB")
    index: int
    t_us: int
    gyro_x: int
    gyro_y: int
    gyro_z: int
    accel_x: int
    accel_y: int
    accel_z: int
    heel_force_dn: int
    flags: int


@dataclass(frozen=True, slots=True)
class Status(Message):
    """Board -> host: state and counters, every 100 ms while streaming and on request."""

    TYPE = FrameType.STATUS
    _LAYOUT = struct.Struct("<IBBBHHHHH")
    t_us: int
    outputs_on: int
    last_fault: int
    state: int
    rx_frames: int
    rx_bad_frames: int
    refused: int
    rtt_last_us: int
    rtt_max_us: int

    @property
    def pulse_stretch_us(self) -> float:
        """The most a phase of a pulse may have run past its planned end since the
        previous STATUS (the board's pulse engine armed the end late and forced the line
        off), from ``state`` bits 2-7; 0.0 when every phase ended on time, 31.5 meaning
        31.5 us or more. Sent by AVR firmware 2.2.6 on; older boards and the reference
        firmware send those bits 0."""
        return (self.state >> STATUS_STRETCH_SHIFT) * STATUS_STRETCH_UNIT_US


#: ``Status.state`` bits 2-7: the longest phase stretch since the previous STATUS, in
#: ticks of the pulse engine's timer (0.5 us), saturating at 63 (docs/protocol.md
#: section 5).
STATUS_STRETCH_SHIFT = 2
STATUS_STRETCH_UNIT_US = 0.5


class StatusState(IntEnum):
    """Bits of ``Status.state`` (bits 2-7: ``Status.pulse_stretch_us``)."""

    SESSION = 0x01
    STREAMING = 0x02


@dataclass(frozen=True, slots=True)
class Fault(Message):
    """Board -> host: the board switched every output off by itself (latched)."""

    TYPE = FrameType.FAULT
    _LAYOUT = struct.Struct("<BBI")
    code: int
    channel: int
    t_us: int


@dataclass(frozen=True, slots=True)
class TruthEvent(Message):
    """Board -> host (emulator only): a true gait event of the simulated patient."""

    TYPE = FrameType.TRUTH_EVENT
    _LAYOUT = struct.Struct("<BI")
    event: int
    t_us: int


def fixed(value: float, low: int, high: int) -> int:
    """``value`` rounded to an integer and clamped to a wire field's range."""
    return max(low, min(high, round(float(value))))


@dataclass(frozen=True, slots=True)
class TruthRow:
    """The simulated patient's physical state at one sample, in fixed point."""

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<hhHB")
    ankle_cdeg: int
    clearance_dmm: int
    activation: int
    pulses: int

    @classmethod
    def of(cls, ankle_deg: float, clearance_mm: float, activation: float,
           pulses: float) -> TruthRow:
        """The row of one sample's truth in physical units (the limb's truth columns)."""
        return cls(
            fixed(ankle_deg / ANGLE_UNIT_DEG, -32768, 32767),
            fixed(clearance_mm / CLEARANCE_UNIT_MM, -32768, 32767),
            fixed(activation * ACTIVATION_FULL_SCALE, 0, ACTIVATION_FULL_SCALE),
            fixed(pulses, 0, 255),
        )


@dataclass(frozen=True, slots=True)
class TruthSamples(Message):
    """Board -> host (emulator only): truth rows of samples ``first_index`` onwards."""

    TYPE = FrameType.TRUTH_SAMPLES
    _HEADER: ClassVar[struct.Struct] = struct.Struct("<IB")
    MAX_ROWS: ClassVar[int] = 32
    first_index: int
    rows: tuple[TruthRow, ...]

    def pack(self) -> bytes:
        out = self._HEADER.pack(self.first_index, len(self.rows))
        for r in self.rows:
            out += TruthRow.LAYOUT.pack(r.ankle_cdeg, r.clearance_dmm, r.activation, r.pulses)
        return out

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        header, item = cls._HEADER.size, TruthRow.LAYOUT.size
        if len(payload) < header:
            raise ProtocolError(AckCode.BAD_LENGTH, "TRUTH_SAMPLES shorter than its header")
        first, count = cls._HEADER.unpack_from(payload)
        if len(payload) != header + count * item:
            raise ProtocolError(AckCode.BAD_LENGTH, "TRUTH_SAMPLES length mismatch")
        rows = tuple(
            TruthRow(*TruthRow.LAYOUT.unpack_from(payload, header + i * item))
            for i in range(count)
        )
        return cls(first, rows)


MESSAGES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello, StartStream, StopStream, Stim, StimShaped, StopAll, Heartbeat, GetStatus,
        DebugTruth,
        Info, Ack, SampleFrame, Status, Fault, TruthEvent, TruthSamples,
    )
}


def parse(frame: Frame) -> Message:
    """The message a valid frame carries; ``ProtocolError`` for an unknown type or size."""
    cls = MESSAGES.get(frame.type)
    if cls is None:
        raise ProtocolError(AckCode.UNKNOWN_TYPE, f"unknown frame type 0x{frame.type:02X}")
    return cls.unpack(frame.payload)

