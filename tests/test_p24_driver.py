"""The P24 driver (``hw.p24.driver``) through the ``science_mode_4`` library against the
emulated P24: what it connects to and refuses, commands in the device's terms, pulses
that start and stop when commanded, and faults (a silent device, a device error, a loop
that stops calling)."""

from __future__ import annotations

import io
import json
import math
import os
import threading
import time
import tty
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from controller.ports import (
    COMMAND_ROW_SIZE,
    StimCommand,
    Stimulator,
    command_of_row,
    write_row,
)
from controller.safety import SafetyLimits
from hw.board import BoardError, BoardRequirements
from hw.p24 import sciencemode as w
from hw.p24.driver import P24Stimulator
from hw.p24.emulator import serve_p24_in_thread
from hw.p24.limits import (
    CURRENT_STEP_MA,
    MAX_POINT_US,
    P24Info,
    P24Steps,
    check_p24,
    device_pulse,
)
from hw.transport import Transport

ON = StimCommand(0, True, 35.3, 300.4, 40.0)
REQUIREMENTS = BoardRequirements(SafetyLimits(), 500.0)


class Bench:
    """An emulated P24 served from a thread, its log, and a driver for it."""

    def __init__(self, layer: str = "low", link: object | None = None, **options: float):
        self.log = io.StringIO()
        self.emulator, self.finish = serve_p24_in_thread(self.log)
        target = link(self.emulator.path) if callable(link) else self.emulator.path
        self.stim = P24Stimulator(target, REQUIREMENTS if layer == "low" else None,
                                  layer=layer, **options)  # type: ignore[arg-type]

    def events(self, kind: str) -> list[dict]:
        rows = [json.loads(line) for line in self.log.getvalue().splitlines()]
        return [r for r in rows if r["event"] == kind]

    def pulses(self) -> list[float]:
        return [p["monotonic_s"] for p in self.events("pulse")]

    def hold(self, seconds: float, commands: list[StimCommand]) -> None:
        """Call ``apply`` every 2 ms for ``seconds``, as the loop does."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.stim.apply(0.0, commands)
            time.sleep(0.002)

    def close(self) -> None:
        self.stim.close()
        self.finish()


@pytest.fixture(params=["low", "mid"])
def bench(request) -> Iterator[Bench]:
    """A bench on each level."""
    b = Bench(request.param)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def low(request) -> Iterator[Bench]:
    """A bench on the low level, which ``fes run`` uses."""
    b = Bench("low")
    try:
        yield b
    finally:
        b.close()


# --- commands in the device's terms -----------------------------------------------------

commands = st.builds(
    StimCommand, st.just(0), st.just(True), st.floats(0.5, 100.0), st.floats(10.0, 1000.0),
    st.floats(1.0, 100.0), st.floats(0.0, 500.0), st.floats(1.0, 10.0),
)


@given(commands, st.sampled_from(["low", "mid"]))
# 6 mA over a ratio of 7 is a 0.86 mA recovery, 0.5 mA at the device's steps: 9.2 ms long.
@example(StimCommand(0, True, 6.0, 766.0, 100.0, 42.0, 7.0), "low")
def test_a_command_becomes_a_balanced_pulse_never_stronger_than_asked(command, layer):
    try:
        pulse = device_pulse(command, layer)
    except ValueError as err:
        # Refused only when the pulse asked for does not fit its period: the device's is
        # never longer (its recovery current is rounded up to a step, never down).
        assert "does not fit its period" in str(err)
        ratio = command.anodic_width_ratio
        length = command.pulse_width_us * (1 + ratio) + command.interphase_gap_us
        assert length >= 0.999e6 / command.frequency_hz
        return
    assert pulse is not None
    lead_us, lead_ma = pulse.points[0]
    # Never above what was asked, but for float noise (1.9999999999999982 mA is 2 mA).
    assert lead_ma <= command.amplitude_ma + 1e-9
    assert command.amplitude_ma - lead_ma < CURRENT_STEP_MA
    assert lead_ma % CURRENT_STEP_MA == 0
    assert lead_us <= command.pulse_width_us + 1e-9 and command.pulse_width_us - lead_us < 1
    assert all(0 < us <= MAX_POINT_US for us, _ in pulse.points)
    recovery = [(us, ma) for us, ma in pulse.points if ma < 0]
    # The recovery current at or above the lead's over the ratio (a step at most above),
    # never above the lead's: the pulse is never longer than the command's, nor its
    # width ratio larger (to the half microsecond its width is rounded to).
    assert recovery and all(lead_ma / command.anodic_width_ratio - 1e-9 <= -ma
                            <= min(lead_ma / command.anodic_width_ratio + CURRENT_STEP_MA,
                                   lead_ma) + 1e-9 for _, ma in recovery)
    recovery_us = sum(us for us, _ in recovery)
    assert recovery_us <= lead_us * command.anodic_width_ratio + 0.5 + 1e-9
    charge = lead_us * lead_ma + sum(us * ma for us, ma in recovery)
    assert abs(charge) <= -recovery[0][1] / 2 + 1e-9  # balanced to half a step
    assert 1.0 / pulse.period_s <= command.frequency_hz + 1e-9  # never faster than asked
    if layer == "mid":
        assert (pulse.period_s * 1000) == round(pulse.period_s * 1000)  # whole ms
    else:
        assert pulse.period_s == pytest.approx(1.0 / command.frequency_hz)


@given(commands, st.sampled_from(["low", "mid"]))
@example(StimCommand(0, True, 33.0, 300.0, 40.0, 0.0, 10.0), "low")
def test_the_watchdog_sees_the_pulse_the_device_fires(command, layer):
    """``P24Stimulator.resolution`` maps a command row to the device's pulse: the
    current, widths, gap and period it fires, and the width ratio of its recovery phase
    (33 mA at a ratio of 10 was fired with a 3.0 mA recovery 3,300 us long, a ratio of
    11 beyond the watchdog's maximum of 10; now 3.5 mA, 2,829 us, a ratio of 9.43)."""
    try:
        pulse = device_pulse(command, layer)
    except ValueError:
        return
    row = np.zeros(COMMAND_ROW_SIZE)
    write_row(command, row)
    P24Steps(layer).quantise_row(row)
    mapped = command_of_row(row)
    assert pulse is not None and mapped.delivers
    lead_us, lead_ma = pulse.points[0]
    recovery = [(us, -ma) for us, ma in pulse.points if ma < 0]
    assert (mapped.amplitude_ma, mapped.pulse_width_us) == (lead_ma, lead_us)
    assert mapped.interphase_gap_us == sum(us for us, ma in pulse.points if ma == 0)
    assert mapped.frequency_hz == pytest.approx(1.0 / pulse.period_s, rel=1e-12)
    assert mapped.anodic_width_ratio == pytest.approx(lead_ma / recovery[0][1], rel=1e-12)
    assert mapped.anodic_width_ratio <= command.anodic_width_ratio + 1e-9
    assert abs(sum(us for us, _ in recovery) - lead_us * mapped.anodic_width_ratio) <= 0.5
    assert device_pulse(mapped, layer) == pulse  # the device fires the same for it


def test_commands_that_deliver_nothing_and_too_much():
    assert device_pulse(StimCommand.off(0), "low") is None
    assert device_pulse(StimCommand(0, True, 0.4, 300.0, 40.0), "low") is None  # < 0.5 mA
    with pytest.raises(ValueError, match="130 mA"):
        device_pulse(StimCommand(0, True, 131.0, 300.0, 40.0), "low")


def test_the_check_refuses_what_the_trial_cannot_have():
    info = P24Info("X", "1.0.0", "4.0.0", "low")
    assert check_p24(info, REQUIREMENTS) == []
    mid = check_p24(P24Info("X", "1.0.0", "4.0.0", "mid"), REQUIREMENTS)
    assert len(mid) == 1 and "2000 ms after its host goes quiet" in mid[0]
    old = check_p24(P24Info("X", "1.0.0", "3.2.0", "low"),
                    BoardRequirements(SafetyLimits(), 500.0, channels=9))
    assert any("ScienceMode version 3.2.0" in p for p in old)
    assert any("needs 9 outputs" in p for p in old)
    assert check_p24(P24Info("X", "1.0.0", "3.2.0", "mid"), None) == [old[0]]


# --- over the emulator ---------------------------------------------------------------------


def test_connects_and_is_a_stimulator(bench):
    info = bench.stim.connect()
    assert isinstance(bench.stim, Stimulator) and bench.stim.channels == 8
    assert (info.device_id, info.science_mode_version, info.layer) == (
        "P24EMU0001", "4.0.0", bench.stim.layer)
    bench.stim.close()
    assert bench.stim.stop_confirmed
    assert bench.events(f"{bench.stim.layer}_level_stop")


def test_the_mid_level_is_refused_for_a_trial_and_left_stopped():
    b = Bench("mid")
    b.stim.requirements = REQUIREMENTS
    try:
        with pytest.raises(BoardError, match="2000 ms after its host goes quiet") as err:
            b.stim.connect()
        assert err.value.kind == "refused"
        assert b.events("mid_level_init") and b.events("mid_level_stop")
    finally:
        b.close()


def test_nothing_answering_is_no_board():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        stim = P24Stimulator(os.ttyname(slave), connect_timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(BoardError) as err:
            stim.connect()
        assert err.value.kind == "no_board" and time.monotonic() - started < 3.0
        # fes run printed "no P24 answers on /dev/pts/N: " and nothing after the colon
        assert str(err.value) == (f"no P24 answered on {os.ttyname(slave)} within 0.5 s "
                                  "(is it switched on, is this its port?)")
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(BoardError, match="cannot open"):
        P24Stimulator("/dev/no-such-p24").connect()


def test_stimulation_starts_when_commanded_and_stop_all_ends_it(bench):
    bench.stim.connect()
    bench.stim.stop_all()  # safe before any command
    bench.hold(0.05, [StimCommand.off(0)])
    started = time.monotonic()
    bench.hold(0.3, [ON])
    stopper = threading.Thread(target=bench.stim.stop_all)  # from another thread
    stopper.start()
    stopper.join()
    stopped = time.monotonic()
    time.sleep(0.1)
    pulses = bench.pulses()
    assert pulses and started <= pulses[0] < started + 0.05
    assert 10 <= len(pulses) <= 14  # 40 Hz for 0.3 s
    assert max(pulses) < stopped + 0.01
    pulse = bench.events("pulse")[0]
    assert (pulse["channel"], pulse["current_ma"], pulse["width_us"]) == (0, 35.0, 300)
    bench.stim.close()
    bench.stim.stop_all()  # and after close


def test_bad_commands_are_refused_before_anything_changes(low):
    bench = low
    bench.stim.connect()
    for bad in ([ON, StimCommand(8, True, 35.0, 300.0, 40.0)],
                [ON, StimCommand(0, True, math.nan, 300.0, 40.0)],
                [ON, StimCommand(1, True, 35.0, 300.0, 40.0, 0.0, 0.5)]):
        with pytest.raises(ValueError):
            bench.stim.apply(0.0, bad)
    time.sleep(0.1)
    assert bench.pulses() == []


def test_a_loop_that_stops_calling_ends_the_stimulation(bench):
    bench.stim.connect()
    bench.hold(0.2, [ON])
    hung = time.monotonic()  # the loop stops calling apply here
    time.sleep(0.4)
    assert max(bench.pulses()) < hung + bench.stim._liveness_s + 0.03
    assert bench.stim.stats.stalls >= 1
    assert bench.stim.fault is None


class Switchable:
    """A ``Transport`` to the emulator whose writes can be swallowed (a device that
    stops listening) and into whose reads bytes can be slipped (a device's answer)."""

    def __init__(self, path: str) -> None:
        self.transport = Transport(path)
        self.deaf = False
        self.slip = b""

    def read(self) -> bytes:
        data, self.slip = self.transport.read() + self.slip, b""
        return data

    def write(self, data: bytes) -> None:
        if not self.deaf:
            self.transport.write(data)

    def close(self) -> None:
        self.transport.close()


class Late:
    """A ``Transport`` to the emulator whose answers reach the driver ``delay_s`` after
    they arrived (a slow USB-serial adapter): answers are still in flight at close."""

    def __init__(self, path: str, delay_s: float = 0.03) -> None:
        self.transport, self.delay_s = Transport(path), delay_s
        self.queue: list[tuple[float, bytes]] = []

    def read(self) -> bytes:
        now = time.monotonic()
        data = self.transport.read()
        if data:
            self.queue.append((now, data))
        ready = b"".join(d for t, d in self.queue if now - t >= self.delay_s)
        self.queue = [(t, d) for t, d in self.queue if now - t < self.delay_s]
        return ready

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        self.transport.close()


def test_answers_in_flight_at_close_are_counted():
    # The level's stop reads the library's buffer too and drops answers it does not
    # wait for: the pulses' answers still in flight were counted as never received.
    b = Bench("low", link=lambda path: Late(path))
    try:
        b.stim.connect()
        b.hold(0.2, [ON])
    finally:
        b.close()
    assert b.stim.stop_confirmed and b.stim.fault is None
    assert b.stim.stats.acks == b.stim.stats.packets_out


def test_a_device_that_stops_answering_is_a_link_fault():
    links: list[Switchable] = []
    b = Bench("low", link=lambda path: links.append(Switchable(path)) or links[0],
              poll_s=0.05, ack_timeout_s=0.2)
    faults = []
    try:
        b.stim.add_fault_listener(faults.append)
        b.stim.connect()
        b.hold(0.1, [ON])
        links[0].deaf = True
        b.hold(0.5, [ON])
        assert b.stim.fault is not None and b.stim.fault.kind == "link"
        assert "did not answer" in b.stim.fault.message and faults == [b.stim.fault]
    finally:
        b.close()


def test_an_error_from_the_device_is_a_device_fault_and_ends_the_pulses():
    links: list[Switchable] = []
    b = Bench("low", link=lambda path: links.append(Switchable(path)) or links[0])
    try:
        b.stim.connect()
        b.hold(0.1, [ON])
        error = bytes([w.Result.PARAMETER_ERROR])
        links[0].slip = w.encode(w.Packet(w.Command.GENERAL_ERROR, 0, error))
        b.hold(0.1, [ON])
        fault = b.stim.fault
        assert fault is not None and fault.kind == "board" and "PARAMETER_ERROR" in fault.message
        b.hold(0.1, [ON])
        assert max(b.pulses()) < fault.monotonic_s + 0.03
    finally:
        b.close()


def test_a_ramp_reaches_the_pulses_without_flooding_the_link(bench):
    """The loop changes the amplitude every 2 ms (a 200 ms ramp): on the low level each
    pulse takes the latest amplitude; on the mid level the device is sent a new level at
    most about once per pulse period, not once per sample."""
    bench.stim.connect()
    start = time.monotonic()
    while (t := time.monotonic() - start) < 0.2:
        bench.stim.apply(t, [StimCommand(0, True, 5.0 + 100.0 * t, 300.0, 40.0)])
        time.sleep(0.002)
    bench.hold(0.1, [StimCommand(0, True, 25.0, 300.0, 40.0)])
    bench.stim.stop_all()
    time.sleep(0.05)
    pulses = bench.events("pulse")
    during = [p for p in pulses if p["monotonic_s"] < start + 0.2]
    currents = [p["current_ma"] for p in during]
    assert currents == sorted(currents) and currents[0] < 10.0 and currents[-1] > 18.0
    assert pulses[-1]["current_ma"] == 25.0
    if bench.stim.layer == "mid":
        assert bench.stim.stats.updates <= 0.3 / 0.025 + 3  # not one per 2 ms sample
