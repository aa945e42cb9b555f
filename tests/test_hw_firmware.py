"""The board's own rules (docs/protocol.md), checked on the firmware model directly.

Time is the board time passed to ``receive`` and ``poll``, so every timing rule is
checked exactly, without a clock.
"""

from __future__ import annotations

import dataclasses
import math
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ports import Sample
from hw import protocol as p
from hw.emulator import BoardEmulator, EmulatorConfig
from hw.firmware import MODEL_PROTOCOL_VERSION, Firmware, FirmwareSettings
from sim.limb import STREAMING_TRUTH_ROWS, TRUTH_COLUMNS, SimulatedLimb
from sim.patient import load_patient

ON = p.ChannelSetting(0, 1, 3000, 300, 4000)  # 30 mA, 300 us, 40 Hz
OFF = p.ChannelSetting(0, 0, 0, 0, 0)


class Bench:
    """A firmware, its limb, every command the limb received, and a frame counter."""

    def __init__(self, **board) -> None:
        self.limb = SimulatedLimb(load_patient("moderate"), 500.0, 5.0, 0)
        self.applied: list[list] = []
        original = self.limb.apply

        def spy(t_s, commands):
            self.applied.append(list(commands))
            original(t_s, commands)

        self.limb.apply = spy  # type: ignore[method-assign]
        self.log: list[tuple[str, dict]] = []
        self.fw = Firmware(FirmwareSettings(**board), self.limb,
                           lambda event, **f: self.log.append((event, f)))
        self.seq = 0

    def send(self, message: p.Message, t_s: float, seq: int | None = None) -> list[p.Message]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        frame = p.FrameDecoder().feed(message.encode(seq))[0]
        return decode(self.fw.receive(frame, t_s))

    def open(self, t_s: float = 0.0) -> p.Info:
        (info,) = self.send(p.Hello(MODEL_PROTOCOL_VERSION), t_s)
        assert isinstance(info, p.Info)
        return info


def decode(frames: list[bytes]) -> list[p.Message]:
    decoder = p.FrameDecoder()
    return [p.parse(f) for raw in frames for f in decoder.feed(raw)]


def codes(replies: list[p.Message]) -> list[int]:
    return [m.code for m in replies if isinstance(m, p.Ack)]


def test_hello_reports_identity_rate_and_own_limits():
    info = Bench(max_amplitude_ma=45.0, comm_timeout_ms=80).open()
    assert info.protocol_version == MODEL_PROTOCOL_VERSION and info.firmware == (1, 2, 0)
    assert info.max_charge_cuc == 2250  # 45 mA x 500 us, its own limit unset
    assert info.max_duty_permille == 800
    assert info.max_interphase_gap_us == 500 and info.max_anodic_ratio_x100 == 1000
    assert info.max_amplitude_10ua == 4500 and info.comm_timeout_ms == 80
    assert info.sample_rate_hz == 500 and info.channels == 2
    assert info.last_fault == p.FaultCode.NONE


def test_no_stimulation_before_hello():
    bench = Bench()
    assert codes(bench.send(p.Stim(0, (ON,)), 0.0)) == [p.AckCode.NOT_READY]
    assert bench.fw.channels_on() == [] and bench.applied == []


def test_command_within_limits_reaches_the_patient():
    bench = Bench()
    bench.open()
    assert codes(bench.send(p.Stim(0, (ON,)), 0.001)) == [p.AckCode.OK]
    assert bench.fw.channels_on() == [0]
    for _ in range(10):
        bench.limb.read()
    assert bench.limb.truth()["pulses"].sum() >= 1


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        (p.ChannelSetting(0, 1, 6001, 300, 4000), p.AckCode.OVER_AMPLITUDE),
        (p.ChannelSetting(0, 1, 3000, 501, 4000), p.AckCode.OVER_PULSE_WIDTH),
        (p.ChannelSetting(0, 1, 3000, 300, 6001), p.AckCode.OVER_FREQUENCY),
        (p.ChannelSetting(2, 1, 3000, 300, 4000), p.AckCode.BAD_CHANNEL),
    ],
)
def test_commands_beyond_the_board_limits_are_refused(setting, code):
    bench = Bench()
    bench.open()
    bench.send(p.Stim(0, (ON,)), 0.001)
    assert codes(bench.send(p.Stim(0, (setting,)), 0.002)) == [code]
    if setting.channel == 0:
        assert bench.fw.channels_on() == []  # refused over a limit: the channel goes off
    assert all(c.amplitude_ma <= 60.0 for cmds in bench.applied for c in cmds)


def test_a_command_over_the_boards_charge_limit_is_refused_and_switches_off():
    """A board whose charge limit (20 uC) is below its amplitude x width (30 uC): 50 mA
    x 500 us = 25 uC passes every other limit, and only the charge stops it."""
    bench = Bench(max_charge_per_phase_uc=20.0)
    assert bench.open().max_charge_cuc == 2000
    bench.send(p.Stim(0, (ON,)), 0.001)
    over = p.ChannelSetting(0, 1, 5000, 500, 4000)
    assert codes(bench.send(p.Stim(0, (over,)), 0.002)) == [p.AckCode.OVER_CHARGE]
    assert bench.fw.channels_on() == [] and bench.fw.refused == 1
    assert all(c.amplitude_ma * c.pulse_width_us <= 20_000.0
               for cmds in bench.applied for c in cmds if c.on)
    at_limit = p.ChannelSetting(0, 1, 4000, 500, 4000)  # 20 uC exactly
    assert codes(bench.send(p.Stim(0, (at_limit,)), 0.003)) == [p.AckCode.OK]


def test_a_phase_under_4_us_delivers_nothing_rather_than_a_longer_phase():
    """Accepted (it is within every limit) but no pulse reaches the patient and the
    channel is not on (no on-time counted), as on the AVR firmware; from 4 us it delivers."""
    bench = Bench()
    bench.open()
    for k, width in enumerate((1, 2, 3)):
        short = p.ChannelSetting(0, 1, 6000, width, 4000)
        assert codes(bench.send(p.Stim(0, (short,)), 0.001 * (k + 1))) == [p.AckCode.OK]
        assert bench.fw.channels_on() == []
    for _ in range(10):
        bench.limb.read()
    assert bench.limb.truth()["pulses"].sum() == 0
    assert not any(c.on for cmds in bench.applied for c in cmds)
    four = p.ChannelSetting(0, 1, 6000, 4, 4000)
    assert codes(bench.send(p.Stim(0, (four,)), 0.01)) == [p.AckCode.OK]
    assert bench.fw.channels_on() == [0]
    assert bench.applied[-1][0].pulse_width_us == 4.0


def test_a_channel_on_beyond_the_duty_cycle_limit_faults_whatever_its_on_time():
    """1.5 s on, 0.1 s off: never near the 3 s on-time limit, but at 20 % of 10 s
    (2000 ms) the board switches off and reports FAULT DUTY 500 ms into the second train;
    a new session does not rest the muscle: switched on again, it faults at once."""
    bench = Bench(max_duty_cycle=0.2)
    assert bench.open(0.0).max_duty_permille == 200
    faults: list[p.Message] = []
    t_ms = 1
    while not faults and t_ms < 4000:
        phase = (t_ms - 1) % 1600
        if phase == 0:
            bench.send(p.Stim(0, (ON,)), t_ms / 1000)
        elif phase == 1500:
            bench.send(p.Stim(0, (OFF,)), t_ms / 1000)
        elif t_ms % 50 == 0:
            bench.send(p.Heartbeat(0), t_ms / 1000)
        faults = [m for m in decode(bench.fw.poll(t_ms / 1000)) if isinstance(m, p.Fault)]
        t_ms += 1
    assert faults == [p.Fault(p.FaultCode.DUTY, 0, 2_101_000)]
    assert bench.fw.channels_on() == [] and not bench.fw.session
    assert bench.open(2.2).last_fault == p.FaultCode.DUTY
    bench.send(p.Stim(0, (ON,)), 2.201)
    assert [m.code for m in decode(bench.fw.poll(2.202)) if isinstance(m, p.Fault)] == [
        p.FaultCode.DUTY]


def test_an_older_version_of_the_model_has_no_charge_limit_of_its_own():
    with pytest.raises(ValueError, match="max_charge_per_phase_uc needs protocol_version 4"):
        FirmwareSettings(protocol_version=2, max_charge_per_phase_uc=20.0)
    with pytest.raises(ValueError, match="max_duty_cycle needs protocol_version 4"):
        FirmwareSettings(protocol_version=2, max_duty_cycle=0.5)
    with pytest.raises(ValueError, match="protocol_version 3: this model has firmware"):
        FirmwareSettings(protocol_version=3)
    bench = Bench(protocol_version=2)
    info = bench.open()
    assert info.firmware == (1, 1, 0) and info.max_charge_cuc is None
    assert info.max_duty_permille is None
    assert info.board_charge_limit_uc == pytest.approx(30.0)


def test_silence_for_the_comm_timeout_switches_everything_off():
    bench = Bench(comm_timeout_ms=100)
    bench.open(0.0)
    bench.send(p.Stim(0, (ON,)), 0.010)
    assert decode(bench.fw.poll(0.109)) == [] and bench.fw.channels_on() == [0]
    replies = decode(bench.fw.poll(0.1101))
    assert replies == [p.Fault(p.FaultCode.COMM_TIMEOUT, 0xFF, 110100)]
    assert bench.fw.channels_on() == []
    # The session is closed: nothing stimulates until a new HELLO, which reports the fault.
    assert codes(bench.send(p.Stim(0, (ON,)), 0.2)) == [p.AckCode.NOT_READY]
    assert bench.open(0.3).last_fault == p.FaultCode.COMM_TIMEOUT
    assert bench.open(0.31).last_fault == p.FaultCode.NONE


def test_heartbeats_keep_the_session_alive():
    bench = Bench(comm_timeout_ms=100)
    bench.open(0.0)
    bench.send(p.Stim(0, (ON,)), 0.0)
    for i in range(1, 20):
        bench.send(p.Heartbeat(0), i * 0.09)
        assert decode(bench.fw.poll(i * 0.09 + 0.005)) == []
    assert bench.fw.channels_on() == [0]


def test_the_board_records_the_longest_silence_of_the_host_while_streaming():
    """The board's own view of the host's keep-alive (the emulator logs it at exit): the
    longest board time between two frames that kept the session alive while streaming.
    Frames that keep nothing alive (GET_STATUS, stale ones) do not end a silence."""
    bench = Bench(comm_timeout_ms=100)
    bench.open(0.0)
    bench.send(p.StartStream(), 0.5)  # the handshake's pause is not the stream's
    bench.send(p.Heartbeat(0), 0.525)
    stale = bench.seq
    bench.send(p.GetStatus(), 0.560)
    bench.send(p.Heartbeat(0), 0.570, seq=stale)  # a duplicate
    bench.send(p.StopAll(), 0.590)
    bench.send(p.Heartbeat(0), 0.600)
    assert bench.fw.longest_host_silence_s == pytest.approx(0.065)
    bench.fw.poll(0.7005)  # a silence that ran the timeout out counts to its end
    assert bench.fw.longest_host_silence_s == pytest.approx(0.1005)


def test_continuous_stimulation_is_cut_at_the_on_time_limit():
    bench = Bench(max_on_time_ms=1000, comm_timeout_ms=100)
    bench.open(0.0)
    bench.send(p.Stim(0, (ON,)), 0.0)
    t = 0.0
    while t < 0.99:
        t += 0.05
        bench.send(p.Heartbeat(0), t)
    assert bench.fw.channels_on() == [0]
    replies = decode(bench.fw.poll(1.0001))
    assert replies == [p.Fault(p.FaultCode.ON_TIME, 0, 1000100)]
    assert codes(bench.send(p.Stim(0, (ON,)), 1.01)) == [p.AckCode.NOT_READY]


def test_a_duplicate_or_late_frame_is_not_acted_on():
    bench = Bench()
    bench.open()
    bench.send(p.Stim(0, (ON,)), 0.001, seq=10)
    bench.send(p.Stim(0, (OFF,)), 0.002, seq=11)
    assert codes(bench.send(p.Stim(0, (ON,)), 0.003, seq=10)) == [p.AckCode.STALE_SEQ]
    assert codes(bench.send(p.Stim(0, (ON,)), 0.004, seq=11)) == [p.AckCode.STALE_SEQ]
    assert bench.fw.channels_on() == []
    assert codes(bench.send(p.Stim(0, (ON,)), 0.005, seq=12)) == [p.AckCode.OK]


def test_stop_all_is_obeyed_in_any_state_and_with_any_sequence_number():
    bench = Bench()
    bench.open()
    bench.send(p.Stim(0, (ON,)), 0.001, seq=50)
    assert codes(bench.send(p.StopAll(), 0.002, seq=3)) == [p.AckCode.OK]
    assert bench.fw.channels_on() == []


def test_stream_carries_samples_on_the_board_grid_and_truth_on_request():
    bench = Bench()
    bench.open(0.0)
    bench.send(p.StartStream(), 0.0)
    bench.send(p.DebugTruth(1), 0.0)
    out = []
    for k in range(400):
        out += decode(bench.fw.poll(k * 0.002))
        bench.send(p.Heartbeat(k), k * 0.002 + 0.0005)
    samples = [m for m in out if isinstance(m, p.SampleFrame)]
    assert [s.index for s in samples] == list(range(400))
    assert [s.t_us for s in samples[:3]] == [0, 2000, 4000]
    events = [m for m in out if isinstance(m, p.TruthEvent)]
    first_true = bench.limb.true_events()[0]
    assert events[0].t_us == round(first_true[0] * 1e6)
    rows = [m for m in out if isinstance(m, p.TruthSamples)]
    assert sum(len(r.rows) for r in rows) == 384  # whole frames of 32 rows so far
    assert [r.first_index for r in rows[:2]] == [0, 32]
    assert any(isinstance(m, p.Status) for m in out)


def test_a_lost_heel_switch_sample_goes_out_as_lost_not_as_contact():
    """A NaN heel switch from the front end (a lost sample) is SAMPLE flag HEEL_LOST with
    the contact bit clear. It went out as contact (NaN is truthy), so the host read a
    heel on the floor that nothing had measured."""
    bench = Bench()
    read = bench.limb.read

    def losing() -> Sample | None:
        sample = read()
        return None if sample is None else dataclasses.replace(sample, heel_switch=math.nan)

    bench.limb.read = losing  # type: ignore[method-assign]
    bench.open(0.0)
    bench.send(p.StartStream(), 0.0)
    (sample,) = [m for m in decode(bench.fw.poll(0.0)) if isinstance(m, p.SampleFrame)]
    assert sample.flags & p.SampleFlag.HEEL_LOST
    assert not sample.flags & p.SampleFlag.HEEL_CONTACT
    assert sample.flags & p.SampleFlag.GYRO_SAGITTAL_VALID  # the gyroscope's was not lost
    assert math.isnan(p.heel_switch(sample.flags))


def test_a_real_board_without_truth_refuses_the_debug_request():
    bench = Bench(truth=False)
    bench.open()
    assert codes(bench.send(p.DebugTruth(1), 0.0)) == [p.AckCode.UNKNOWN_TYPE]


def session_stream() -> tuple[list[bytes], list[int]]:
    """HELLO, START, then STIM frames each with its own amplitude (the frame's mark)."""
    frames = [p.Hello(MODEL_PROTOCOL_VERSION).encode(1), p.StartStream().encode(2)]
    marks = []
    for i in range(8):
        amplitude = 1000 + 10 * i
        marks.append(amplitude)
        frames.append(p.Stim(0, (p.ChannelSetting(0, 1, amplitude, 300, 4000),)).encode(3 + i))
    return frames, marks


def acted_marks(bench: Bench, data: bytes, chunk: int) -> list[int]:
    decoder = p.FrameDecoder()
    for start in range(0, len(data), chunk):
        for frame in decoder.feed(data[start : start + chunk]):
            bench.fw.receive(frame, 0.001)
    return [round(c.amplitude_ma * 100) for cmds in bench.applied for c in cmds if c.on]


def test_any_single_byte_lost_or_inserted_in_a_command_stops_that_command():
    frames, marks = session_stream()
    target = 4  # a STIM frame
    for position in range(len(frames[target]) - 1):
        for mutated in (
            frames[target][:position] + frames[target][position + 1 :],
            frames[target][:position] + b"\x5a" + frames[target][position:],
        ):
            bench = Bench()
            data = b"".join(frames[:target]) + mutated + b"".join(frames[target + 1 :])
            acted = acted_marks(bench, data, 7)
            assert marks[target - 2] not in acted
            assert set(acted) <= set(marks)


@settings(max_examples=200, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.integers(0, 9),
    position=st.integers(0, 30),
    burst=st.integers(1, 0xFFFF),
    chunk=st.integers(1, 40),
)
def test_no_command_is_acted_on_from_a_corrupted_frame(target, position, burst, chunk):
    """Flip a burst of up to 16 bits anywhere in one frame: that frame is never acted on
    and every command acted on is one the host sent intact."""
    frames, marks = session_stream()
    raw = bytearray(frames[target])
    position %= len(raw)
    raw[position] ^= burst & 0xFF
    if position + 1 < len(raw):
        raw[position + 1] ^= burst >> 8
    bench = Bench()
    data = b"".join(frames[:target]) + bytes(raw) + b"".join(frames[target + 1 :])
    acted = acted_marks(bench, data, chunk)
    if target >= 2:
        assert marks[target - 2] not in acted
    intact = {m for i, m in enumerate(marks) if i + 2 != target}
    assert set(acted) <= intact
    if target == 0:
        assert acted == []  # no session without a valid HELLO


@settings(max_examples=200, derandomize=True, database=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash_or_stimulate(data):
    bench = Bench()
    decoder = p.FrameDecoder()
    for frame in decoder.feed(data):
        bench.fw.receive(frame, 0.0)
    decode(bench.fw.poll(0.05))
    assert bench.fw.channels_on() == []


def test_frames_the_board_does_not_take_are_refused_and_do_not_keep_it_alive():
    bench = Bench(comm_timeout_ms=100)
    bench.open(0.0)
    bench.send(p.Stim(0, (ON,)), 0.0)
    assert codes(bench.send(p.Ack(1, 1, 0), 0.09)) == [p.AckCode.UNKNOWN_TYPE]
    assert codes(bench.send(p.Heartbeat(0), 0.095, seq=bench.seq - 1)) == [p.AckCode.STALE_SEQ]
    assert decode(bench.fw.poll(0.1001))[0] == p.Fault(p.FaultCode.COMM_TIMEOUT, 0xFF, 100100)
    assert bench.fw.channels_on() == []


# --- pulse shapes (protocol version 2) ------------------------------------------------

#: 30 mA, 300 us, 40 Hz, a 50 us gap, the recovery phase 4 times as long at a quarter.
SHAPED = p.ChannelSetting(0, 1, 3000, 300, 4000, 50, 400)


def test_a_shaped_pulse_reaches_the_patient_whole():
    bench = Bench()
    bench.open()
    assert codes(bench.send(p.StimShaped(0, (SHAPED,)), 0.001)) == [p.AckCode.OK]
    assert bench.fw.channels_on() == [0]
    (command,) = bench.applied[-1]
    assert (command.interphase_gap_us, command.anodic_width_ratio) == (50.0, 4.0)
    # Charge balance by construction: the recovery phase carries the leading one's charge.
    recovery_ma = command.amplitude_ma / command.anodic_width_ratio
    recovery_us = command.pulse_width_us * command.anodic_width_ratio
    assert recovery_ma * recovery_us == pytest.approx(command.amplitude_ma * command.pulse_width_us)
    # A plain STIM afterwards is the symmetric pulse again.
    bench.send(p.Stim(0, (ON,)), 0.002)
    assert (bench.applied[-1][0].interphase_gap_us, bench.applied[-1][0].anodic_width_ratio) == (
        0.0, 1.0)


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        (p.ChannelSetting(0, 1, 3000, 300, 4000, 201, 400), p.AckCode.OVER_INTERPHASE_GAP),
        (p.ChannelSetting(0, 1, 3000, 300, 4000, 50, 401), p.AckCode.BAD_WIDTH_RATIO),
        (p.ChannelSetting(0, 1, 3000, 300, 4000, 50, 99), p.AckCode.BAD_WIDTH_RATIO),
        (p.ChannelSetting(0, 1, 3000, 300, 4000, 50, 0), p.AckCode.BAD_WIDTH_RATIO),
        (p.ChannelSetting(0, 1, 6001, 300, 4000, 500, 0), p.AckCode.OVER_AMPLITUDE),
    ],
)
def test_shapes_beyond_the_board_limits_are_refused_and_switch_the_channel_off(setting, code):
    bench = Bench(max_interphase_gap_us=200, max_anodic_width_ratio=4.0)
    info = bench.open()
    assert (info.max_interphase_gap_us, info.max_anodic_ratio_x100) == (200, 400)
    bench.send(p.StimShaped(0, (SHAPED,)), 0.001)
    assert codes(bench.send(p.StimShaped(0, (setting,)), 0.002)) == [code]
    assert bench.fw.channels_on() == [] and bench.fw.refused == 1
    assert all(c.anodic_width_ratio <= 4.0 and c.interphase_gap_us <= 200
               for cmds in bench.applied for c in cmds if c.on)


def test_an_off_setting_ignores_its_shape_fields():
    bench = Bench()
    bench.open()
    bench.send(p.StimShaped(0, (SHAPED,)), 0.001)
    off = p.ChannelSetting(0, 0, 0, 0, 0, 0xFFFF, 0)
    assert codes(bench.send(p.StimShaped(0, (off,)), 0.002)) == [p.AckCode.OK]
    assert bench.fw.channels_on() == []


def test_a_version_1_board_answers_hello_2_in_version_1_and_knows_no_shape():
    bench = Bench(protocol_version=1)
    info = bench.open()  # HELLO asks for version 2
    assert (info.protocol_version, info.firmware) == (1, (1, 0, 0))
    assert len(info.pack()) == 28 and not bench.fw.session
    assert codes(bench.send(p.Stim(0, (ON,)), 0.001)) == [p.AckCode.NOT_READY]
    (info,) = bench.send(p.Hello(1), 0.002)
    assert bench.fw.session
    assert codes(bench.send(p.StimShaped(0, (SHAPED,)), 0.003)) == [p.AckCode.UNKNOWN_TYPE]
    assert bench.fw.channels_on() == [] and bench.applied == []
    assert codes(bench.send(p.Stim(0, (ON,)), 0.004)) == [p.AckCode.OK]


def test_a_version_4_board_in_a_version_1_session_refuses_shapes():
    bench = Bench()
    (info,) = bench.send(p.Hello(1), 0.0)
    assert isinstance(info, p.Info) and info.protocol_version == 1 and bench.fw.session
    assert len(info.pack()) == 28
    assert codes(bench.send(p.StimShaped(0, (SHAPED,)), 0.001)) == [p.AckCode.UNKNOWN_TYPE]
    assert bench.fw.channels_on() == []
    assert bench.open(0.002).protocol_version == 4  # a new session in version 4


def test_limits_that_let_a_pulse_outlast_its_period_are_not_a_board():
    with pytest.raises(ValueError, match="longest pulse"):
        FirmwareSettings(max_pulse_width_us=1000, max_anodic_width_ratio=20.0)


@settings(max_examples=300, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    channel=st.integers(0, 3), on=st.integers(0, 255), amplitude=st.integers(0, 0xFFFF),
    width=st.integers(0, 0xFFFF), frequency=st.integers(0, 0xFFFF),
    gap=st.integers(0, 0xFFFF), ratio=st.integers(0, 0xFFFF),
)
def test_a_shaped_setting_is_applied_only_within_every_limit(
    channel, on, amplitude, width, frequency, gap, ratio
):
    """Any field values: the board applies the setting only when every field is within
    its limits, the channel exists and the ratio is at least 1.00; otherwise it refuses
    with the code of the first failed rule and nothing beyond a limit reaches the patient."""
    bench = Bench()
    bench.open()
    setting = p.ChannelSetting(channel, on, amplitude, width, frequency, gap, ratio)
    (code,) = codes(bench.send(p.StimShaped(0, (setting,)), 0.001))
    s = bench.fw.settings
    expected = p.AckCode.OK
    if channel >= s.channels:
        expected = p.AckCode.BAD_CHANNEL
    elif on:
        for failed, rule in (
            (amplitude > 6000, p.AckCode.OVER_AMPLITUDE),
            (width > 500, p.AckCode.OVER_PULSE_WIDTH),
            (frequency > 6000, p.AckCode.OVER_FREQUENCY),
            (gap > 500, p.AckCode.OVER_INTERPHASE_GAP),
            (not 100 <= ratio <= 1000, p.AckCode.BAD_WIDTH_RATIO),
        ):
            if failed:
                expected = rule
                break
    assert code == expected
    for cmds in bench.applied:
        for c in cmds:
            if c.on:
                assert c.amplitude_ma <= 60.0 and c.pulse_width_us <= 500
                assert c.interphase_gap_us <= 500 and 1.0 <= c.anodic_width_ratio <= 10.0


def test_the_emulators_board_streams_truth_without_growing_its_storage():
    """The board emulator's limb keeps its truth in a ring (``SimulatedLimb.streaming``):
    streaming samples with truth over three rings allocates no storage for the rows
    behind. Storage grown twofold copied every row at samples 2**n (35 ms at 2**18, a
    board silent for longer than a live host's 30 ms heartbeat; docs/cli.md, "Long
    work"); the copy is an allocation of twice the rows, which this test would see."""
    emu = BoardEmulator(EmulatorConfig(seed=3, walk_s=600.0))
    try:
        fw, seq = emu.firmware, iter(range(1, 1_000_000))

        def send(message: p.Message, t_s: float) -> None:
            fw.receive(p.FrameDecoder().feed(message.encode(next(seq)))[0], t_s)

        send(p.Hello(MODEL_PROTOCOL_VERSION), 0.0)
        send(p.StartStream(), 0.0)
        send(p.DebugTruth(1), 0.0)
        fw.poll(0.0)  # the first sample: the limb's first block of noise drawn
        n = 3 * STREAMING_TRUTH_ROWS
        rows = 0
        tracemalloc.start()
        try:
            for k in range(1, n):
                rows += sum(len(m.rows) for m in decode(fw.poll(k * 0.002))
                            if isinstance(m, p.TruthSamples))
                if k % 10 == 0:
                    send(p.Heartbeat(k), k * 0.002 + 0.0005)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        emu.close()
    assert rows == n - n % 32
    # Grown storage allocates twice the rows it held at least (590 kB from a ring's).
    assert peak < 2 * STREAMING_TRUTH_ROWS * len(TRUTH_COLUMNS) * 8, peak
