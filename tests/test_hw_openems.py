"""The openEMSstim driver and its emulator, from openEMSstim's documented protocol.

The firmware model is checked against the rules of openEMSstim's software guide and
firmware; the driver byte for byte through a pty, then against the model.
"""

from __future__ import annotations

import os
import select
import time
import tty

import pytest

from controller.ports import StimCommand, Stimulator
from hw.openems import OpenEmsFirmware, OpenEmsStim, serve_openems_in_thread

ON_35 = StimCommand(0, True, 35.0, 300.0, 40.0)


def device(url: str, refresh_s: float = 0.05) -> OpenEmsStim:
    """A unit set to 300 us at 40 Hz whose full intensity gives 60 mA."""
    return OpenEmsStim(url, full_scale_ma=60.0, pulse_width_us=300.0, frequency_hz=40.0,
                       refresh_s=refresh_s)


def test_documented_example_runs_channel_0_at_full_intensity_for_one_second():
    fw = OpenEmsFirmware()
    fw.command("C0I100T1000G", 0.0)
    assert fw.channels_on() == [0] and fw.channels[0].intensity == 100
    fw.poll(0.999)
    assert fw.channels_on() == [0]
    fw.poll(1.0)
    assert fw.channels_on() == []


def test_documented_rules_of_the_firmware():
    fw = OpenEmsFirmware()
    fw.command("C1I40T20000G", 0.0)  # the on-time is capped at 5000 ms
    fw.poll(4.99)
    assert fw.channels_on() == [1]
    fw.poll(5.0)
    assert fw.channels_on() == []
    fw.command("C0I50T3000G", 10.0)
    fw.command("C0T50G", 10.1)  # a shorter new on-time replaces the running one
    fw.poll(10.151)
    assert fw.channels_on() == []
    fw.command("C0G", 11.0)  # fields left out keep their values: intensity 50, 50 ms
    assert fw.channels[0].intensity == 50 and fw.channels[0].on_time_ms == 50
    fw.command("C1I10T1000G", 11.0)
    fw.command("C7G", 11.01)  # a channel out of range switches every channel off
    assert fw.channels_on() == []
    fw.command("G", 12.0)  # two characters or fewer: the test mode, not a command
    assert fw.channels_on() == [] and fw.unknown == ["G"]


def test_driver_sends_the_documented_lines():
    master, slave = os.openpty()
    tty.setraw(slave)
    stim = device(os.ttyname(slave), refresh_s=0.12)  # slack for a paused test process

    def received(timeout_s: float = 1.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and select.select([master], [], [], 0.02)[0]:
            data += os.read(master, 4096)
        return data

    stim.apply(0.0, [ON_35])
    assert received() == b"C0I58T150G\n"  # 35 of 60 mA: intensity 58, held 150 ms
    stim.apply(0.002, [ON_35])
    assert received(0.02) == b""  # unchanged and fresh: nothing to send
    time.sleep(0.12)
    stim.apply(0.12, [ON_35])
    assert received() == b"C0T150G\n"  # held: the on-time is renewed
    stim.apply(0.07, [StimCommand.off(0)])
    assert received() == b"C0T1G\n"  # off: the channel ends after 1 ms
    stim.apply(0.08, [StimCommand.off(1)])
    assert received(0.02) == b""  # already off: nothing (C1T1G would switch it on first)
    stim.stop_all()
    assert received() == b"C9G\n"
    stim.close()
    os.close(master)
    os.close(slave)


def test_driver_refuses_what_the_device_cannot_do():
    master, slave = os.openpty()
    stim = device(os.ttyname(slave))
    assert isinstance(stim, Stimulator) and stim.channels == 2
    for bad, reason in (
        (StimCommand(0, True, 35.0, 200.0, 40.0), "TENS unit delivers 300 us at 40 Hz"),
        (StimCommand(0, True, 70.0, 300.0, 40.0), "over the unit's full scale 60 mA"),
        (StimCommand(2, True, 35.0, 300.0, 40.0), "channel 2 out of range"),
        (StimCommand(0, True, float("nan"), 300.0, 40.0), "is invalid"),
    ):
        with pytest.raises(ValueError, match=reason):
            stim.apply(0.0, [bad])
    assert not select.select([master], [], [], 0.05)[0]  # nothing was sent
    stim.close()
    os.close(master)
    os.close(slave)


def test_driver_and_emulator_stimulate_hold_and_stop():
    firmware, path, finish = serve_openems_in_thread()
    stim = device(path)
    try:
        stim.apply(0.0, [ON_35, StimCommand(1, True, 12.0, 300.0, 40.0)])
        time.sleep(0.05)
        assert firmware.channels_on() == [0, 1]
        assert [c.intensity for c in firmware.channels] == [58, 20]
        for _ in range(30):  # 0.3 s, twice the on-time: refreshed, still on
            time.sleep(0.01)
            stim.apply(0.0, [ON_35])
        assert firmware.channels_on() == [0, 1]
        stim.apply(0.0, [StimCommand.off(1)])
        time.sleep(0.05)
        assert firmware.channels_on() == [0]
        # The host falls silent: the device ends the channel within its on-time.
        time.sleep(0.2)
        assert firmware.channels_on() == []
        stim.apply(0.0, [StimCommand(0, True, 30.0, 300.0, 40.0)])
        time.sleep(0.05)
        assert firmware.channels_on() == [0]
        stim.stop_all()
        time.sleep(0.05)
        assert firmware.channels_on() == []
    finally:
        stim.close()
        finish()
