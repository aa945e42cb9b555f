"""The host's HELLO, heard by a Mega's bootloader, cannot open the bootloader's monitor.

A Mega resets when its port opens, and Arduino's STK500v2 bootloader
(``stk500boot_v2_mega2560.hex``, Debian's arduino-core-avr) listens at 115,200 baud
while ``fes`` says HELLO at 1 Mbaud: it reads garbled characters
(docs/hardware.md, "Auto-reset"). Its source (``stk500boot.c``, same package) opens a
serial monitor that never times out when three ``'!'`` come in a row among the first
nine characters it reads; a board caught there never starts its firmware until it is
reset again, and ``fes`` would say "no board". The simavr tests cannot show this: a pty
carries bytes, not bit times.

So the line is modelled here, from the ATmega2560 datasheet's USART receiver
(Microchip 2014, "Asynchronous Data Reception"): with double speed (U2X, as the
bootloader sets it) 8 samples a bit, a start bit confirmed by the majority of samples 4-6
(a majority high is a false start), each data bit and the stop bit decided by the same
majority, a new start bit looked for right after the stop bit's last majority sample; at
16 MHz 115,200 baud is UBRR 16, 117,647 baud. The host's bytes are 8N1, back to back
within one frame. What the model shows: a HELLO frame (7 bytes, 70 us at 1 Mbaud) reads
as one character whose last data bit is sampled after the frame has ended, on the idle
(high) line, so it is never ``'!'`` (0x21, high bit clear). At 921,600 baud, the rate
``fes`` tries next, some sequence numbers would read as ``'!'`` at some phases, but that
rate is tried on the same open port, after the bootloader has started the firmware.
"""

from __future__ import annotations

import numpy as np

from hw import protocol as p
from hw import stk500v2

#: The bootloader's receiver: 16 MHz / (8 x (UBRR 16 + 1)), 8 samples a bit (U2X).
BOOTLOADER_BAUD = 16e6 / (8 * 17)
SAMPLES_PER_BIT = 8
MAJORITY_SAMPLES = (3, 4, 5)  # samples 4, 5 and 6, counted from the first low one as 1
MONITOR_CHARACTER = ord("!")


def _line(data: bytes, baud: float):
    """The level of a line carrying ``data`` as 8N1 from time 0 at ``baud`` (idle high
    before and after)."""
    bit_s = 1.0 / baud
    levels = np.array([bit for byte in data
                       for bit in (0, *((byte >> i) & 1 for i in range(8)), 1)])

    def level(t_s: float) -> int:
        index = int(np.floor(t_s / bit_s))
        return 1 if index < 0 or index >= levels.size else int(levels[index])

    return level


def _received(level, end_s: float, phase: float, baud: float = BOOTLOADER_BAUD) -> bytes:
    """The characters the receiver reads from ``level`` up to ``end_s``, its sample
    clock shifted by ``phase`` (0-1) of a sample."""
    sample_s = 1.0 / (baud * SAMPLES_PER_BIT)

    def majority(start_s: float) -> int:
        return int(sum(level(start_s + k * sample_s) for k in MAJORITY_SAMPLES) >= 2)

    read = bytearray()
    t_s, previous = (phase - 1.0) * sample_s, 1
    while t_s < end_s:
        now = level(t_s)
        if previous == 1 and now == 0 and majority(t_s) == 0:  # a confirmed start bit
            bit_s = SAMPLES_PER_BIT * sample_s
            read.append(sum(majority(t_s + (bit + 1) * bit_s) << bit for bit in range(8)))
            # the stop bit's majority, framing error or not: the data reaches UDR
            t_s += 9 * bit_s + (MAJORITY_SAMPLES[-1] + 1) * sample_s
            previous = level(t_s)
            continue
        previous = now
        t_s += sample_s
    return bytes(read)


def test_the_receiver_model_reads_bytes_sent_at_its_own_rate():
    """The model is a receiver, not a filter that reads nothing: bytes sent at the
    bootloader's nominal 115,200 baud (2 % slow for it) come back whole, the
    monitor's ``!!!`` included."""
    sent = b"!!!\x1b\x00\xffU"
    line = _line(sent, 115_200)
    for phase in np.linspace(0.0, 1.0, 8, endpoint=False):
        assert _received(line, len(sent) * 10 / 115_200 + 1e-4, phase) == sent


def test_no_hello_reads_as_the_bootloaders_monitor_character():
    """What reaches the bootloader: HELLO at the first link rate, on the port as opened
    (the next rate is tried on the same port, after the bootloader has handed over:
    tests/test_hw_board.py), whatever its sequence number and the receiver's phase."""
    host_baud = p.LINK_BAUD_RATES[0]
    for seq in range(256):
        frame = p.encode_frame(p.FrameType.HELLO, seq, bytes([p.PROTOCOL_VERSION]))
        line = _line(frame, host_baud)
        end_s = len(frame) * 10 / host_baud + 20 / BOOTLOADER_BAUD
        for phase in np.linspace(0.0, 1.0, 16, endpoint=False):
            read = _received(line, end_s, phase)
            assert len(read) == 1, (seq, phase, read)  # heard, as one garbled character
            assert read[0] != MONITOR_CHARACTER, (seq, phase)


#: The firmware's receiver at the link rate: 16 MHz / (8 x (UBRR 1 + 1)), U2X as well
#: (hw/avr/firmware/uart.c).
FIRMWARE_BAUD = 16e6 / (8 * 2)
#: What the host sends a bootloader, at its 115 200 baud (hw.stk500v2), at most.
TO_A_BOOTLOADER = (stk500v2.SIGN_ON * stk500v2.SIGN_ON_ATTEMPTS
                   + stk500v2.LEAVE_PROGMODE * stk500v2.LEAVE_ATTEMPTS)


def test_the_bootloader_reads_the_hosts_sign_on_and_leave_command_whole():
    """The host's 115 200 baud against the bootloader's 117 647: the two messages it is
    sent arrive as sent, whatever the receiver's phase."""
    for wire in (stk500v2.SIGN_ON, stk500v2.LEAVE_PROGMODE):
        line = _line(wire, stk500v2.BOOTLOADER_BAUD)
        for phase in np.linspace(0.0, 1.0, 16, endpoint=False):
            end_s = len(wire) * 10 / stk500v2.BOOTLOADER_BAUD + 1e-4
            assert _received(line, end_s, phase) == wire, phase


def test_bytes_meant_for_a_bootloader_never_read_as_a_frame_at_the_link_rate():
    """A running firmware silent to the first HELLO hears the bootloader's messages at
    its own 1 Mbaud. A 115 200 baud bit lasts 8.7 us, longer than the 8.5 us from a start
    bit to the last data bit at 1 Mbaud, so every character it reads is 0x00 (85 of them
    for these 39 bytes): idle delimiters, not a frame, whatever the phase
    (tests/test_avr_board.py sends the bytes themselves, as a pty carries them, to the
    firmware in simavr: bad frames there)."""
    line = _line(TO_A_BOOTLOADER, stk500v2.BOOTLOADER_BAUD)
    end_s = len(TO_A_BOOTLOADER) * 10 / stk500v2.BOOTLOADER_BAUD + 1e-4
    for phase in np.linspace(0.0, 1.0, 16, endpoint=False):
        read = _received(line, end_s, phase, FIRMWARE_BAUD)
        assert len(read) > len(TO_A_BOOTLOADER)  # heard, as more characters than sent
        decoder = p.FrameDecoder()
        assert decoder.feed(read + p.DELIMITER) == [], phase
