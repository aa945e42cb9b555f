"""The wire format: CRC, COBS, frames and messages, and a decoder that survives any bytes."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ports import StimCommand
from hw import protocol as p


def crc16_bitwise(data: bytes) -> int:
    """CRC-16/CCITT-FALSE written out bit by bit, independently of binascii."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_is_ccitt_false():
    assert p.crc16(b"123456789") == 0x29B1  # the catalogue check value
    assert crc16_bitwise(b"123456789") == 0x29B1


@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition(data):
    assert p.crc16(data) == crc16_bitwise(data)


@given(st.binary(max_size=600))
def test_cobs_round_trip_without_zero_bytes(data):
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert p.cobs_decode(encoded) == data
    if len(data) <= p.MAX_FRAME_BYTES:
        assert len(encoded) == len(data) + 1


def test_cobs_examples_from_the_paper():
    # Cheshire and Baker 1999 / the Wikipedia table of examples.
    assert p.cobs_encode(b"\x00") == b"\x01\x01"
    assert p.cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert p.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert p.cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    full = bytes(range(1, 255))
    assert p.cobs_encode(full) == b"\xff" + full
    assert p.cobs_encode(full + b"\x00") == b"\xff" + full + b"\x01\x01"


def test_largest_frame_passes_the_decoder():
    body = bytes(range(1, 251))  # no zero byte: the worst case for the encoded size
    wire = p.encode_frame(0x04, 1, body)
    (frame,) = p.FrameDecoder().feed(wire)
    assert frame.payload == body


#: Frames byte for byte (docs/protocol.md, section "Worked examples", has the first).
GOLDEN = [
    (p.Heartbeat(1000), 5, "05 06 05 e8 03 01 03 f8 df 00"),
    (p.Stim(7, (p.ChannelSetting(0, 1, 3500, 300, 4000),)), 9,
     "04 04 09 07 01 01 02 01 0a 01 ac 0d 2c 01 a0 0f b4 5d 00"),
    # ODFS-like: 35 mA, 300 us, 40 Hz, gap 50 us (0x0032), anodic ratio 4.00 (400 = 0x0190).
    (p.StimShaped(7, (p.ChannelSetting(0, 1, 3500, 300, 4000, 50, 400),)), 9,
     "04 08 09 07 01 01 02 01 09 01 ac 0d 2c 01 a0 0f 32 05 90 01 36 d5 00"),
    # Two channels, the second off (its shape fields are the symmetric defaults).
    (p.StimShaped(0x01020304, (p.ChannelSetting(1, 1, 100, 20, 2000, 0, 250),
                               p.ChannelSetting.off(0))), 0xFE,
     "0b 08 fe 04 03 02 01 02 01 01 64 02 14 03 d0 07 01 02 fa 01 01 01 01 01 01 01 01 01 "
     "01 02 64 03 80 25 00"),
]


@pytest.mark.parametrize(("message", "seq", "wire"), GOLDEN)
def test_golden_frames(message, seq, wire):
    data = bytes.fromhex(wire)
    assert message.encode(seq) == data
    (frame,) = p.FrameDecoder().feed(data)
    assert (frame.type, frame.seq) == (message.TYPE, seq)
    assert p.parse(frame) == message


def test_every_message_round_trips():
    info = p.Info(1, 1, 1, 0, 0, 7, 2, 500, 6000, 500, 6000, 3000, 100, 2000, 16, 2, 7, 0)
    messages = [
        p.Hello(), p.StartStream(), p.StopStream(), p.StopAll(), p.GetStatus(),
        p.Heartbeat(3), p.DebugTruth(1), info, p.Ack(4, 4, 0),
        p.SampleFrame(9, 18000, 1, -2, 3, -4, 5, -6, 4321, 3),
        p.Status(1, 1, 0, 3, 10, 0, 0, 250, 900), p.Fault(1, 255, 123456),
        p.TruthEvent(3, 99), p.TruthSamples(64, (p.TruthRow(-1000, 250, 65535, 1),)),
        p.Stim(1, tuple(p.ChannelSetting(c, 1, 100 * c, 200, 3300) for c in range(8))),
        p.StimShaped(2, tuple(p.ChannelSetting(c, 1, 100, 200, 3300, c, 100 + c)
                              for c in range(8))),
        dataclasses.replace(info, protocol_version=2, max_interphase_gap_us=500,
                            max_anodic_ratio_x100=1000),
    ]
    decoder = p.FrameDecoder()
    stream = b"".join(m.encode(i) for i, m in enumerate(messages))
    frames = decoder.feed(stream)
    assert [p.parse(f) for f in frames] == messages
    assert decoder.bad_frames == 0


def test_commands_convert_to_wire_units_and_back():
    command = StimCommand(1, True, 35.004, 300.2, 40.0)
    setting = p.ChannelSetting.from_command(command)
    assert setting == p.ChannelSetting(1, 1, 3500, 300, 4000)
    # Never rounded up (the value checked is the ceiling of the value sent), and a
    # value a whole number of steps does not lose one to float arithmetic.
    assert p.ChannelSetting.from_command(StimCommand(0, True, 35.009, 300.9, 39.999)) == (
        p.ChannelSetting(0, 1, 3500, 300, 3999))
    small = StimCommand(0, True, 0.29, 300.0, 40.0)  # 0.29 x 100 = 28.999999999999996
    assert p.ChannelSetting.from_command(small).amplitude_10ua == 29
    assert not setting.shaped
    assert setting.to_command() == StimCommand(1, True, 35.0, 300.0, 40.0)
    assert p.ChannelSetting.from_command(StimCommand.off(3)).to_command() == StimCommand.off(3)
    with pytest.raises(ValueError):
        p.ChannelSetting.from_command(StimCommand(0, True, 1e6, 300.0, 40.0))


def test_pulse_shapes_convert_to_wire_units_and_back():
    odfs = StimCommand(0, True, 40.0, 300.0, 40.0, 50.2, 4.0)
    setting = p.ChannelSetting.from_command(odfs)
    assert setting == p.ChannelSetting(0, 1, 4000, 300, 4000, 50, 400) and setting.shaped
    assert setting.to_command() == StimCommand(0, True, 40.0, 300.0, 40.0, 50.0, 4.0)
    # In whole steps of the wire (1 us, 0.01) toward the safe side: the anodic width
    # ratio up, so the recovery phase's current (amplitude / ratio) is never above it.
    assert p.ChannelSetting.from_command(
        StimCommand(0, True, 40.0, 300.0, 40.0, 0.0, 3.333)
    ).anodic_ratio_x100 == 334
    for bad in (StimCommand(0, True, 40.0, 300.0, 40.0, 0.0, 0.99),
                StimCommand(0, True, 40.0, 300.0, 40.0, -1.0, 1.0),
                StimCommand(0, True, 40.0, 300.0, 40.0, 0.0, math.nan),
                StimCommand(0, True, 40.0, 300.0, 40.0, 70000.0, 1.0)):
        with pytest.raises(ValueError, match="does not fit the wire"):
            p.ChannelSetting.from_command(bad)


def test_info_layout_follows_its_protocol_version():
    v1 = p.Info(1, 1, 1, 0, 0, 7, 2, 500, 6000, 500, 6000, 3000, 100, 2000, 16, 2, 7, 0)
    v2 = dataclasses.replace(v1, protocol_version=2, max_interphase_gap_us=200,
                             max_anodic_ratio_x100=400)
    assert len(v1.pack()) == 28 and len(v2.pack()) == 32
    assert v2.pack()[:28] == dataclasses.replace(v1, protocol_version=2).pack()[:28]
    assert p.Info.unpack(v1.pack()) == v1 and not v1.shaped_pulses
    assert p.Info.unpack(v2.pack()) == v2 and v2.shaped_pulses
    for wrong in (v1.pack() + b"\x00\x00\x00\x00", v2.pack()[:28], v2.pack()[:31]):
        with pytest.raises(p.ProtocolError) as err:
            p.Info.unpack(wrong)
        assert err.value.code == p.AckCode.BAD_LENGTH
    # Version 3 (the 1 Mbaud link) has version 2's layout.
    v3 = dataclasses.replace(v2, protocol_version=3)
    assert p.Info.unpack(v3.pack()) == v3 and v3.shaped_pulses and len(v3.pack()) == 32
    # Version 4 adds the board's charge limit (0.01 uC) and duty limit (0.1 %), 36 bytes;
    # older ones have neither, and their charge limit is their amplitude limit x their
    # pulse width limit.
    v4 = dataclasses.replace(v2, protocol_version=4, max_charge_cuc=2000, max_duty_permille=500)
    assert p.Info.unpack(v4.pack()) == v4 and len(v4.pack()) == 36
    assert v4.pack()[:32] == dataclasses.replace(v2, protocol_version=4).pack()[:32]
    assert v4.board_charge_limit_uc == pytest.approx(20.0)
    assert v3.max_charge_cuc is None and v3.board_charge_limit_uc == pytest.approx(30.0)
    assert v3.max_duty_permille is None
    for wrong in (v4.pack()[:32], v4.pack()[:34], v3.pack() + b"\x00\x00"):
        with pytest.raises(p.ProtocolError):
            p.Info.unpack(wrong)
    # A later version is read as far as version 1's 28 bytes, so it can be named.
    later = p.Info.unpack(v1.pack()[:1] + b"\x05" + v1.pack()[2:] + b"\x01\x02\x03")
    assert later.protocol_version == 5 and later.board_id == 7


SHAPED_ITEM = p.ChannelSetting.SHAPED_LAYOUT.size


@settings(max_examples=300)
@given(st.integers(0, 2**32 - 1), st.integers(0, 255), st.binary(max_size=200))
def test_stim_shaped_decodes_exactly_its_counted_length(ref, count, tail):
    """STIM_SHAPED has 5 + 12 n bytes, n = count >= 1: any other length, a zero count
    included, is BAD_LENGTH; the right length decodes to settings that re-encode
    byte for byte."""
    payload = p.Stim._HEADER.pack(ref, count) + tail
    frame = p.FrameDecoder().feed(p.encode_frame(p.FrameType.STIM_SHAPED, 1, payload))[0]
    if count == 0 or len(tail) != count * SHAPED_ITEM:
        with pytest.raises(p.ProtocolError) as err:
            p.parse(frame)
        assert err.value.code == p.AckCode.BAD_LENGTH
        return
    message = p.parse(frame)
    assert isinstance(message, p.StimShaped) and len(message.settings) == count
    assert message.pack() == payload


@given(st.binary(max_size=60))
def test_a_stim_payload_is_never_read_as_stim_shaped_or_back(payload):
    """The two variants never decode each other's frames into a different command: a
    payload valid for one is BAD_LENGTH for the other unless both lengths coincide
    (5 + 8 n = 5 + 12 m with n = 3 m, different counts: still rejected)."""
    for kind in (p.Stim, p.StimShaped):
        try:
            message = kind.unpack(payload)
        except p.ProtocolError as err:
            assert err.code == p.AckCode.BAD_LENGTH
            continue
        other = p.StimShaped if kind is p.Stim else p.Stim
        with pytest.raises(p.ProtocolError):
            other.unpack(payload)
        assert message.pack() == payload


def test_wrong_lengths_and_types_are_refused_with_their_code():
    with pytest.raises(p.ProtocolError) as err:
        p.parse(p.Frame(p.FrameType.HEARTBEAT, 1, b"\x00\x00\x00"))
    assert err.value.code == p.AckCode.BAD_LENGTH
    with pytest.raises(p.ProtocolError) as err:
        short = p.Stim(1, (p.ChannelSetting(0, 0, 0, 0, 0),)).pack()[:-1]
        p.parse(p.Frame(p.FrameType.STIM, 1, short))
    assert err.value.code == p.AckCode.BAD_LENGTH
    with pytest.raises(p.ProtocolError) as err:
        p.parse(p.Frame(0x55, 1, b""))
    assert err.value.code == p.AckCode.UNKNOWN_TYPE


def test_decoder_resynchronises_after_garbage():
    good = p.Heartbeat(1).encode(1)
    decoder = p.FrameDecoder()
    frames = decoder.feed(b"\x13\x37\xff" * 200 + b"\x00" + good[:4])
    frames += decoder.feed(good[4:] + b"\x00\x00" + good)
    assert [p.parse(f) for f in frames] == [p.Heartbeat(1), p.Heartbeat(1)]
    assert decoder.bad_frames == 1


@settings(max_examples=300)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_decoder_never_raises_and_yields_only_crc_valid_frames(data, chunk):
    decoder = p.FrameDecoder()
    frames = []
    for start in range(0, len(data), chunk):
        frames += decoder.feed(data[start : start + chunk])
    for frame in frames:
        body = bytes((frame.type, frame.seq)) + frame.payload
        assert len(body) + 2 <= p.MAX_FRAME_BYTES
        # Whatever the decoder yields re-encodes to a frame present in the input.
        assert p.encode_frame(frame.type, frame.seq, frame.payload)[:-1] in data


def test_every_frame_shown_in_the_protocol_document_is_what_its_note_says():
    text = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    lines = re.findall(r"^(H>B|B>H)  ([0-9a-f ]+) \| (.*)$", text, flags=re.M)
    assert len(lines) >= 16
    for direction, wire, note in lines:
        decoder = p.FrameDecoder()
        (frame,) = decoder.feed(bytes.fromhex(wire))
        message = p.parse(frame)
        assert note.split()[0] == message.TYPE.name
        assert (message.TYPE < 0x80) == (direction == "H>B")
        if direction == "H>B":
            assert f"seq {frame.seq}" in note


def test_the_flow_control_figures_of_the_protocol_document_are_the_hosts():
    """Section 3 states the receive buffer a board must have and the host's windows."""
    text = " ".join((Path(__file__).resolve().parent.parent / "docs" / "protocol.md")
                    .read_text().split())
    assert f"at least {p.BOARD_RX_BUFFER_BYTES} bytes of received frames" in text
    assert f"over {p.COMMAND_WINDOW_BYTES} bytes (`COMMAND_WINDOW_BYTES`)" in text
    assert f"only while it would bring them over {p.BOARD_RX_BUFFER_BYTES}" in text
    assert f"The last {p.BOARD_RX_BUFFER_BYTES - p.COMMAND_WINDOW_BYTES} bytes" in text
