"""The watchdog checks what openEMSstim delivers, not what it was asked (branch onsetstep).

openEMSstim maps an amplitude to the highest calibrated intensity not above it, and
delivers an amplitude below the unit's output at intensity 1 as off: a commanded ramp
that the rise rule passes smoothly reached the pads as a step from off to the unit's
lowest output (12.9 mA x 300 us = 3.87 uC on the shipped example unit), while the
watchdog recorded and counted the commanded charge. Now the driver exposes the mapping
(``OpenEmsStim.resolution``, ``hw.openems.intensity.IntensitySteps``), the watchdog
checks and delivers the mapped rows, and ``fes run`` refuses a trial whose rise limit
cannot let the unit's lowest output through.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np
import pytest

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import FirmwareProcess, trains
from controller.cli import main
from controller.ports import StimCommand
from controller.safety import limits
from controller.safety.limits import SafetyLimits
from controller.safety.watchdog import Watchdog, onset_problems
from hw.openems import OpenEmsStim, driver
from hw.openems.intensity import IntensitySteps, wiper

SETTINGS = harness_settings()
CAL = SETTINGS.calibration
#: 100 commands/s (a Voisard walk's rate): one command may rise 4 uC at 400 uC/s.
PERIOD_S = 0.01
RISE_OK = SafetyLimits(max_charge_rise_uc_per_s=400.0)
FULL_MA = 35.0


class _Steps:
    """A stimulator that takes every command and exposes openEMSstim's mapping."""

    channels = 2

    def __init__(self) -> None:
        self.resolution = SETTINGS.steps
        self.applied: list[list[StimCommand]] = []

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self.applied.append(list(commands))

    def stop_all(self) -> None:
        pass


def ramp(k: int, period_s: float = PERIOD_S) -> StimCommand:
    """The default envelope's 60 ms ramp to 35 mA at 1 / ``period_s`` commands/s (100
    unless given), sample ``k``."""
    amplitude = min(FULL_MA, FULL_MA * k * period_s / 0.06)
    return StimCommand(0, True, amplitude, SETTINGS.pulse_width_us, SETTINGS.frequency_hz)


def test_the_watchdog_delivers_and_records_the_calibrated_output():
    """Ramp samples 1-2 (5.8, 11.7 mA) are below the unit's lowest output: delivered off.
    Sample 3 asks 17.5 mA, which the unit gives as intensity 13 (17.4 mA, 5.2 uC): a
    step from off beyond 4 uC, clamped to 13.3 mA, which the unit gives as intensity 1
    (12.9 mA, 3.87 uC); the record shows what the unit delivers on both sides, and
    every delivered amplitude is a calibrated output the driver sends unchanged."""
    stim = _Steps()
    dog = Watchdog(stim, RISE_OK)
    for k in range(8):
        dog.submit(k * PERIOD_S, [ramp(k)])
    delivered = [cmd for (cmd,) in stim.applied]
    assert [c.delivers for c in delivered[:3]] == [False, False, False]
    first = delivered[3]
    intensity = CAL.intensity(first.amplitude_ma)
    assert first.amplitude_ma == CAL.output_ma(intensity) and intensity == 1
    assert first.amplitude_ma * first.pulse_width_us / 1e3 <= 4.0
    (clamp,) = dog.interventions
    asked = CAL.output_ma(CAL.intensity(ramp(3).amplitude_ma))
    assert clamp.rule == "max_charge_rise_uc_per_s"
    assert clamp.requested == f"on {asked:.4g} mA 300 us 40 Hz"
    assert clamp.delivered == f"on {first.amplitude_ma:.4g} mA 300 us 40 Hz"
    assert f"from 0 to {asked * 0.3:.4g} uC" in clamp.detail
    for cmd in delivered:
        assert CAL.output_ma(CAL.intensity(cmd.amplitude_ma)) == cmd.amplitude_ma
    assert delivered[-1].amplitude_ma == CAL.output_ma(CAL.intensity(FULL_MA))


def test_the_mapping_never_delivers_more_and_keeps_what_the_driver_refuses():
    steps: IntensitySteps = SETTINGS.steps
    for amplitude in np.linspace(0.0, CAL.highest_ma, 997):
        row = np.array([0.0, 1.0, amplitude, 300.3, 40.01, 0.0, 1.0])
        steps.quantise_row(row)
        assert row[2] <= amplitude + 1e-9 * CAL.highest_ma
        assert (row[1], row[2] == 0.0) == ((0.0, True) if amplitude < CAL.lowest_ma
                                           else (1.0, False))
        assert (row[3], row[4]) == (300.0, 40.0)  # the unit's own
    beyond = np.array([0.0, 1.0, 60.0, 200.0, 40.0, 0.0, 1.0])
    steps.quantise_row(beyond)
    assert list(beyond) == [0.0, 1.0, 60.0, 200.0, 40.0, 0.0, 1.0]


def test_a_rise_limit_that_cannot_pass_the_units_lowest_output_is_named():
    peroneal = [("stim.peroneal", ramp(6))]
    (problem,) = onset_problems(SETTINGS.steps, SafetyLimits(), peroneal)
    assert problem.startswith("stim.peroneal: the stimulator's lowest output, 12.9 mA x "
                              "300 us = 3.87 uC per phase")
    assert "safety.max_charge_rise_uc_per_s = 350 uC/s" in problem
    assert "at least 387 uC/s" in problem and "at most 11.67 mA at 300 us" in problem
    assert onset_problems(SETTINGS.steps, RISE_OK, peroneal) == []
    strong = harness_settings(output_at_lowest_ma=25.0)  # 7.5 uC: over 700 uC/s x 10 ms
    (none,) = onset_problems(strong.steps, SafetyLimits(max_charge_rise_uc_per_s=700.0),
                             [("stim.peroneal", StimCommand(0, True, 30.0, 300.0, 40.0))])
    assert "No safety.max_charge_rise_uc_per_s up to its maximum 700 uC/s" in none


def test_a_ramp_starts_whatever_the_command_rate():
    """At 500 commands/s the ramp's first samples, below the unit's lowest output, are
    delivered as off; they leave the channel's rise count running (it counts from the
    held charge's last change, not from the last command), so the onset step to 12.9 mA
    passes at 400 uC/s as it does at 100 commands/s. (Counted from the last command,
    every off restarted the count: 0.8 uC allowed every sample, and the channel never
    started.)"""
    stim = _Steps()
    dog = Watchdog(stim, RISE_OK)
    period_s = 0.002
    for k in range(40):
        amplitude = min(FULL_MA, FULL_MA * k * period_s / 0.06)
        dog.submit(k * period_s, [StimCommand(0, True, amplitude, SETTINGS.pulse_width_us,
                                              SETTINGS.frequency_hz)])
    delivered = [cmd for (cmd,) in stim.applied]
    first = next(k for k, cmd in enumerate(delivered) if cmd.delivers)
    assert CAL.intensity(delivered[first].amplitude_ma) == 1
    assert first * period_s <= 0.03  # 12.9 mA of the 60 ms ramp to 35 mA: 22 ms in
    assert delivered[-1].delivers and not dog.latched


def test_fes_run_refuses_the_unit_before_sending_a_line(openems_programs, tmp_path, capsys):
    """The shipped example unit with the default rise limit, a 100 Hz walk: exit 2 before
    the port is opened; the firmware reads nothing."""
    walk = tmp_path / "walk.csv"
    walk.write_text("time_s,gyro_rad_s\n" + "".join(f"{k / 100},0\n" for k in range(50)))
    settings = tmp_path / "unit.toml"
    settings.write_text("output_at_lowest_ma = 12.9\noutput_at_highest_ma = 50.1\n"
                        "pulse_width_us = 300.0\nfrequency_hz = 40.0\nusb_latency_ms = 0\n")
    firmware = FirmwareProcess(openems_programs["head"], tmp_path)
    try:
        code = main(["run", "--no-status", "--sensors", f"replay:{walk}", "--stimulator",
                     f"openemsstim:{firmware.path}", "--stimulator-settings", str(settings),
                     "--out", str(tmp_path / "out")])
        time.sleep(0.2)
        rows = firmware.serial()
    finally:
        firmware.stop()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "12.9 mA x 300 us = 3.87 uC" in err and "max_charge_rise_uc_per_s" in err
    assert not [r for r in rows if r.kind in ("rx_line", "host_bytes")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("period_s", [PERIOD_S, 0.002])
def test_the_onset_the_firmware_gets_is_what_the_watchdog_recorded(openems, period_s):
    """On the real firmware (each version), a ramp paced at 100 and at 500 commands/s
    through the watchdog: the train's first wiper is the intensity of the watchdog's
    first delivered amplitude, which its clamp record shows, even when the firmware was
    busy then. At 500 commands/s the driver's own estimate of the
    train's rise counts each step from the last change, as the rule does: counted from
    the last command (2 ms), the onset's 3.87 uC made it 1,935 uC/s, and the steps up
    that followed could be five times what the rule passes."""
    stim: OpenEmsStim = openems.stim
    dog = Watchdog(stim, RISE_OK)
    # Connecting ended with the all-off line, which keeps the firmware busy 50 ms a
    # channel: the onset is asked while it is busy, and the start goes out when it is
    # free, the ramp at 34.8 mA by then. It went out at that level (intensity 59, a
    # step from off of 10.4 uC); now at the onset the watchdog checked, the rest after.
    start = time.monotonic()
    sent = []
    samples = round(0.4 / period_s)
    for k in range(samples):
        sent += dog.submit(k * period_s, [ramp(k, period_s)])
        time.sleep(max(0.0, start + (k + 1) * period_s - time.monotonic()))
    dog.stop_all()
    time.sleep(0.2)
    first = next(c for c in sent if c.delivers)
    (clamp,) = dog.interventions
    assert clamp.delivered == f"on {first.amplitude_ma:.4g} mA 300 us 40 Hz"
    (train,) = [t for t in trains(openems.firmware.timeline(), 0) if t.on_s > start]
    assert train.wipers[0] == wiper(CAL.intensity(first.amplitude_ma)) == wiper(1)
    assert train.wipers[-1] == wiper(CAL.intensity(FULL_MA))
    # Every step up at the pads is one the rise rule passes (400 uC/s over the time
    # since the previous change, at most 10 ms; 2 ms for the firmware's own timing):
    # it went from intensity 1 to 59 in one line, 6.6 uC, where a command may rise 4.
    changes = [(train.on_s, charge_uc(train.wipers[0]))] + [
        (c.t_s, charge_uc(c.wiper)) for c in openems.firmware.timeline()
        if c.channel == 0 and c.event.startswith("wiper") and train.on_s < c.t_s < train.zero_s]
    for (t0, q0), (t1, q1) in itertools.pairwise(changes):
        assert q1 - q0 <= 400.0 * min(t1 - t0 + 0.002, 0.01), changes
    assert len(changes) >= 3, changes  # the ramp in checked steps
    assert stim.fault is None


def charge_uc(wiper_at: int) -> float:
    """The example unit's charge per phase at the intensity that sets ``wiper_at``."""
    intensity = next(i for i in range(1, 101) if wiper(i) == wiper_at)
    return CAL.output_ma(intensity) * SETTINGS.pulse_width_us / 1e3


def test_the_driver_restates_the_watchdogs_rise_window():
    assert driver.RISE_WINDOW_S == limits.RISE_WINDOW_S
