"""Fuzzing the wire: random and mutated byte streams into the frame decoder, the board's
firmware (the emulator's), the emulator on its pty and the host driver's reader.

Properties: nothing raises (a decoder or reader thread that dies is a board gone deaf);
every frame accepted has a correct CRC; the firmware never holds an output beyond its
own limits, whatever it was sent; every frame it sends decodes and fits the wire. The
default run is a fixed (derandomized) sample, a few seconds per test; ``-m slow`` draws
10,000 cases each afresh.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import pytest
from helpers.fuzzing import weighted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ports import StimCommand
from controller.safety import SafetyLimits
from hw import protocol as p
from hw.board import Board, BoardRequirements
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import Firmware, FirmwareSettings
from sim.limb import SimulatedLimb
from sim.patient import load_patient

#: The default run: a fixed (derandomized) sample, so that CI is repeatable; the slow run
#: draws afresh.
CI = settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
#: Sorts of sequence numbers a stream may carry: in order, repeated, or anything.
SEQ = st.integers(0, 255)
U16 = st.integers(0, 0xFFFF)


# ---- valid traffic, then mutated ------------------------------------------------------

def mostly(low: int, high: int) -> st.SearchStrategy[int]:
    """Mostly within (or just beyond) a board's limits, sometimes anything a u16 holds."""
    return weighted((9, st.integers(low, high)), (1, U16))


SETTING = st.builds(
    p.ChannelSetting, st.sampled_from([0, 0, 0, 1, 1, 2, 255]),
    st.sampled_from([1, 1, 1, 1, 0, 2]),
    mostly(1, 6100), mostly(1, 510), mostly(1, 6100), mostly(0, 510),
    st.one_of(st.just(100), mostly(90, 1010)),
)
HOST_MESSAGE = st.one_of(
    st.builds(p.Hello, st.integers(0, 3)),
    st.just(p.StartStream()), st.just(p.StopStream()), st.just(p.StopAll()),
    st.just(p.GetStatus()),
    st.builds(p.Heartbeat, st.integers(0, 2**32 - 1)),
    st.builds(p.DebugTruth, st.integers(0, 1)),
    st.builds(p.Stim, st.integers(0, 2**32 - 1), st.lists(SETTING, min_size=1, max_size=4)
              .map(tuple)),
    st.builds(p.StimShaped, st.integers(0, 2**32 - 1),
              st.lists(SETTING, min_size=1, max_size=4).map(tuple)),
)
INFO = st.builds(
    p.Info, SEQ, st.integers(1, 2), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
    st.integers(0, 2**32 - 1), st.integers(0, 8), U16, U16, U16, U16, U16, U16, U16,
    st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), U16, U16,
)
BOARD_MESSAGE = st.one_of(
    INFO,
    st.builds(p.Ack, SEQ, st.integers(0, 255), st.integers(0, 255)),
    st.builds(p.SampleFrame, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              *[st.integers(-32768, 32767)] * 6, U16, st.integers(0, 255)),
    st.builds(p.Status, st.integers(0, 2**32 - 1), *[st.integers(0, 255)] * 3, *[U16] * 5),
    st.builds(p.Fault, st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1)),
    st.builds(p.TruthEvent, st.integers(0, 255), st.integers(0, 2**32 - 1)),
    st.builds(p.TruthSamples, st.integers(0, 2**32 - 1), st.lists(
        st.builds(p.TruthRow, st.integers(-32768, 32767), st.integers(-32768, 32767), U16,
                  st.integers(0, 255)), max_size=p.TruthSamples.MAX_ROWS).map(tuple)),
)


@st.composite
def stream_of(draw: st.DrawFn, messages: st.SearchStrategy[p.Message]) -> bytes:
    """Valid frames of ``messages`` back to back, numbered as a sender numbers them
    (one more each time), a session often opened by HELLO first."""
    seq = draw(SEQ)
    items = draw(st.lists(messages, max_size=30))
    if draw(st.booleans()):
        items.insert(0, p.Hello(draw(st.sampled_from([1, 2, 2, 3]))))
    return b"".join(m.encode((seq + i) & 0xFF) for i, m in enumerate(items))


@st.composite
def mutated(draw: st.DrawFn, stream: st.SearchStrategy[bytes]) -> bytes:
    """A stream with up to 8 mutations: bits flipped, bytes dropped, inserted or
    repeated, the tail cut, zero bytes (delimiters) added."""
    data = bytearray(draw(stream))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=20))
            continue
        i = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "drop", "insert", "repeat", "cut", "zero"]))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "drop":
            del data[i]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=10))
        elif kind == "repeat":
            data[i:i] = data[i:i + draw(st.integers(1, 40))]
        elif kind == "cut":
            del data[i:]
        else:
            data.insert(i, 0)
    return bytes(data)


#: A setting the emulated board accepts (within its default limits).
VALID_SETTING = st.builds(
    p.ChannelSetting, st.sampled_from([0, 1]), st.just(1), st.integers(1, 6000),
    st.integers(1, 500), st.integers(1, 6000), st.integers(0, 500), st.integers(100, 1000),
)
#: What a host sends in a session: one or two channels' settings, keep-alives, stops.
IN_SESSION = weighted(
    (8, st.builds(p.StimShaped, st.integers(0, 2**32 - 1), st.lists(
        weighted((5, VALID_SETTING), (1, SETTING)), min_size=1, max_size=2,
        unique_by=lambda s: s.channel).map(tuple))),
    (2, st.builds(p.Heartbeat, st.integers(0, 2**32 - 1))), (1, st.just(p.StopAll())),
    (1, st.just(p.StartStream())), (1, HOST_MESSAGE),
)


@st.composite
def session(draw: st.DrawFn) -> bytes:
    """HELLO in version 2, then a session's traffic, numbered in order."""
    seq = draw(SEQ)
    items = [p.Hello(2), *draw(st.lists(IN_SESSION, max_size=30))]
    return b"".join(m.encode((seq + i) & 0xFF) for i, m in enumerate(items))


def any_stream(messages: st.SearchStrategy[p.Message]) -> st.SearchStrategy[bytes]:
    """Random bytes, valid traffic, or mutated traffic."""
    return st.one_of(st.binary(max_size=600), stream_of(messages), mutated(stream_of(messages)))


#: What the board may receive: any stream, a session, a mutated session.
HOST_STREAM = weighted((1, any_stream(HOST_MESSAGE)), (3, session()), (2, mutated(session())))
#: Board time between two reads: mostly a few ms, sometimes beyond its timeout.
STEPS_MS = st.lists(weighted((4, st.integers(0, 20)), (1, st.integers(0, 300))), max_size=20)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut where a serial read might return."""
    out, start = [], 0
    for size in sizes:
        out.append(data[start:start + size])
        start += size
    return [*out, data[start:]]


CHUNKS = st.lists(st.integers(1, 64), max_size=20)


# ---- the decoder ----------------------------------------------------------------------


def check_decoder(data: bytes, sizes: list[int]) -> None:
    decoder = p.FrameDecoder()
    frames = [f for chunk in chunked(data, sizes) for f in decoder.feed(chunk)]
    for frame in frames:
        assert len(frame.payload) + 4 <= p.MAX_FRAME_BYTES
        try:
            message = p.parse(frame)
        except p.ProtocolError:
            continue
        # What parses re-encodes to the very bytes it came from.
        assert message.encode(frame.seq) == p.encode_frame(frame.type, frame.seq, frame.payload)
    assert decoder.good_frames == len(frames)


@CI
@given(any_stream(st.one_of(HOST_MESSAGE, BOARD_MESSAGE)), CHUNKS)
def test_the_decoder_takes_any_bytes_and_returns_only_whole_valid_frames(data, sizes):
    check_decoder(data, sizes)


# ---- the board's firmware -------------------------------------------------------------

BOARD = FirmwareSettings(comm_timeout_ms=200)
PROFILE = load_patient("moderate")


def within_the_boards_limits(firmware: Firmware) -> bool:
    """Assert every output is within the board's own limits; True if any is on."""
    s = firmware.settings
    for setting in firmware.outputs:
        if not setting.on:
            continue
        command = setting.to_command()
        assert command.amplitude_ma <= s.max_amplitude_ma + 1e-9
        assert command.pulse_width_us <= s.max_pulse_width_us
        assert command.frequency_hz <= s.max_frequency_hz + 1e-9
        assert command.interphase_gap_us <= s.max_interphase_gap_us
        assert 1.0 <= command.anodic_width_ratio <= s.max_anodic_width_ratio + 1e-9
        if firmware.version < p.SHAPED_PULSES_VERSION:
            assert not setting.shaped
    return bool(firmware.channels_on())


def check_firmware(data: bytes, sizes: list[int], steps_ms: list[int]) -> int:
    """Feed ``data`` to a fresh firmware in chunks, time passing between them; return how
    many of the checks found an output on (so a run can show it reached stimulation)."""
    limb = SimulatedLimb(PROFILE, float(BOARD.sample_rate_hz), 3.0, 0, channels=BOARD.channels)
    firmware = Firmware(BOARD, limb)
    decoder = p.FrameDecoder()
    now = 0.0
    answers = p.FrameDecoder()
    stimulating = 0
    for chunk, step_ms in zip(chunked(data, sizes), [*steps_ms, 0] * 30, strict=False):
        now += step_ms / 1000.0
        out = firmware.poll(now)
        for frame in decoder.feed(chunk):
            out += firmware.receive(frame, now)
        for wire in out:
            assert len(wire) <= p.MAX_ENCODED_BYTES + 1
            (frame,) = answers.feed(wire)  # every frame it sends is whole and valid
            p.parse(frame)
        stimulating += within_the_boards_limits(firmware)
    return stimulating


def test_the_firmware_never_exceeds_its_limits_whatever_it_receives():
    stimulating = 0

    @CI
    @given(HOST_STREAM, CHUNKS, STEPS_MS)
    def run(data, sizes, steps_ms):
        nonlocal stimulating
        stimulating += check_firmware(data, sizes, steps_ms)

    run()
    assert stimulating >= 10  # the search reached outputs on, not only refusals


# ---- the emulator on its pty ----------------------------------------------------------


@pytest.fixture(scope="module")
def served_emulator():
    emu, finish = serve_in_thread(EmulatorConfig(board=BOARD))
    fd = os.open(emu.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    yield emu, fd
    os.close(fd)
    finish()


def drain(fd: int) -> None:
    """Read and drop what the emulator sent (so its queue does not fill)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            return


def check_emulator(emu, fd: int, data: bytes) -> None:
    os.write(fd, data)
    time.sleep(0.002)
    drain(fd)
    within_the_boards_limits(emu.firmware)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(HOST_STREAM)
def test_the_emulator_serves_on_through_any_bytes(served_emulator, data):
    emu, fd = served_emulator
    check_emulator(emu, fd, data)


def test_after_the_fuzzing_the_emulator_still_answers_hello(served_emulator):
    _, fd = served_emulator
    os.write(fd, b"\x00" + p.Hello().encode(1))
    answer, decoder = [], p.FrameDecoder()
    deadline = time.monotonic() + 5.0
    while not answer and time.monotonic() < deadline:
        try:
            answer = [m for m in map(p.parse, decoder.feed(os.read(fd, 65536)))
                      if isinstance(m, p.Info)]
        except BlockingIOError:
            time.sleep(0.01)
    assert answer


# ---- the host driver's reader ---------------------------------------------------------

REQUIRE = BoardRequirements(SafetyLimits(), 500.0)
GOOD_INFO = p.Info(1, 2, 1, 1, 0, 1, 2, 500, 6000, 500, 6000, 3000, 100, 2000, 16, 2, 7, 0,
                   500, 1000)


def check_host_reader(data: bytes, sizes: list[int]) -> None:
    """The reader thread's work on every frame of ``data``, as after a connection."""
    board = Board("loop://", REQUIRE)
    board.info = GOOD_INFO
    board._desired = [p.ChannelSetting.off(c) for c in range(GOOD_INFO.channels)]
    decoder = p.FrameDecoder()
    for chunk in chunked(data, sizes):
        for frame in decoder.feed(chunk):
            board._on_frame(frame)
        board._check_link()
    while not board._samples.empty():
        item = board._samples.get_nowait()
        if item is not None:
            index, sample = item
            assert 0 <= index < 2**32
            assert math.isnan(sample.gyro_rad_s) or abs(sample.gyro_rad_s) < 40.0
    if board.fault is not None:
        assert board.fault.kind in ("link", "board", "host")
    board.apply(0.0, [StimCommand.off(0)])  # the driver is still usable


@CI
@given(any_stream(BOARD_MESSAGE), CHUNKS)
def test_the_host_reader_takes_any_board_stream(data, sizes):
    check_host_reader(data, sizes)


# ---- 10,000 cases each ----------------------------------------------------------------


def tried(check: Callable[..., None], *strategies: st.SearchStrategy) -> int:
    count = 0

    @SLOW
    @given(st.tuples(*strategies))
    def run(args):
        nonlocal count
        count += 1
        check(*args)

    run()
    return count


@pytest.mark.slow
def test_10000_cases_each_decoder_firmware_host_reader():
    counts = {
        "decoder": tried(check_decoder, any_stream(st.one_of(HOST_MESSAGE, BOARD_MESSAGE)),
                         CHUNKS),
        "firmware": tried(check_firmware, HOST_STREAM, CHUNKS, STEPS_MS),
        "host reader": tried(check_host_reader, any_stream(BOARD_MESSAGE), CHUNKS),
    }
    print(f"\nprotocol fuzz: cases tried {counts}, failures 0")
    assert min(counts.values()) >= 10_000

