"""ScienceMode 4 on the wire (the emulator's side, ``hw.p24.sciencemode``), checked
against the ``science_mode_4`` library's own encoding and decoding: two readings of the
same public description must agree byte for byte, and the reader must never hand on a
packet that was not sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.p24 import sciencemode as w
from hw.p24.library import sm

numbers = st.integers(0, 63)
commands = st.integers(0, 1023)


def test_crc_is_xmodem():
    assert w.crc(b"123456789") == 0x31C3  # the catalogue's check value of CRC-16/XMODEM


@given(st.binary(max_size=300))
def test_crc_matches_the_library_s_table(data):
    assert w.crc(data) == sm.Crc16.crc16_xmodem(data)


def test_a_packet_of_the_instructions_example_shape():
    """Get_stim_status, packet number 0: 12 bytes, length and CRC always stuffed."""
    raw = w.encode(w.Packet(w.Command.GET_STIM_STATUS, 0, b""))
    assert len(raw) == 12 and raw[0] == w.START and raw[-1] == w.STOP
    assert raw[1] == raw[3] == raw[5] == raw[7] == w.STUFFING
    assert (raw[2] ^ w.STUFFING_KEY, raw[4] ^ w.STUFFING_KEY) == (0, 12)
    assert raw[9:11] == bytes((0x00, 62))


@given(commands, numbers, st.binary(min_size=1, max_size=120))
def test_round_trip_and_the_library_reads_what_the_device_sends(command, number, data):
    """(The library looks for the stop byte from 12 bytes after the start, so it never
    finds a packet without command data; the device sends none: every answer carries at
    least its result byte.)"""
    raw = w.encode(w.Packet(command, number, data))
    assert w.decode(raw) == w.Packet(command, number, data)
    # The body never carries an unstuffed start, stop or stuffing byte.
    body = raw[9:-1].replace(b"\x81\xa5", b"").replace(b"\x81\x5a", b"").replace(
        b"\x81\xd4", b"")
    assert not set(body) & w.RESERVED
    found = sm.Protocol.find_packet_in_buffer(b"\x00\x0f" + raw)
    assert found == (2, len(raw) + 1)
    assert sm.Protocol.extract_packet_data(raw) == (command, number, data)


@given(numbers, st.lists(st.tuples(st.integers(0, 4095), st.integers(-300, 300)),
                         min_size=1, max_size=16),
       st.booleans(), st.integers(0, 3), st.integers(0, 1))
def test_the_device_reads_what_the_library_sends(number, points, execute, channel, connector):
    packet = sm.PacketLowLevelChannelConfig()
    packet.number = number
    packet.execute_stimulation = execute
    packet.channel = sm.Channel(channel)
    packet.connector = sm.Connector(connector)
    packet.points = [sm.ChannelPoint(us, half_ma / 2.0) for us, half_ma in points]
    decoded = w.decode(sm.Protocol.packet_to_bytes(packet))
    assert (decoded.command, decoded.number) == (w.Command.LL_CHANNEL_CONFIG, number)
    assert decoded.data == bytes(packet.get_data())


@given(st.lists(st.tuples(commands, numbers, st.binary(max_size=40)), max_size=8),
       st.lists(st.integers(1, 50), max_size=10), st.binary(max_size=30))
def test_reader_finds_every_packet_however_the_stream_is_cut(packets, cuts, noise):
    stream = noise.replace(b"\xf0", b"") + b"".join(
        w.encode(w.Packet(c, n, d)) for c, n, d in packets
    )
    reader = w.PacketReader()
    got: list = []
    at = 0
    for cut in [*cuts, len(stream)]:
        got += reader.feed(stream[at : at + cut])
        at += cut
    got += reader.feed(stream[at:])
    assert [g for g in got if isinstance(g, w.Packet)] == [
        w.Packet(c, n, d) for c, n, d in packets
    ]


@given(commands, numbers, st.binary(max_size=40), st.data())
def test_a_corrupted_packet_is_never_taken_for_another(command, number, data, draw):
    raw = bytearray(w.encode(w.Packet(command, number, data)))
    at = draw.draw(st.integers(1, len(raw) - 2))
    raw[at] ^= 1 << draw.draw(st.integers(0, 7))
    following = w.encode(w.Packet(62, 1, b""))
    out = w.PacketReader().feed(bytes(raw) + following)
    packets = [p for p in out if isinstance(p, w.Packet)]
    # The corrupted packet is rejected (never read as another); the next one survives.
    assert packets[-1:] == [w.Packet(62, 1, b"")]
    assert all(p == w.Packet(62, 1, b"") for p in packets)


@pytest.mark.parametrize("bad", [
    b"\xf0\x81\x55\x81\x59\x81\x82\x81\xc8\x00\x3e\x0e",  # no stop byte at the end
    b"\xf0\x81\x55\x81\x58\x81\x82\x81\xc8\x00\x3e\x0f",  # length 13 for 12 bytes
    b"\xf0\x81\x55\x81\x59\x81\x82\x81\xc9\x00\x3e\x0f",  # CRC off by one
    b"\xf0\x00\x55\x81\x59\x81\x82\x81\xc8\x00\x3e\x0f",  # length not stuffed
])
def test_decode_names_what_is_wrong(bad):
    assert w.decode(b"\xf0\x81\x55\x81\x59\x81\x82\x81\xc8\x00\x3e\x0f") == w.Packet(62, 0, b"")
    with pytest.raises(w.BadPacket):
        w.decode(bad)
