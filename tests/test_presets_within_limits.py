"""Every shipped stimulation preset on every shipped patient: the watchdog never has to
step in, because the config check knows what the watchdog will check (issue 13 item 7:
the rise of a pulse-width ramp was checked on its amplitude, which steps at onset)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_config
from controller.ports import StimCommand
from controller.resources import available
from controller.safety import SafetyLimits, Watchdog
from controller.trial.simulated import run_simulated_trial


@pytest.mark.parametrize("patient", available("patients"))
@pytest.mark.parametrize("preset", ["default", *available("stim")])
def test_every_shipped_preset_runs_every_shipped_profile_60_s_without_a_clamp(
    tmp_path: Path, preset: str, patient: str
):
    overrides = {"loop": {"duration_s": 60.0}, "sim": {"patient": patient}}
    if preset != "default":
        overrides["stim"] = {"preset": preset}
    summary = run_simulated_trial(load_config(None, overrides), tmp_path)
    watchdog = summary["watchdog"]
    assert watchdog["clamped_commands"] == 0, watchdog["interventions"][:3]
    assert watchdog["faults"] == 0, watchdog["interventions"][:3]
    assert summary["stim"]["trains"] >= 40


class Outputs:
    channels = 1

    def __init__(self) -> None:
        self.applied: list[StimCommand] = []

    def apply(self, t_s, commands) -> None:
        self.applied += commands

    def stop_all(self) -> None:
        pass


def test_a_pulse_width_ramp_at_full_amplitude_rises_in_charge_and_is_not_clamped():
    """ODFS ramps the pulse width at a fixed current: 40 mA from the first pulse, the
    charge rising from 0 to 40 mA x 300 us = 12 uC over the 100 ms ramp (120 uC/s)."""
    outputs = Outputs()
    dog = Watchdog(outputs, SafetyLimits())
    for k in range(1, 51):  # 2 ms samples, 100 ms
        dog.submit(k * 0.002, [StimCommand(0, True, 40.0, 300.0 * k / 50, 40.0)])
    assert dog.clamped_commands == 0
    assert [c.amplitude_ma for c in outputs.applied] == [40.0] * 50


def test_a_pulse_width_step_is_clamped_by_its_charge():
    """A step to 300 us at 40 mA (12 uC at once) is delivered at the charge the rise
    allows: the amplitude scaled down, both phases alike."""
    outputs = Outputs()
    limits = SafetyLimits()
    dog = Watchdog(outputs, limits)
    dog.submit(0.002, [StimCommand(0, True, 40.0, 300.0, 40.0)])
    assert dog.clamped_commands == 1
    (delivered,) = outputs.applied
    charge_uc = delivered.amplitude_ma * delivered.pulse_width_us / 1000.0
    allowed_uc = limits.max_charge_rise_uc_per_s * 0.010  # a step counts over 10 ms at most
    assert delivered.pulse_width_us == 300.0
    assert charge_uc == pytest.approx(allowed_uc)


def test_the_config_check_measures_the_charge_rise_of_a_pulse_width_ramp(tmp_path, capsys):
    path = tmp_path / "steep.toml"
    path.write_text('[stim.peroneal]\nramp_parameter = "pulse_width"\namplitude_ma = 40\n'
                    "ramp_up_ms = 20\n")
    assert main(["check-config", str(path)]) == 2
    assert ("stim.peroneal.ramp_up_ms: 40 mA x 300 us = 12 uC per phase in 20 ms rises at "
            "600 uC/s, exceeds safety.max_charge_rise_uc_per_s = 350") in capsys.readouterr().err
