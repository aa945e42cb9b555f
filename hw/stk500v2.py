"""Arduino's STK500v2 bootloader, asked to start the firmware now: sign on, then leave
programming mode. Two commands, nothing that writes flash, EEPROM, fuses or lock bits.

Why: an Arduino Mega 2560 resets when its USB serial port is opened (DTR auto-reset), and
its STK500v2 bootloader (``stk500boot.c`` of Arduino's AVR core, Debian's
arduino-core-avr) listens for 0.83 s before it starts the firmware; a byte in that window,
such as the host's first HELLO, keeps it listening until it has heard nothing for 5 s
(docs/hardware.md, "Auto-reset"). Told to leave programming mode it starts the firmware
at once instead.

What ``stk500boot.c`` does with what it hears (read from its source, GPL-2; nothing of it
is copied here): its parser waits for MESSAGE_START (0x1B) and drops every other byte, so
the garbled HELLOs it caught at 1 Mbaud leave it at the next 0x1B; it takes a message
whose sequence number is 1 or the one it expects, whatever came before. A HELLO that
happened to read as 0x1B leaves the parser inside a message header, where our sign-on's
first bytes are swallowed: no answer, and the sign-on sent again finds the parser waiting
for 0x1B. CMD_SIGN_ON is answered with its signature (``AVRISP_2``);
CMD_LEAVE_PROGMODE_ISP is answered STATUS_CMD_OK, then the bootloader waits 50 ms
(``delay_ms(100)`` of 0.5 ms steps) and jumps to address 0, the firmware. It listens
as long as bytes keep coming, and 5 s after the last one starts the firmware on its own:
the host's fallback (``hw.board.BOOTLOADER_QUIET_S``).

A message (Atmel application note AVR068, 2006): MESSAGE_START, sequence number, body
size (2 bytes, big-endian), TOKEN (0x0E), body, and the XOR of every byte before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from hw.transport import Link

#: The bootloader's line rate (stk500boot.c: BAUDRATE 115200; 117 647 baud on a 16 MHz Mega).
BOOTLOADER_BAUD = 115_200
MESSAGE_START = 0x1B
TOKEN = 0x0E
CMD_SIGN_ON = 0x01
CMD_LEAVE_PROGMODE_ISP = 0x11
STATUS_CMD_OK = 0x00
#: The only commands the host ever sends a bootloader: neither writes anything.
COMMANDS_SENT = (CMD_SIGN_ON, CMD_LEAVE_PROGMODE_ISP)
#: Sequence numbers: a sign-on numbered 1 is taken in any state (stk500boot.c takes 1 or
#: the number it expects), after which it expects 2.
SIGN_ON_SEQ = 1
LEAVE_SEQ = 2
#: Sign-on attempts: the first may be swallowed by a HELLO read as MESSAGE_START, or its
#: answer garbled; a third covers one more such byte.
SIGN_ON_ATTEMPTS = 3
LEAVE_ATTEMPTS = 2
#: How long an answer is waited for: 17 bytes at 115 200 baud take 1.5 ms, a USB-serial
#: bridge adds up to its latency timer (16 ms on an FTDI chip); the rest is for a host
#: whose process a loaded machine pauses.
ANSWER_WAIT_S = 0.2
#: After its answer to CMD_LEAVE_PROGMODE_ISP the bootloader waits 50 ms before it jumps
#: to the firmware (stk500boot.c, ``delay_ms(100)`` in 0.5 ms steps): bytes sent sooner
#: reach its receiver, still at 115 200 baud, garbled, and the firmware's first frame
#: with them. The host waits that, and as much again for the answer's way through a
#: USB-serial bridge (up to 16 ms) and the firmware's start. (In simavr a HELLO sent
#: within the 50 ms was answered before the simulated patient's truth relay had
#: announced itself to the restarted firmware: a trial without ground truth.)
HANDOVER_S = 0.1
#: The longest body the decoder takes (stk500boot.c's buffer is 285 bytes); a longer
#: size is garbage, not a message.
MAX_BODY_BYTES = 285


def message(seq: int, body: bytes) -> bytes:
    """One STK500v2 message on the wire (AVR068): header, body and XOR checksum."""
    wire = bytes((MESSAGE_START, seq & 0xFF, len(body) >> 8, len(body) & 0xFF, TOKEN)) + body
    checksum = 0
    for byte in wire:
        checksum ^= byte
    return wire + bytes((checksum,))


#: The two messages the host sends, as avrdude's ``wiring`` programmer sends them (the
#: leave command's pre- and post-delay of 1 ms, which this bootloader ignores).
SIGN_ON = message(SIGN_ON_SEQ, bytes((CMD_SIGN_ON,)))
LEAVE_PROGMODE = message(LEAVE_SEQ, bytes((CMD_LEAVE_PROGMODE_ISP, 1, 1)))


class MessageDecoder:
    """Splits what a bootloader sends into messages ``(seq, body)`` with a correct
    checksum; ``garbled`` counts the ones begun that were not (a wrong token or
    checksum), after which decoding resumes at the next MESSAGE_START."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbled = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The messages ``data`` completes; a trailing partial one is kept."""
        self._buffer += data
        found: list[tuple[int, bytes]] = []
        while True:
            start = self._buffer.find(MESSAGE_START)
            if start < 0:
                self._buffer.clear()
                return found
            del self._buffer[:start]
            if len(self._buffer) < 5:
                return found
            size = self._buffer[2] << 8 | self._buffer[3]
            if self._buffer[4] != TOKEN or size > MAX_BODY_BYTES:
                self._skip()
                continue
            if len(self._buffer) < 6 + size:
                return found
            checksum = 0
            for byte in self._buffer[: 6 + size]:
                checksum ^= byte
            if checksum:
                self._skip()
                continue
            found.append((self._buffer[1], bytes(self._buffer[5 : 5 + size])))
            del self._buffer[: 6 + size]

    def _skip(self) -> None:
        """Not a message: look for the next MESSAGE_START after this one."""
        self.garbled += 1
        del self._buffer[:1]


class RateLink(Link, Protocol):
    """A link whose line rate can be changed while it stays open (``Transport``): a
    second open would reset the Mega again."""

    def set_baudrate(self, baudrate: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Handover:
    """What the bootloader exchange found: the signature of the STK500v2 bootloader
    that answered the sign-on (None: none did), and whether it acknowledged the command
    to leave programming mode, that is, started the firmware."""

    signature: str | None
    left: bool


def start_application(link: RateLink, link_baud: int) -> Handover:
    """Sign on at ``BOOTLOADER_BAUD`` and, to an STK500v2 bootloader, send the command to
    leave programming mode; the link is back at ``link_baud`` on return (and, when the
    bootloader acknowledged, ``HANDOVER_S`` later, as its firmware starts). Raises
    ``hw.transport.TransportError`` when the port fails."""
    link.set_baudrate(BOOTLOADER_BAUD)
    try:
        decoder = MessageDecoder()
        signature = None
        for _ in range(SIGN_ON_ATTEMPTS):
            signature = _signature(_ask(link, decoder, SIGN_ON, CMD_SIGN_ON))
            if signature is not None:
                break
        left = signature is not None and any(
            _ask(link, decoder, LEAVE_PROGMODE, CMD_LEAVE_PROGMODE_ISP)
            == bytes((CMD_LEAVE_PROGMODE_ISP, STATUS_CMD_OK))
            for _ in range(LEAVE_ATTEMPTS)
        )
    finally:
        link.set_baudrate(link_baud)
    if left:
        time.sleep(HANDOVER_S)
    return Handover(signature, left)


def _ask(link: Link, decoder: MessageDecoder, wire: bytes, command: int) -> bytes | None:
    """Send ``wire``; the body of the answer to it (its sequence number and command),
    or None when none came within ``ANSWER_WAIT_S`` or a garbled one came."""
    seq = wire[1]
    garbled = decoder.garbled
    link.write(wire)
    deadline = time.monotonic() + ANSWER_WAIT_S
    while time.monotonic() < deadline and decoder.garbled == garbled:
        for got_seq, body in decoder.feed(link.read()):
            if got_seq == seq and body[:1] == bytes((command,)):
                return body
    return None


def _signature(body: bytes | None) -> str | None:
    """The signature a sign-on answer carries (``AVRISP_2``), None if it is no answer
    STK500v2 gives: CMD_SIGN_ON, STATUS_CMD_OK, length, that many printable bytes."""
    if body is None or len(body) < 3 or body[1] != STATUS_CMD_OK:
        return None
    text = body[3 : 3 + body[2]]
    if len(text) != body[2] or not text.isascii() or not text.decode().isprintable():
        return None
    return text.decode()
