"""The emulated P24, checked by the real client: the unmodified ``science_mode_4`` library
runs the general, mid-level and low-level commands against ``fes board-emulator --device
p24``'s device over a pty without an error, and the pulses the device logs are the ones
asked for (period, current, width). The device model's documented behaviour (keep-alive,
errors, the low level's buffer) is checked on a clock of the test's own."""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from collections.abc import Iterator

import numpy as np
import pytest

from hw.p24.device import KEEP_ALIVE_S, LL_TIMEOUT_STIMULATION, LOW_LEVEL_BUFFER, P24Device
from hw.p24.emulator import serve_p24_in_thread
from hw.p24.library import sm
from hw.p24.sciencemode import Command, Packet, Result, StimStatus


class Bench:
    """An emulated P24 on a pty, the library connected to it, the device's log."""

    def __init__(self) -> None:
        self.log = io.StringIO()
        self.emulator, self._finish = serve_p24_in_thread(self.log)
        self.connection = sm.SerialPortConnection(self.emulator.path)
        self.connection.open()
        self.device = sm.DeviceP24(self.connection)
        self.aio = asyncio.new_event_loop()

    def run(self, coroutine):  # the library's coroutines have no type hints
        return self.aio.run_until_complete(coroutine)

    def mid_level(self):  # the library's layer
        """The device initialised (general layer) and its mid level initialised."""
        self.run(self.device.initialize())
        mid = self.device.get_layer_mid_level()
        self.run(mid.init(False))
        return mid

    def events(self, kind: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in self.log.getvalue().splitlines()]
        return [r for r in rows if kind is None or r["event"] == kind]

    def close(self) -> None:
        self.connection.close()
        self._finish()
        self.aio.close()


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench()
    try:
        yield b
    finally:
        b.close()


def test_the_library_initialises_the_device(bench):
    bench.run(bench.device.initialize())
    general = bench.device.get_layer_general()
    assert general.device_id == "P24EMU0001"
    assert general.science_mode_version == "4.0.0"
    status = bench.run(general.get_stim_status())
    assert status.stim_status == sm.StimStatus.NO_LEVEL_INITIALIZED
    assert not status.high_voltage_on


def test_mid_level_pulses_are_what_was_asked(bench):
    mid = bench.mid_level()
    red = sm.MidLevelChannelConfiguration(
        True, 0, 25, [sm.ChannelPoint(300, 35.0), sm.ChannelPoint(300, -35.0)])
    white = sm.MidLevelChannelConfiguration(
        True, 0, 40, [sm.ChannelPoint(200, 12.5), sm.ChannelPoint(50, 0.0),
                      sm.ChannelPoint(800, -3.0)])
    bench.run(mid.update([red, None, None, white]))
    status = bench.run(bench.device.get_layer_general().get_stim_status())
    assert status.stim_status == sm.StimStatus.MID_LEVEL_RUNNING and status.high_voltage_on
    time.sleep(0.3)
    data = bench.run(mid.get_current_data())
    assert data.is_stimulation_active_per_channel == [True, False, False, True] + [False] * 4
    assert all(e == sm.ResultAndError.NO_ERROR for e in data.channel_error)
    time.sleep(0.2)
    bench.run(mid.stop())
    pulses = bench.events("pulse")
    for channel, period_ms, points in (
        (0, 25.0, [[300, 35.0], [300, -35.0]]),
        (3, 40.0, [[200, 12.5], [50, 0.0], [800, -3.0]]),
    ):
        mine = [p for p in pulses if p["channel"] == channel]
        assert len(mine) >= 10
        assert all(p["points"] == points and p["period_ms"] == period_ms for p in mine)
        assert mine[0]["current_ma"] == points[0][1] and mine[0]["width_us"] == points[0][0]
        gaps = np.diff([p["monotonic_s"] for p in mine]) * 1000.0
        assert np.allclose(gaps, period_ms, atol=1e-6)
    end = bench.events("mid_level_stop")[0]["monotonic_s"]
    assert max(p["monotonic_s"] for p in pulses) < end


def test_low_level_fires_one_pulse_per_command(bench):
    bench.run(bench.device.initialize())
    low = bench.device.get_layer_low_level()
    bench.run(low.init(sm.LowLevelMode.NO_MEASUREMENT, sm.LowLevelHighVoltageSource.STANDARD))
    sent = []
    for i in range(5):
        current = 10.0 + 2.5 * i
        sent.append(time.monotonic())
        points = [sm.ChannelPoint(150 + i, current), sm.ChannelPoint(150 + i, -current)]
        low.send_channel_config(True, sm.Channel.BLACK, sm.Connector.GREEN, points)
        time.sleep(0.02)
    time.sleep(0.05)
    acks = []
    while (ack := bench.device.packet_buffer.get_packet_from_buffer()) is not None:
        acks.append(ack)
    bench.run(low.stop())
    assert [(a.result, a.channel, a.connector) for a in acks] == [
        (sm.ResultAndError.NO_ERROR, 2, 1)] * 5
    pulses = bench.events("pulse")
    assert [(p["layer"], p["channel"], p["width_us"], p["current_ma"]) for p in pulses] == [
        ("low", 6, 150 + i, 10.0 + 2.5 * i) for i in range(5)
    ]
    for p, t in zip(pulses, sent, strict=True):
        assert 0.0 <= p["monotonic_s"] - t < 0.02  # fired when it arrived


def test_mid_level_stops_without_keep_alive_and_starts_again(bench):
    mid = bench.mid_level()
    config = sm.MidLevelChannelConfiguration(
        True, 0, 50, [sm.ChannelPoint(200, 20.0), sm.ChannelPoint(200, -20.0)])
    bench.run(mid.update([config]))
    time.sleep(KEEP_ALIVE_S + 0.3)
    status = bench.run(bench.device.get_layer_general().get_stim_status())
    assert status.stim_status == sm.StimStatus.MID_LEVEL_INITIALIZED
    timeout = bench.events("keep_alive_timeout")
    update = bench.events("train_start")[0]["monotonic_s"]
    assert len(timeout) == 1 and timeout[0]["monotonic_s"] == pytest.approx(update + KEEP_ALIVE_S)
    last_pulse = bench.events("pulse")[-1]["monotonic_s"]
    assert last_pulse < timeout[0]["monotonic_s"]
    bench.run(mid.update([config]))  # "can be started again with Ml_update"
    bench.run(mid.stop())
    assert len(bench.events("train_start")) == 2


# --- the device model on the test's clock -----------------------------------------------


def device() -> tuple[P24Device, list[dict]]:
    log: list[dict] = []
    return P24Device(lambda event, **f: log.append({"event": event, **f})), log


def update_data(channels: dict[int, tuple[int, int, list[tuple[int, float]]]]) -> bytes:
    """Ml_update's data: channel -> (period in 0.5 ms steps, ramp, points)."""
    data = bytearray([sum(1 << c for c in channels)])
    for c in sorted(channels):
        steps, ramp, points = channels[c]
        data.append(((len(points) - 1) << 4) | ramp)
        data += (steps << 1).to_bytes(2, "big")
        for us, ma in points:
            data += ((us << 20) | (round(2 * ma + 300) << 10)).to_bytes(4, "big")
    return bytes(data)


def answer(d: P24Device, command: int, data: bytes, now: float) -> bytes:
    out = d.receive(Packet(command, 5, data), now)
    assert len(out) == 1 and out[0].number == 5
    return out[0].data


def test_keep_alive_is_renewed_by_get_current_data_only_until_it_stops():
    d, log = device()
    assert answer(d, Command.ML_INIT, b"\x00", 0.0) == b"\x00"
    assert answer(d, Command.ML_UPDATE, update_data({0: (50, 0, [(300, 30.0)])}), 1.0) == b"\x00"
    assert answer(d, Command.ML_GET_CURRENT_DATA, b"\x04", 2.5)[:3] == b"\x00\x04\x01"
    d.poll(4.49)
    assert d.channels_on() == [0]
    d.poll(4.51)
    assert d.channels_on() == []
    times = [e["monotonic_s"] for e in log if e["event"] == "pulse"]
    assert times[0] == 1.0 and times[-1] < 4.5 and len(times) == 140  # 25 ms for 3.5 s
    assert [e["monotonic_s"] for e in log if e["event"] == "keep_alive_timeout"] == [4.5]


def test_an_update_keeps_the_rhythm_and_a_ramp_rises_over_its_pulses():
    d, log = device()
    answer(d, Command.ML_INIT, b"\x00", 0.0)
    answer(d, Command.ML_UPDATE, update_data({1: (40, 3, [(200, 40.0)])}), 0.0)
    answer(d, Command.ML_UPDATE, update_data({1: (40, 0, [(200, 20.0)])}), 0.105)
    d.poll(0.2)
    pulses = [(e["monotonic_s"], e["current_ma"]) for e in log if e["event"] == "pulse"]
    assert [t for t, _ in pulses] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12,
                                                     0.14, 0.16, 0.18, 0.2])
    assert [c for _, c in pulses][:6] == [10.0, 20.0, 30.0, 40.0, 40.0, 40.0]
    assert {c for _, c in pulses[6:]} == {20.0}


def test_errors_are_reported_as_documented():
    d, _ = device()
    # A level that is not initialized, a parameter out of range, an unknown command.
    assert answer(d, Command.ML_UPDATE, update_data({0: (50, 0, [(300, 30.0)])}), 0.0) == bytes(
        [Result.NOT_INITIALIZED])
    answer(d, Command.ML_INIT, b"\x01", 0.0)  # stop on all errors
    assert answer(d, Command.LL_INIT, b"\x00", 0.0) == bytes([Result.NOT_INITIALIZED])
    bad_current = update_data({0: (50, 0, [(300, 30.0)])})[:-4] + ((300 << 20) | (601 << 10)
                                                                    ).to_bytes(4, "big")
    assert answer(d, Command.ML_UPDATE, bad_current, 0.0) == bytes([Result.PARAMETER_ERROR])
    assert answer(d, Command.ML_UPDATE, b"\x01\x00", 0.0) == bytes([Result.PARAMETER_ERROR])
    out = d.receive(Packet(200, 9, b""), 0.0)
    assert out == [Packet(Command.UNKNOWN_CMD, 9, bytes([Result.INVALID_CMD]))]
    # A pulse longer than its period: that channel's error, and (stop on all errors)
    # every channel stops.
    answer(d, Command.ML_UPDATE, update_data({0: (50, 0, [(300, 30.0)]),
                                              2: (2, 0, [(1200, 5.0)])}), 1.0)
    assert d.channels_on() == []
    data = answer(d, Command.ML_GET_CURRENT_DATA, b"\x04", 1.01)
    assert data == bytes([0, 4, 0, 0x00, 0x02, 0, 0])  # channel 2: pulse timeout
    assert d.level == StimStatus.MID_LEVEL_INITIALIZED


def test_low_level_buffers_ten_pulses_and_acknowledges_each_after_it_ran():
    d, log = device()
    answer(d, Command.LL_INIT, b"\x00", 0.0)
    long_pulse = bytes([0x80]) + ((4000 << 20) | (340 << 10)).to_bytes(4, "big")  # 20 mA
    results = [d.receive(Packet(Command.LL_CHANNEL_CONFIG, i, long_pulse), 0.0)
               for i in range(LOW_LEVEL_BUFFER + 1)]
    assert results[:-1] == [[]] * LOW_LEVEL_BUFFER  # acknowledged later
    assert results[-1][0].data[0] == LL_TIMEOUT_STIMULATION
    starts = [e["monotonic_s"] for e in log if e["event"] == "pulse"]
    assert starts == pytest.approx([i * 0.004 for i in range(LOW_LEVEL_BUFFER)])
    assert d.poll(0.0039) == []
    acks = d.poll(1.0)
    assert [a.number for a in acks] == list(range(LOW_LEVEL_BUFFER))
    assert math.isinf(d.next_event_s())
