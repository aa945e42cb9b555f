"""The host's exchange with a Mega's STK500v2 bootloader, byte for byte, on a scripted link.

The bytes are written out here from the two sources, not from ``hw.stk500v2``: the
message format of Atmel's application note AVR068 (2006: 0x1B, sequence number, body size
big-endian, 0x0E, body, XOR checksum) and what Arduino's ``stk500boot.c`` (Debian's
arduino-core-avr) answers: CMD_SIGN_ON with STATUS_CMD_OK and its signature
``AVRISP_2``; CMD_LEAVE_PROGMODE_ISP with STATUS_CMD_OK, after which it starts the
firmware. The real bootloader (stk500boot_v2_mega2560.hex in simavr) answered these very
bytes when sent them on its pty (7 Dec 2026), and tests/test_avr_flash.py has ``fes
ports`` go through it end to end.
"""

from __future__ import annotations

import threading

from helpers.scripted_link import ScriptedLink, Step

from hw import stk500v2

#: CMD_SIGN_ON (0x01), sequence number 1; checksum 1B^01^00^01^0E^01 = 14.
SIGN_ON = "1b 01 00 01 0e 01 14"
#: Its answer: CMD_SIGN_ON, STATUS_CMD_OK, 8, "AVRISP_2".
SIGNED_ON = "1b 01 00 0b 0e 01 00 08 41 56 52 49 53 50 5f 32 74"
#: The same answer with its checksum damaged on the line.
SIGNED_ON_GARBLED = "1b 01 00 0b 0e 01 00 08 41 56 52 49 53 50 5f 32 34"
#: CMD_LEAVE_PROGMODE_ISP (0x11) with avrdude's pre- and post-delay 1, sequence number 2.
LEAVE = "1b 02 00 03 0e 11 01 01 05"
#: Its answer: CMD_LEAVE_PROGMODE_ISP, STATUS_CMD_OK.
LEFT = "1b 02 00 02 0e 11 00 04"
LINK_BAUD = 1_000_000


class RateScriptedLink(ScriptedLink):
    """A scripted link that also records every change of its line rate, in order with
    what the host wrote (``events``): ``("rate", baud)`` and ``("write", hex)``."""

    def __init__(self, script: list[Step]) -> None:
        self.events: list[tuple[str, object]] = []
        self._events_lock = threading.Lock()
        super().__init__(script)

    def set_baudrate(self, baudrate: int) -> None:
        with self._events_lock:
            self.events.append(("rate", baudrate))

    def write(self, data: bytes) -> None:
        with self._events_lock:
            self.events.append(("write", data.hex(" ")))
        super().write(data)


def _steps(*pairs: tuple[str, str]) -> list[Step]:
    return [(bytes.fromhex(host), bytes.fromhex(device)) for host, device in pairs]


def test_a_bootloader_whose_first_answer_is_garbled_is_signed_on_again_and_left():
    link = RateScriptedLink(_steps((SIGN_ON, SIGNED_ON_GARBLED), (SIGN_ON, SIGNED_ON),
                                   (LEAVE, LEFT)))
    handover = stk500v2.start_application(link, LINK_BAUD)
    link.assert_done()
    assert handover == stk500v2.Handover(signature="AVRISP_2", left=True)
    # At the bootloader's rate, then back to the board's: nothing else, in this order.
    assert link.events == [("rate", 115_200), ("write", SIGN_ON), ("write", SIGN_ON),
                           ("write", LEAVE), ("rate", LINK_BAUD)]


def test_a_silent_device_gets_three_sign_ons_and_nothing_that_writes():
    link = RateScriptedLink(_steps((SIGN_ON, ""), (SIGN_ON, ""), (SIGN_ON, "")))
    handover = stk500v2.start_application(link, LINK_BAUD)
    link.assert_done()
    assert handover == stk500v2.Handover(signature=None, left=False)
    assert link.events[0] == ("rate", 115_200) and link.events[-1] == ("rate", LINK_BAUD)


def test_a_bootloader_that_does_not_acknowledge_leaving_is_not_taken_as_left():
    """Signed on, but the command to leave unanswered twice: the host must not count on
    the firmware running (it falls back to waiting out the bootloader)."""
    link = RateScriptedLink(_steps((SIGN_ON, SIGNED_ON), (LEAVE, ""), (LEAVE, "")))
    handover = stk500v2.start_application(link, LINK_BAUD)
    link.assert_done()
    assert handover == stk500v2.Handover(signature="AVRISP_2", left=False)


def test_bytes_before_an_answer_and_an_answer_in_pieces_are_read_through():
    """The decoder resynchronises at MESSAGE_START: garbage before the answer (a byte of
    0x1B among it, with a header that is no message) and an answer split across reads."""
    decoder = stk500v2.MessageDecoder()
    garbage = bytes.fromhex("ff 1b 07 00 02 33 21")
    answer = bytes.fromhex(SIGNED_ON)
    got = decoder.feed(garbage + answer[:6]) + decoder.feed(answer[6:])
    assert got == [(1, bytes.fromhex("01 00 08") + b"AVRISP_2")]
    assert decoder.garbled == 1
