"""The board driver byte for byte on a scripted link: the sessions of docs/protocol.md.

The driver takes a ``hw.transport.Link`` in place of a serial URL, so these exchanges run
with no port and no pty (as pymeasure's ``expected_protocol``): every frame the host
writes must be the document's, in its order, and the board's answers are the
document's. HELLO and INFO, the version negotiation, START_STREAM, a STIM and its ACK,
the keep-alive HEARTBEAT, a refused STIM, STOP_ALL, a FAULT, and the flow control of
section 3 (commands held back while the board's buffer holds too much unanswered).
``tests/test_hw_board.py`` plays the same sessions through a real pty, the end-to-end path.
"""

from __future__ import annotations

import io
import math
import time

import pytest
from helpers.protocol_doc import FAULT_EXAMPLE, NEWEST_SESSION, V1_SESSION, transcript_lines
from helpers.scripted_link import ScriptedLink, exchanges

from controller.ports import StimCommand
from controller.safety import SafetyLimits
from controller.trial import live
from hw import protocol as p
from hw.board import Board, BoardRequirements
from hw.transport import Link

REQUIRE = BoardRequirements(SafetyLimits(), 500.0)
SHAPED_35 = StimCommand(0, True, 35.0, 300.0, 40.0, 50.0, 4.0)
STIM_35 = StimCommand(0, True, 35.0, 300.0, 40.0)
NEWEST = transcript_lines(*NEWEST_SESSION)
V1 = transcript_lines(*V1_SESSION)


def board_on(link: Link) -> Board:
    """A driver on ``link`` whose own timers stay quiet for the length of a test step,
    so that it writes only what the test's calls make it write."""
    return Board(link, REQUIRE, heartbeat_s=0.5, hello_wait_s=5.0, link_timeout_s=5.0)


def test_the_scripted_link_is_a_link():
    assert isinstance(ScriptedLink([]), Link)


def test_the_session_of_the_protocol_document():
    """The newest version's session (version 4, the AVR firmware)."""
    link = ScriptedLink(exchanges(NEWEST))
    board = board_on(link)
    info = board.connect()  # HELLO -> INFO, START_STREAM -> ACK (no DEBUG_TRUTH offered)
    assert (info.board_id, info.protocol_version, info.channels) == (42, 4, 2)
    assert info.board_charge_limit_uc == pytest.approx(30.0)
    sample = board.read()  # SAMPLE index 0 arrived after the ACK
    assert sample is not None and sample.t_s == 0.0 and sample.heel_switch == 1
    assert sample.gyro_rad_s == pytest.approx(488 * math.radians(1998 / 32768))
    assert sample.heel_force_n == pytest.approx(549.4)
    board.apply(0.0, [SHAPED_35])  # STIM_SHAPED seq 3 -> ACK OK
    board.apply(0.002, [SHAPED_35])  # unchanged and acknowledged: nothing is written
    time.sleep(0.5)
    board.apply(0.004, [SHAPED_35])  # quiet for the keep-alive period: HEARTBEAT seq 4
    board.apply(0.006, [StimCommand(0, True, 70.0, 300.0, 40.0, 50.0, 4.0)])  # refused
    assert board.read() is None
    assert board.fault is not None and board.fault.kind == "board"
    assert "OVER_AMPLITUDE" in board.fault.message
    board.close()  # STOP_ALL seq 6, STOP_STREAM seq 7, both acknowledged
    assert board.stop_confirmed and not link.closed  # the link stays its owner's
    link.assert_done()


def test_a_version_1_board_is_greeted_again_in_its_version_and_sent_plain_stim():
    link = ScriptedLink(exchanges(V1))
    board = board_on(link)
    info = board.connect()  # HELLO v3 -> INFO v1 (no session), HELLO v1 -> INFO v1
    assert info.protocol_version == 1 and not info.shaped_pulses
    assert board.read() is not None
    with pytest.raises(ValueError, match="protocol version 1, which carries no pulse shape"):
        board.apply(0.0, [SHAPED_35])  # refused in the host: nothing is written
    board.apply(0.0, [STIM_35])  # a plain STIM seq 4 -> ACK OK
    board.close()
    assert board.stop_confirmed and board.fault is None
    link.assert_done()


def ack(seq: int, message: type[p.Message], code: p.AckCode, board_seq: int) -> bytes:
    """The board's ACK of the host's frame ``seq``, as the board numbers it."""
    return p.Ack(seq, message.TYPE, code).encode(board_seq)


def faulting_session() -> ScriptedLink:
    """HELLO, INFO, START_STREAM, ACK, SAMPLE 0, then the document's FAULT frame; closing
    sends STOP_ALL (acknowledged) and STOP_STREAM (answered NOT_READY)."""
    handshake = exchanges(NEWEST[:5])
    fault = transcript_lines(*FAULT_EXAMPLE)[0][1]
    return ScriptedLink([
        *handshake,
        (None, fault),
        (p.StopAll().encode(3), ack(3, p.StopAll, p.AckCode.OK, 9)),
        (p.StopStream().encode(4), ack(4, p.StopStream, p.AckCode.NOT_READY, 10)),
    ])


def test_a_fault_the_board_reports_ends_the_stream_and_stop_all_still_goes_out():
    """The document's FAULT frame arrives after the first sample: the driver reports a
    board fault, ``read`` ends, and closing still sends STOP_ALL (which a board without
    a session accepts) and STOP_STREAM (answered NOT_READY)."""
    link = faulting_session()
    board = board_on(link)
    board.connect()
    assert board.read() is not None
    assert board.read() is None
    assert board.fault is not None and board.fault.kind == "board"
    assert "COMM_TIMEOUT" in board.fault.message
    board.close()
    assert board.stop_confirmed
    link.assert_done()


def test_a_fault_the_board_reports_is_named_once_on_the_terminal():
    """``fes run`` reports a fault the moment the driver declares it; a board's own FAULT
    was reported "fes run: board fault: board fault: COMM_TIMEOUT (...)"."""
    board = board_on(faulting_session())
    said = io.StringIO()
    board.add_fault_listener(lambda f: live._report(said, f))
    board.connect()
    while board.read() is not None:
        pass
    board.close()
    assert said.getvalue() == (
        "fes run: board fault: COMM_TIMEOUT (the board switched its outputs off)\n")


def test_a_board_silent_just_after_its_last_sample_is_reported_as_silent():
    """A STATUS 40 ms after the last SAMPLE, then nothing. The samples' timeout (no new
    sample for 100 ms of listening) runs out before the frames' (no frame for 100 ms), and
    the report said the board "still sends other frames" of a board silent for 60 ms
    (``fes run`` under load, tests/test_hw_link_faults.py). It must name the silence."""
    link = ScriptedLink([
        *exchanges(NEWEST[:7]),  # HELLO ... SAMPLE 0, STIM_SHAPED seq 3 -> ACK OK
        (p.StopAll().encode(4), b""),
        (p.StopStream().encode(5), b""),
    ])
    board = Board(link, REQUIRE, heartbeat_s=5.0, hello_wait_s=5.0, link_timeout_s=0.1)
    board.connect()
    assert board.read() is not None
    board.apply(0.0, [SHAPED_35])
    time.sleep(0.04)
    link.device_sends(p.Status(40_000, 1, 0, 3, 3, 0, 0, 0, 0).encode(5))
    assert board.read() is None
    assert board.fault is not None and board.fault.kind == "link"
    assert board.fault.message.startswith("link lost: no frame from the board for ")
    assert "other frames" not in board.fault.message
    board.close()
    assert not board.stop_confirmed
    link.assert_done()


def test_stop_all_goes_out_at_once_and_is_acknowledged():
    """``stop_all`` sends STOP_ALL with the next sequence number while the stream runs;
    closing sends STOP_ALL and STOP_STREAM again, each acknowledged."""
    link = ScriptedLink([
        *exchanges(NEWEST[:5]),
        (p.StopAll().encode(3), ack(3, p.StopAll, p.AckCode.OK, 4)),
        (p.StopAll().encode(4), ack(4, p.StopAll, p.AckCode.OK, 5)),
        (p.StopStream().encode(5), ack(5, p.StopStream, p.AckCode.OK, 6)),
    ])
    board = board_on(link)
    board.connect()
    board.stop_all()
    assert link.wait_done(0.0) is False  # closing is still to come
    board.close()
    assert board.stop_confirmed
    link.assert_done()


def alternating(first_seq: int, count: int) -> list[bytes]:
    """The STIM_SHAPED frames of ``count`` applies switching channel 0 on and off."""
    on, off = p.ChannelSetting.from_command(SHAPED_35), p.ChannelSetting.off(0)
    return [p.StimShaped(0, (on if k % 2 == 0 else off,)).encode(first_seq + k)
            for k in range(count)]


def apply_alternating(board: Board, count: int) -> None:
    for k in range(count):
        board.apply(k * 0.002, [SHAPED_35 if k % 2 == 0 else StimCommand.off(0)])


def test_a_command_beyond_the_flow_control_window_waits_and_goes_out_whole():
    """docs/protocol.md section 3: the host keeps at most COMMAND_WINDOW_BYTES of commands
    unanswered (a small board's receive buffer). The next change is held back (nothing
    written) and, once the board's ACKs arrive, the channels' whole state goes out."""
    frames = alternating(3, p.COMMAND_WINDOW_BYTES // len(alternating(3, 1)[0]) + 1)
    fit, beyond = frames[:-1], frames[-1]
    assert sum(map(len, fit)) <= p.COMMAND_WINDOW_BYTES < sum(map(len, frames))
    on = p.ChannelSetting.from_command(SHAPED_35)
    state_seq = 3 + len(fit)
    whole_state = p.StimShaped(0, (on, p.ChannelSetting.off(1))).encode(state_seq)
    link = ScriptedLink([
        *exchanges(NEWEST[:5]),
        *[(frame, b"") for frame in fit],  # a board slow to answer
        (whole_state, ack(state_seq, p.StimShaped, p.AckCode.OK, 30)),
        (p.StopAll().encode(state_seq + 1), ack(state_seq + 1, p.StopAll, p.AckCode.OK, 31)),
        (p.StopStream().encode(state_seq + 2),
         ack(state_seq + 2, p.StopStream, p.AckCode.OK, 32)),
    ])
    board = board_on(link)
    board.connect()
    assert board.read() is not None  # SAMPLE 0: START_STREAM's ACK, before it, is in
    apply_alternating(board, len(frames))
    assert link.written[-1] == fit[-1] and beyond not in link.written
    assert board.stats.held_back == 1
    link.device_sends(b"".join(ack(3 + k, p.StimShaped, p.AckCode.OK, 10 + k)
                               for k in range(len(fit))))
    deadline = time.monotonic() + 2.0
    while link.written[-1] != whole_state and time.monotonic() < deadline:
        board.apply(1.0, [SHAPED_35])  # the loop goes on; the state waits for room
        time.sleep(0.001)
    assert link.written[-1] == whole_state
    board.close()
    assert board.stop_confirmed and board.fault is None
    link.assert_done()


def test_stop_all_passes_a_full_window_until_the_receive_buffer_is_full():
    """STOP_ALL is held back by nothing but a full receive buffer (BOARD_RX_BUFFER_BYTES);
    the STOP_ALLs already in it say what a further one would."""
    fit = alternating(3, p.COMMAND_WINDOW_BYTES // len(alternating(3, 1)[0]))
    stop_bytes = len(p.StopAll().encode(0))
    stops = (p.BOARD_RX_BUFFER_BYTES - sum(map(len, fit))) // stop_bytes
    first_stop = 3 + len(fit)
    answers = b"".join(ack(3 + k, p.StimShaped, p.AckCode.OK, 10 + k) for k in range(len(fit)))
    answers += b"".join(ack(first_stop + k, p.StopAll, p.AckCode.OK, 30 + k)
                        for k in range(stops))
    closing = first_stop + stops
    link = ScriptedLink([
        *exchanges(NEWEST[:5]),
        *[(frame, b"") for frame in fit],
        *[(p.StopAll().encode(first_stop + k), b"") for k in range(stops)],
        (p.StopAll().encode(closing), ack(closing, p.StopAll, p.AckCode.OK, 60)),
        (p.StopStream().encode(closing + 1), ack(closing + 1, p.StopStream, p.AckCode.OK, 61)),
    ])
    board = board_on(link)
    board.connect()
    assert board.read() is not None  # SAMPLE 0: START_STREAM's ACK, before it, is in
    apply_alternating(board, len(fit))
    for _ in range(stops + 3):  # the last three find the buffer full
        board.stop_all()
    assert link.written[-1] == p.StopAll().encode(closing - 1)
    link.device_sends(answers)
    board.close()
    assert board.stop_confirmed
    link.assert_done()


def test_a_write_off_the_script_fails_where_it_was_made():
    link = ScriptedLink([(bytes.fromhex("06 01 01 01 8d ef 00"), b"")])  # HELLO v1
    board = board_on(link)
    with pytest.raises(AssertionError, match="host wrote 06 01 01 04"):
        board.connect()  # the driver greets in its newest version first
    assert link.mismatch is not None and link.written == [p.Hello(p.PROTOCOL_VERSION).encode(1)]
    link.close()  # the link fails under the driver: closing it is then quiet
    board.close()
