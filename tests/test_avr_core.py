"""The AVR firmware's portable core (hw/avr/firmware: framing, CRC, limits, the stored
configuration, pulse plans, the protocol state machine), compiled with the host's gcc.

Its own C test program checks the core rule by rule; then the same C, loaded as a
library, must agree byte for byte with the host's protocol module (hw/protocol.py) and
the Python reference firmware (hw/firmware.py) on random input: the two sides of the
link are written twice, and these tests keep them one protocol.
"""

from __future__ import annotations

import ctypes
import struct
import subprocess

import pytest
from helpers.avr_support import avr_build_or_skip
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hw import protocol as p
from hw.avr import cosim
from hw.firmware import Firmware, FirmwareSettings


class BoardConfig(ctypes.Structure):
    """``board_config_t`` of hw/avr/firmware/limits.h."""

    _fields_ = (("board_id", ctypes.c_uint32), ("sample_rate_hz", ctypes.c_uint16),
                ("comm_timeout_ms", ctypes.c_uint16), ("max_on_time_ms", ctypes.c_uint16),
                ("max_amplitude_10ua", ctypes.c_uint16), ("max_pulse_width_us", ctypes.c_uint16),
                ("max_frequency_chz", ctypes.c_uint16), ("max_gap_us", ctypes.c_uint16),
                ("max_ratio_x100", ctypes.c_uint16), ("max_charge_cuc", ctypes.c_uint16),
                ("max_duty_permille", ctypes.c_uint16))


@pytest.fixture(scope="module")
def core() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(avr_build_or_skip("test").core_library))
    # (session, frame, n, arrived_ms, now_ms, now_us): here every frame is acted on in
    # the millisecond it arrived
    lib.session_frame.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16,
                                  ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)
    lib.crc16.restype = ctypes.c_uint16
    lib.crc16.argtypes = (ctypes.c_char_p, ctypes.c_uint16)
    lib.cobs_encode.restype = ctypes.c_uint16
    lib.cobs_encode.argtypes = (ctypes.c_char_p, ctypes.c_uint16, ctypes.c_char_p)
    lib.frame_rx_byte.restype = ctypes.c_uint8
    lib.limits_check_setting.restype = ctypes.c_uint8
    return lib


def test_the_core_passes_its_c_tests():
    build = avr_build_or_skip("test")
    result = subprocess.run([str(build.core_test)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("0 failed")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=254))
def test_crc_and_cobs_agree_with_the_host(core, data):
    assert core.crc16(data, len(data)) == p.crc16(data)
    out = ctypes.create_string_buffer(256)
    n = core.cobs_encode(data, len(data), out)
    assert out.raw[:n] == p.cobs_encode(data)


class FrameRx(ctypes.Structure):
    _fields_ = (("buf", ctypes.c_uint8 * 255), ("n", ctypes.c_uint16),
                ("frame_len", ctypes.c_uint16), ("overflow", ctypes.c_uint8))


def frames_of(messages: list[tuple[int, bytes]]) -> bytes:
    return b"".join(p.encode_frame(t, i, payload) for i, (t, payload) in enumerate(messages))


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=60)), max_size=8),
    noise=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_the_receiver_takes_and_refuses_what_the_host_decoder_does(core, messages, noise):
    """A stream of frames with bytes overwritten at random: the firmware's receiver and
    the host's decoder find the same frames and count the same bad ones."""
    wire = bytearray(frames_of(messages))
    for position, value in noise:
        if wire:
            wire[position % len(wire)] = value
    decoder = p.FrameDecoder()
    expected = [bytes([f.type, f.seq]) + f.payload for f in decoder.feed(bytes(wire))]
    rx = FrameRx()
    got, bad = [], 0
    for byte in wire:
        result = core.frame_rx_byte(ctypes.byref(rx), byte)
        if result == 1:
            got.append(bytes(rx.buf[: rx.frame_len - 2]))
        elif result == 2:
            bad += 1
    assert got == expected
    assert bad == decoder.bad_frames


class Setting(ctypes.Structure):
    _fields_ = (("on", ctypes.c_uint8), ("amplitude_10ua", ctypes.c_uint16),
                ("pulse_width_us", ctypes.c_uint16), ("frequency_chz", ctypes.c_uint16),
                ("gap_us", ctypes.c_uint16), ("ratio_x100", ctypes.c_uint16))


def reference_firmware(charge_cuc: int) -> Firmware:
    """The Python reference firmware with the AVR board's limits (60 mA, 500 us, 60 Hz,
    gap 500 us, ratio 10) and a charge limit of ``charge_cuc`` x 0.01 uC."""
    firmware = Firmware.__new__(Firmware)
    firmware.settings = FirmwareSettings(max_charge_per_phase_uc=charge_cuc * p.CHARGE_UNIT_UC)
    return firmware


@settings(max_examples=500, deadline=None)
@given(
    on=st.integers(0, 1),
    amplitude=st.integers(0, 7000), width=st.integers(0, 600), frequency=st.integers(0, 7000),
    gap=st.integers(0, 600), ratio=st.integers(0, 1100), charge=st.integers(1, 3000),
)
def test_the_limits_refuse_what_the_reference_firmware_refuses(
    core, on, amplitude, width, frequency, gap, ratio, charge
):
    """The same verdict, ACK code for code, charge per phase included; and the same
    outputs: a setting delivers on both or on neither (a pulse width under 4 us on
    neither)."""
    limits = BoardConfig.in_dll(core, "limits_default_config")
    limits = BoardConfig(*(getattr(limits, name) for name, _ in BoardConfig._fields_))
    limits.max_charge_cuc = charge
    setting = p.ChannelSetting(0, on, amplitude, width, frequency, gap, ratio)
    wire = Setting(on, amplitude, width, frequency, gap, ratio)
    code = core.limits_check_setting(ctypes.byref(limits), ctypes.byref(wire))
    reference = reference_firmware(charge)
    assert code == reference._over_limit((setting,))
    assert bool(core.setting_delivers(ctypes.byref(wire))) == reference.delivers(setting)


class PulsePlan(ctypes.Structure):
    """``pulse_plan_t`` of hw/avr/firmware/pulse_plan.h."""

    _fields_ = (("delivers", ctypes.c_uint8), ("cathodic_ticks", ctypes.c_uint16),
                ("gap_ticks", ctypes.c_uint16), ("anodic_ticks", ctypes.c_uint16),
                ("cathodic_dac", ctypes.c_uint16), ("anodic_dac", ctypes.c_uint16),
                ("period_ticks", ctypes.c_uint32))


#: The output stage: 20 uA per DAC count, 0.5 us per timer tick (hw/avr/firmware/board.h).
DAC_UA, TICK_US = 20, 0.5


@settings(max_examples=500, deadline=None)
@given(amplitude=st.integers(1, 6000), width=st.integers(4, 500),
       frequency=st.integers(1, 6000), gap=st.integers(0, 500), ratio=st.integers(100, 1000))
def test_a_pulse_is_never_more_than_the_setting_the_limits_accepted(
    core, amplitude, width, frequency, gap, ratio
):
    """The current and charge of the leading phase on the pins are at most the setting's
    (the wire's 10 uA steps are finer than the DAC's 20 uA: 35.01 mA was delivered as
    35.02 mA, above a board limit of 35.01 mA). Widths from 4 us, the shortest phase the
    engine times (a shorter one delivers nothing, the test below)."""
    plan = PulsePlan()
    core.pulse_plan(ctypes.byref(Setting(1, amplitude, width, frequency, gap, ratio)),
                    ctypes.byref(plan))
    assert plan.delivers
    assert plan.cathodic_dac * DAC_UA <= amplitude * 10
    assert plan.cathodic_dac * DAC_UA * plan.cathodic_ticks * TICK_US <= amplitude * 10 * width
    assert plan.anodic_dac <= plan.cathodic_dac


@settings(max_examples=500, deadline=None)
@given(amplitude=st.integers(1, 6000), width=st.integers(4, 500),
       frequency=st.integers(1, 6000), gap=st.integers(0, 500), ratio=st.integers(100, 1000))
def test_the_recovery_phase_never_carries_more_charge_than_the_leading_phase(
    core, amplitude, width, frequency, gap, ratio
):
    """The board's charge limit bounds the leading phase; the recovery phase must not
    exceed it either. Firmware 2.2.4 rounded the anodic current to the nearest DAC count:
    60 mA x 500 us at ratio 3.33 put 30.0033 uC in the recovery phase under a 30 uC
    limit. Since 2.2.5 it is rounded down: less charge by under one count (20 uA) over the
    anodic width, never more."""
    plan = PulsePlan()
    core.pulse_plan(ctypes.byref(Setting(1, amplitude, width, frequency, gap, ratio)),
                    ctypes.byref(plan))
    leading = plan.cathodic_dac * plan.cathodic_ticks  # DAC counts x ticks
    recovery = plan.anodic_dac * plan.anodic_ticks
    assert recovery <= leading
    assert leading - recovery < plan.anodic_ticks


@settings(max_examples=100, deadline=None)
@given(amplitude=st.integers(1, 6000), width=st.integers(1, 3),
       frequency=st.integers(1, 6000), ratio=st.integers(100, 1000))
def test_a_phase_under_4_us_delivers_nothing_rather_than_more_charge(
    core, amplitude, width, frequency, ratio
):
    """Firmware 2.1.0 lengthened it to 4 us: 60 mA x 4 us = 0.24 uC for 0.06 uC asked."""
    plan = PulsePlan()
    core.pulse_plan(ctypes.byref(Setting(1, amplitude, width, frequency, 0, ratio)),
                    ctypes.byref(plan))
    assert not plan.delivers
    assert plan.cathodic_dac * plan.cathodic_ticks == 0 and plan.anodic_dac == 0


def test_info_is_what_the_host_reads_as_the_boards_limits(core):
    """HELLO through the C session: the INFO it sends decodes, with the host's protocol
    module, to the board's identity and limits in every version's layout."""
    session = ctypes.create_string_buffer(core.stub_session_size())
    config = BoardConfig.in_dll(core, "limits_default_config")
    assert (config.comm_timeout_ms, config.max_amplitude_10ua) == (100, 6000)
    core.session_init(session, ctypes.byref(config))
    for version, seq in ((4, 1), (3, 2), (2, 3), (1, 4)):
        core.stub_reset()
        frame = bytes([p.FrameType.HELLO, seq, version])
        frame += p.crc16(frame).to_bytes(2, "big")
        core.session_frame(session, frame, len(frame), 0, 0, 0)
        assert ctypes.c_int.in_dll(core, "stub_frame_count").value == 1
        length = ctypes.c_uint8.in_dll(core, "stub_frame_len").value
        body = bytes((ctypes.c_uint8 * 256).in_dll(core, "stub_frames")[:length])
        assert body[0] == p.FrameType.INFO and body[1] == seq
        info = p.Info.unpack(body[2:])
        assert (info.hello_seq, info.protocol_version, info.firmware) == (
            seq, version, cosim.FIRMWARE_VERSION)
        assert (info.channels, info.sample_rate_hz, info.comm_timeout_ms) == (2, 500, 100)
        assert (info.max_amplitude_10ua, info.max_pulse_width_us, info.max_frequency_chz,
                info.max_on_time_ms) == (6000, 500, 6000, 3000)
        assert info.shaped_pulses == (version >= 2)
        if version >= 2:
            assert (info.max_interphase_gap_us, info.max_anodic_ratio_x100) == (500, 1000)
        assert info.max_charge_cuc == (3000 if version >= 4 else None)
        assert info.max_duty_permille == (800 if version >= 4 else None)
        assert info.board_charge_limit_uc == pytest.approx(30.0)
        assert info.gyro_full_scale_dps == 1998 and info.sagittal_axis == 2
        assert info.capabilities == p.Capability.HEEL_SWITCH | p.Capability.HEEL_FORCE


def test_the_stored_configuration_round_trips_through_the_core(core):
    block = ctypes.create_string_buffer(27)
    config = BoardConfig.in_dll(core, "limits_default_config")
    core.config_encode(ctypes.byref(config), block)
    magic, layout = struct.unpack_from("<HB", block.raw)
    assert (magic, layout) == (0xFE51, 2)
    assert struct.unpack_from("<HH", block.raw, 21) == (3000, 800)  # 30 uC, 80 %
    assert p.crc16(block.raw) == 0


def fault_times_of_the_c_core(core, duty_permille: int, pattern_ms: tuple[int, int],
                              total_ms: int, ticks: frozenset[int] | None = None
                              ) -> list[tuple[int, int, int]]:
    """Channel 0 switched on and off by STIM in ``pattern_ms`` (on, off) from t = 0, a
    HEARTBEAT every 50 ms, a tick every millisecond (or only at the milliseconds in
    ``ticks``: a main loop too busy to see the others), through the C session: every
    FAULT as (time ms, code, channel)."""
    session = ctypes.create_string_buffer(core.stub_session_size())
    config = BoardConfig.in_dll(core, "limits_default_config")
    config = BoardConfig(*(getattr(config, name) for name, _ in BoardConfig._fields_))
    config.max_duty_permille = duty_permille
    core.session_init(session, ctypes.byref(config))
    core.session_tick_ms.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32)
    faults = []
    for t, message, seq in duty_script(pattern_ms, total_ms):
        core.stub_reset()
        if message is not None:
            frame = p.encode_frame(message.TYPE, seq, message.pack())
            body = p.FrameDecoder().feed(frame)[0]
            raw = bytes([body.type, body.seq]) + body.payload
            raw += p.crc16(raw).to_bytes(2, "big")
            core.session_frame(session, raw, len(raw), t, t, t * 1000)
        if ticks is None or t in ticks:
            core.session_tick_ms(session, t, t * 1000)
        count = ctypes.c_int.in_dll(core, "stub_frame_count").value
        frames = (ctypes.c_uint8 * 256 * 64).in_dll(core, "stub_frames")
        for i in range(count):
            if frames[i][0] == p.FrameType.FAULT:
                faults.append((t, frames[i][2], frames[i][3]))
    return faults


def duty_script(pattern_ms: tuple[int, int], total_ms: int):
    """(time ms, message or None, its sequence number) for every millisecond: HELLO v4
    at 0, then the pattern."""
    on_ms, off_ms = pattern_ms
    on = p.Stim(0, (p.ChannelSetting(0, 1, 3500, 300, 4000),))
    off = p.Stim(0, (p.ChannelSetting.off(0),))
    seq = 0
    for t in range(total_ms):
        phase = (t - 1) % (on_ms + off_ms)
        message: p.Message | None = None
        if t == 0:
            message = p.Hello(4)
        elif phase == 0:
            message = on
        elif phase == on_ms:
            message = off
        elif t % 50 == 0:
            message = p.Heartbeat(0)
        if message is not None:
            seq = (seq + 1) & 0xFF
        yield t, message, seq


def fault_times_of_the_model(duty: float, pattern_ms: tuple[int, int], total_ms: int,
                             ticks: frozenset[int] | None = None) -> list[tuple[int, int, int]]:
    """The same script through the Python reference firmware, polled at the ticks."""
    from sim.limb import SimulatedLimb
    from sim.patient import load_patient

    limb = SimulatedLimb(load_patient("moderate"), 500.0, total_ms / 1000.0 + 1.0, 0)
    firmware = Firmware(FirmwareSettings(max_duty_cycle=duty), limb)
    decoder = p.FrameDecoder()
    faults = []
    for t, message, seq in duty_script(pattern_ms, total_ms):
        out = []
        if message is not None:
            frame = decoder.feed(message.encode(seq))[0]
            out += firmware.receive(frame, t / 1000.0)
        if ticks is None or t in ticks:
            out += firmware.poll(t / 1000.0)
        for raw in out:
            for f in decoder.feed(raw):
                m = p.parse(f)
                if isinstance(m, p.Fault):
                    faults.append((t, int(m.code), m.channel))
    return faults


@pytest.mark.parametrize(("duty", "pattern_ms", "fault_ms"), [
    (0.8, (2500, 100), 8301),  # 96 %, never 3 s on: 500 ms into the fourth train
    (0.2, (1500, 100), 2101),  # 2000 ms on: 500 ms into the second train
    (0.8, (2000, 600), None),  # 77 %: no fault in 30 s
])
def test_the_duty_limit_faults_at_the_same_millisecond_in_c_and_in_the_model(
    core, duty, pattern_ms, fault_ms
):
    """docs/protocol.md section 6: a channel on for more than max_duty_cycle of the last
    10 s ends the session with FAULT DUTY (4), whatever the continuous on-time. The C
    session and the reference firmware, fed the same frames each millisecond, fault at the
    same millisecond on the same channel."""
    total_ms = 30_000 if fault_ms is None else fault_ms + 200
    c = fault_times_of_the_c_core(core, round(duty * 1000), pattern_ms, total_ms)
    model = fault_times_of_the_model(duty, pattern_ms, total_ms)
    expected = [] if fault_ms is None else [(fault_ms, int(p.FaultCode.DUTY), 0)]
    assert c[:1] == expected
    assert model[:1] == expected


def ticks_at(gaps: list[int], total_ms: int) -> frozenset[int]:
    """The milliseconds a main loop sees a tick at, ``gaps`` apart over and over."""
    ticks, t = set(), 0
    while t < total_ms:
        for gap in gaps:
            t += gap
            ticks.add(t)
    return frozenset(ticks)


@pytest.mark.parametrize("gaps", [[2], [1, 3], [3, 3, 1]])
def test_a_missed_tick_still_counts_its_millisecond_on(core, gaps):
    """The AVR's main loop may be busy past a millisecond's tick (a host frame with the
    truth relay takes 1.1 ms, docs/hardware.md Budgets) and then sees one tick for two.
    20 % of 10 s, 1.5 s on and 0.1 s off: the C session still faults at the first tick
    at or after 2101 ms, 500 ms into the second train, as with a tick every millisecond
    (2.2.0 counted one millisecond a tick: with a tick every 2 ms, no fault by 2.3 s)."""
    seen = ticks_at(gaps, 2300)
    c = fault_times_of_the_c_core(core, 200, (1500, 100), 2300, seen)
    assert c[:1] == [(min(t for t in seen if t >= 2101), int(p.FaultCode.DUTY), 0)]


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 3), min_size=1, max_size=64),
    on_ms=st.integers(300, 2900), off_ms=st.integers(1, 400),
    duty=st.sampled_from([0.1, 0.2, 0.5, 0.8]),
)
def test_the_duty_count_of_missed_ticks_is_the_models(core, gaps, on_ms, off_ms, duty):
    """Ticks at gaps of 1 to 3 ms (a random pattern, repeated) and a random train
    pattern: the C session faults at the same tick, on the same channel, as the
    reference firmware (hw/firmware.py), which counts every millisecond up to each
    poll and those before an output changes."""
    total_ms = 12_000
    seen = ticks_at(gaps, total_ms)
    c = fault_times_of_the_c_core(core, round(duty * 1000), (on_ms, off_ms), total_ms, seen)
    model = fault_times_of_the_model(duty, (on_ms, off_ms), total_ms, seen)
    assert c[:1] == model[:1]


def _board_answers(raw_frames: list[bytes], t: int) -> list[tuple]:
    """ACK (acked type, code) and FAULT (code, channel) of board frames, with time ``t``
    (INFO and STATUS differ by firmware version and clock: not compared)."""
    out = []
    for body in raw_frames:
        if body[0] == p.FrameType.ACK:
            out.append((t, "ack", body[3], body[4]))
        elif body[0] == p.FrameType.FAULT:
            out.append((t, "fault", body[2], body[3]))
    return out


def run_c_and_model(core, script: dict[int, list[p.Message]], total_ms: int,
                    duty: float, charge_cuc: int) -> tuple[list[tuple], list[tuple]]:
    """``script`` (messages at each millisecond, sequence numbers in order) through the C
    session and the reference firmware, a tick / poll every millisecond after that
    millisecond's frames: each side's ACKs and FAULTs in order."""
    from sim.limb import SimulatedLimb
    from sim.patient import load_patient

    session = ctypes.create_string_buffer(core.stub_session_size())
    default = BoardConfig.in_dll(core, "limits_default_config")
    config = BoardConfig(*(getattr(default, name) for name, _ in BoardConfig._fields_))
    config.max_duty_permille = round(duty * 1000)
    config.max_charge_cuc = charge_cuc
    core.session_init(session, ctypes.byref(config))
    core.session_tick_ms.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32)
    limb = SimulatedLimb(load_patient("moderate"), 500.0, total_ms / 1000.0 + 1.0, 0)
    # The AVR counts the on-time from the millisecond after the switch-on (the pulse
    # engine starts within that one, docs/hardware.md); the model from the switch-on
    # itself: on whole milliseconds, the model with 1 ms more faults at the AVR's.
    firmware = Firmware(FirmwareSettings(max_duty_cycle=duty,
                                         max_charge_per_phase_uc=charge_cuc * 0.01,
                                         max_on_time_ms=config.max_on_time_ms + 1), limb)
    decoder = p.FrameDecoder()
    frames = (ctypes.c_uint8 * 256 * 64).in_dll(core, "stub_frames")
    c_out: list[tuple] = []
    model_out: list[tuple] = []
    seq = 0
    for t in range(total_ms):
        core.stub_reset()
        model_raw: list[bytes] = []
        for message in script.get(t, []):
            seq = (seq + 1) & 0xFF
            frame = decoder.feed(message.encode(seq))[0]
            raw = bytes([frame.type, frame.seq]) + frame.payload
            raw += p.crc16(raw).to_bytes(2, "big")
            core.session_frame(session, raw, len(raw), t, t, t * 1000)
            model_raw += firmware.receive(frame, t / 1000.0)
        core.session_tick_ms(session, t, t * 1000)
        model_raw += firmware.poll(t / 1000.0)
        count = ctypes.c_int.in_dll(core, "stub_frame_count").value
        c_out += _board_answers([bytes(frames[i]) for i in range(count)], t)
        model_out += _board_answers(
            [bytes([f.type, f.seq]) + f.payload for raw in model_raw for f in decoder.feed(raw)],
            t)
    return c_out, model_out


_settings = st.builds(
    p.ChannelSetting, channel=st.integers(0, 1), on=st.integers(0, 1),
    amplitude_10ua=st.sampled_from([0, 1, 2999, 3000, 4000, 6000, 6001]),
    pulse_width_us=st.sampled_from([0, 1, 3, 4, 300, 500, 501]),
    frequency_chz=st.sampled_from([0, 1, 4000, 6000, 6001]),
    interphase_gap_us=st.sampled_from([0, 50, 500, 501]),
    anodic_ratio_x100=st.sampled_from([99, 100, 400, 1000, 1001]),
)
_messages = st.one_of(
    st.builds(lambda s: p.Stim(0, (s,)), _settings),
    st.builds(lambda s: p.StimShaped(0, (s,)), _settings),
    st.builds(lambda a, b: p.Stim(0, (a, b)), _settings, _settings),
    st.builds(p.Hello, st.sampled_from([1, 2, 3, 4, 5])),
    st.just(p.StopAll()),
    st.just(p.Heartbeat(0)),
)


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 11_999), _messages), max_size=40),
    keep_alive=st.booleans(),
    duty=st.sampled_from([0.1, 0.3, 0.8]),
    charge_cuc=st.sampled_from([1, 1200, 3000]),
)
def test_the_c_session_and_the_model_answer_random_sessions_alike(
    core, events, keep_alive, duty, charge_cuc
):
    """Random sessions of 12 s: settings at and across every limit (charge included),
    phases under 4 us, HELLO of every version (reconnects: the duty count survives
    them), STOP_ALL, heartbeats every 50 ms or none (the communication timeout): the C
    session and the reference firmware send the same ACK codes and FAULTs at the same
    milliseconds."""
    script: dict[int, list[p.Message]] = {0: [p.Hello(4)]}
    for t, message in sorted(events, key=lambda e: e[0]):
        script.setdefault(t, []).append(message)
    if keep_alive:
        for t in range(50, 12_000, 50):
            script.setdefault(t, []).append(p.Heartbeat(0))
    c_out, model_out = run_c_and_model(core, script, 12_000, duty, charge_cuc)
    for answer in c_out:
        event(f"{answer[1]} {answer[2:]}")
    assert c_out == model_out


#: Each stored field's bounds (comm timeout, on-time, amplitude, width, frequency, gap,
#: ratio, charge, duty): a block's fields are drawn within them but one at most.
_FIELD_BOUNDS = ((10, 500), (100, 3000), (0, 6000), (0, 500), (1, 6000), (0, 500),
                 (100, 1000), (1, 3000), (100, 800))


@st.composite
def _stored_fields(draw, wild: int) -> list[int]:
    """Fields within their bounds, but field ``wild`` (-1: none) beyond them."""
    fields = []
    for i, (low, high) in enumerate(_FIELD_BOUNDS):
        if i != wild:
            fields.append(draw(st.integers(low, high)))
        elif low == 0:
            fields.append(draw(st.integers(high + 1, 0xFFFF)))
        else:
            fields.append(draw(st.one_of(st.integers(0, low - 1), st.integers(high + 1, 0xFFFF))))
    return fields


@settings(max_examples=400, deadline=None)
@given(layout=st.sampled_from([1, 2]),
       fields=st.sampled_from(range(-1, len(_FIELD_BOUNDS))).flatmap(_stored_fields),
       board_id=st.integers(0, 0xFFFFFFFF), flip=st.one_of(st.none(), st.integers(0, 26)))
def test_a_stored_block_never_loosens_a_compiled_limit(core, layout, fields, board_id, flip):
    """EEPROM blocks of layout 1 (23 bytes, 2.1.0) and 2 (27 bytes) with any field
    values and a valid CRC, or one byte damaged: config_parse takes a block only when
    every limit is within the firmware's bounds (none looser than compiled, the charge
    limit at least 0.01 uC, the duty limit 10-80 %, the longest pulse shorter than the
    shortest period); otherwise the board runs on the compiled configuration."""
    default = BoardConfig.in_dll(core, "limits_default_config")
    compiled = {name: getattr(default, name) for name, _ in BoardConfig._fields_}
    body = struct.pack("<HBI", 0xFE51, layout, board_id) + struct.pack(
        "<9H", *fields)[: 14 if layout == 1 else 18]
    block = bytearray(body + p.crc16(body).to_bytes(2, "big"))
    block += bytes(27 - len(block))
    if flip is not None and flip < len(body) + 2:
        block[flip] ^= 0xA5
    got = BoardConfig()
    taken = core.config_parse(bytes(block), ctypes.byref(got))
    parsed = {name: getattr(got, name) for name, _ in BoardConfig._fields_}
    event(f"layout {layout} {'taken' if taken else 'refused'}")
    if not taken:
        assert parsed == compiled
        return
    assert flip is None or flip >= len(body) + 2
    assert 10 <= got.comm_timeout_ms <= 500
    assert 100 <= got.max_on_time_ms <= compiled["max_on_time_ms"]
    for name in ("max_amplitude_10ua", "max_pulse_width_us", "max_frequency_chz",
                 "max_gap_us", "max_ratio_x100", "max_charge_cuc", "max_duty_permille"):
        assert parsed[name] <= compiled[name], name
    assert got.max_charge_cuc >= 1 and got.max_duty_permille >= 100
    assert got.max_ratio_x100 >= 100 and got.max_frequency_chz >= 1
    longest_us = got.max_pulse_width_us * (100 + got.max_ratio_x100) / 100 + got.max_gap_us
    assert longest_us < 1e8 / got.max_frequency_chz
    if layout == 1:
        assert (got.max_charge_cuc, got.max_duty_permille) == (3000, 800)
