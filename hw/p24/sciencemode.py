"""ScienceMode 4 on the wire, the device's side: packets, byte stuffing, CRC. Pure, no I/O.

Written from the public description of the protocol (the P24's instructions for use,
v1.1 2023-01-25, in github.com/ScienceMode/ScienceMode4_P24, "Packet structure" and the
command tables), for the emulator (``hw.p24.emulator``). The host never uses this
module: the driver (``hw.p24.driver``) speaks through the ``science_mode_4`` library,
so the emulator checks the library and not a second copy of the same reading.

A packet on the wire::

    0xF0 | length (2 bytes) | CRC (2 bytes) | prefix (2 bytes) + command data | 0x0F
            always stuffed     always stuffed  stuffed where needed

- Byte stuffing: a 0xF0 (start), 0x0F (stop) or 0x81 (stuffing byte) inside the packet
  is sent as 0x81 followed by the byte XOR 0x55 (the stuffing key). The two length bytes
  and the two CRC bytes are always sent that way, 4 bytes each, so a packet always
  starts 0xF0 0x81, and a byte right after a 0x81 is data whatever its value (a length
  or CRC byte 0x5A goes out as 0x81 0x0F).
- Length: the whole packet on the wire, start and stop byte and stuffing included.
- CRC: CRC-CCITT (XModem: polynomial 0x1021, initial value 0) of the stuffed prefix and
  command data.
- Prefix: 16 bits, big endian, the packet number (0-63) in the top 6 bits and the
  command number in the low 10. A response echoes the number of its request.

Command numbers are those of the instructions' tables except Ml_get_current_data and its
acknowledgement, which the tables list as 37/38 and HASOMED's own C library (and the
``science_mode_4`` client) send as 36/37; the emulator follows the libraries, which are
what talks to real devices.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from enum import IntEnum

START = 0xF0
STOP = 0x0F
STUFFING = 0x81
STUFFING_KEY = 0x55
#: The bytes a packet's body cannot carry as they are.
RESERVED = frozenset((START, STOP, STUFFING))
#: The shortest packet: start, length, CRC, prefix, stop (no command data).
MIN_PACKET_BYTES = 1 + 4 + 4 + 2 + 1
#: The longest packet the device takes, stuffing included (instructions for use).
MAX_PACKET_BYTES = 1200
PACKET_NUMBERS = 64
#: Serial settings of the device (instructions for use, table 1): 3 Mbaud, 8 data bits,
#: 2 stop bits, no parity, RTS/CTS flow control.
BAUD_RATE = 3_000_000


class Command(IntEnum):
    """The command numbers the emulator knows (general, low-level and mid-level layers)."""

    LL_INIT = 0
    LL_INIT_ACK = 1
    LL_CHANNEL_CONFIG = 2
    LL_CHANNEL_CONFIG_ACK = 3
    LL_STOP = 4
    LL_STOP_ACK = 5
    ML_INIT = 30
    ML_INIT_ACK = 31
    ML_UPDATE = 32
    ML_UPDATE_ACK = 33
    ML_STOP = 34
    ML_STOP_ACK = 35
    ML_GET_CURRENT_DATA = 36
    ML_GET_CURRENT_DATA_ACK = 37
    GET_DEVICE_ID = 52
    GET_DEVICE_ID_ACK = 53
    RESET = 58
    RESET_ACK = 59
    GET_STIM_STATUS = 62
    GET_STIM_STATUS_ACK = 63
    GENERAL_ERROR = 66
    UNKNOWN_CMD = 67
    GET_EXTENDED_VERSION = 68
    GET_EXTENDED_VERSION_ACK = 69


class Result(IntEnum):
    """The "result and errors" codes the emulator answers with (table 27)."""

    NO_ERROR = 0
    TRANSFER_ERROR = 1
    PARAMETER_ERROR = 2
    NOT_INITIALIZED = 7
    INVALID_CMD = 11
    PULSE_TIMEOUT = 16


class StimStatus(IntEnum):
    """Get_stim_status_ack's level (table 7)."""

    NO_LEVEL = 0
    LOW_LEVEL_INITIALIZED = 1
    MID_LEVEL_INITIALIZED = 2
    MID_LEVEL_RUNNING = 3


#: Get_stim_status_ack's high-voltage byte: off, or on at 150 V.
HIGH_VOLTAGE_OFF = 1
HIGH_VOLTAGE_ON = 6


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet without its framing: command, packet number, command data."""

    command: int
    number: int
    data: bytes


def crc(stuffed: bytes) -> int:
    """CRC-CCITT (XModem) of a stuffed packet body."""
    return binascii.crc_hqx(stuffed, 0)


def stuff_byte(value: int) -> bytes:
    """One byte as the stuffing sends it: 0x81, then the byte XOR the key."""
    return bytes((STUFFING, (value & 0xFF) ^ STUFFING_KEY))


def stuff(body: bytes) -> bytes:
    """``body`` with every reserved byte stuffed."""
    out = bytearray()
    for b in body:
        if b in RESERVED:
            out += stuff_byte(b)
        else:
            out.append(b)
    return bytes(out)


def unstuff(stuffed: bytes) -> bytes:
    """The body a stuffed body carries; ``ValueError`` for a stuffing byte at the end or
    a reserved byte that was not stuffed."""
    out = bytearray()
    i = 0
    while i < len(stuffed):
        b = stuffed[i]
        if b == STUFFING:
            if i + 1 >= len(stuffed):
                raise ValueError("stuffing byte at the end of the packet")
            out.append(stuffed[i + 1] ^ STUFFING_KEY)
            i += 2
            continue
        if b in RESERVED:
            raise ValueError(f"unstuffed 0x{b:02X} inside the packet")
        out.append(b)
        i += 1
    return bytes(out)


def encode(packet: Packet) -> bytes:
    """The bytes of ``packet`` on the wire."""
    if not 0 <= packet.number < PACKET_NUMBERS or not 0 <= packet.command < 1024:
        raise ValueError(f"packet number {packet.number} or command {packet.command} out of range")
    prefix = ((packet.number << 10) | packet.command).to_bytes(2, "big")
    body = stuff(prefix + packet.data)
    length = 1 + 4 + 4 + len(body) + 1
    checksum = crc(body)
    return b"".join((
        bytes((START,)),
        stuff_byte(length >> 8), stuff_byte(length),
        stuff_byte(checksum >> 8), stuff_byte(checksum),
        body,
        bytes((STOP,)),
    ))


class BadPacket(ValueError):
    """Bytes between a start and a stop byte that are no valid packet."""


def decode(raw: bytes) -> Packet:
    """The packet in ``raw`` (one whole packet, start to stop byte); ``BadPacket`` naming
    what is wrong (framing, length, CRC, stuffing)."""
    if len(raw) < MIN_PACKET_BYTES or raw[0] != START or raw[-1] != STOP:
        raise BadPacket("not a packet (start, stop byte or length)")
    header = raw[1:9]
    if any(header[i] != STUFFING for i in range(0, 8, 2)):
        raise BadPacket("length or CRC not stuffed")
    length = ((header[1] ^ STUFFING_KEY) << 8) | (header[3] ^ STUFFING_KEY)
    checksum = ((header[5] ^ STUFFING_KEY) << 8) | (header[7] ^ STUFFING_KEY)
    if length != len(raw):
        raise BadPacket(f"length field {length}, packet of {len(raw)} bytes")
    stuffed = raw[9:-1]
    if crc(stuffed) != checksum:
        raise BadPacket("CRC mismatch")
    try:
        body = unstuff(stuffed)
    except ValueError as err:
        raise BadPacket(str(err)) from None
    if len(body) < 2:
        raise BadPacket("no command prefix")
    prefix = int.from_bytes(body[:2], "big")
    return Packet(prefix & 0x3FF, prefix >> 10, body[2:])


class PacketReader:
    """Splits a byte stream into packets.

    A packet runs from a start byte to the first stop byte that does not follow a
    stuffing byte (the always-stuffed length and CRC bytes can be 0xF0 or 0x0F after
    their 0x81). Bytes before a start byte are skipped; a start byte before the stop
    begins a new packet (the one before was cut short: a bad packet); a run that is no
    valid packet is reported as a ``BadPacket``; a run longer than ``MAX_PACKET_BYTES``
    is dropped as one. ``bad`` counts them all.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 1  # bytes of the buffered packet already scanned
        self.bad = 0

    def feed(self, data: bytes) -> list[Packet | BadPacket]:
        """Packets (or the reason one was bad) that ``data`` completes, in order."""
        buf = self._buffer
        buf += data
        out: list[Packet | BadPacket] = []
        while True:
            start = buf.find(START)
            if start < 0:
                buf.clear()
                return out
            if start:
                del buf[:start]
                self._scanned = 1
            end = self._scan()
            if end is None:
                if len(buf) > MAX_PACKET_BYTES:
                    self._bad(out, BadPacket("packet longer than the device takes"))
                    buf.clear()
                return out
            if buf[end] == START:
                self._bad(out, BadPacket("packet cut short by the next start byte"))
                del buf[:end]
                self._scanned = 1
                continue
            raw = bytes(buf[: end + 1])
            del buf[: end + 1]
            self._scanned = 1
            try:
                out.append(decode(raw))
            except BadPacket as err:
                self._bad(out, err)

    def _scan(self) -> int | None:
        """Index of the buffered packet's stop byte (or of a start byte that cuts it
        short); None while it is incomplete."""
        buf, i = self._buffer, self._scanned
        while i < len(buf):
            b = buf[i]
            if b == STUFFING:
                if i + 1 >= len(buf):
                    break  # the stuffed byte has not arrived yet
                i += 2
                continue
            if b in (STOP, START):
                return i
            i += 1
        self._scanned = i
        return None

    def _bad(self, out: list[Packet | BadPacket], err: BadPacket) -> None:
        self.bad += 1
        out.append(err)
