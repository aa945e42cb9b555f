"""A trial config the watchdog would refuse is refused when loaded, naming the limit."""

from __future__ import annotations

import pytest

from controller.cli import main


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[stim.peroneal]\nfrequency_hz = 70\n", "stim.peroneal.frequency_hz: 70 exceeds "
         "safety.max_frequency_hz = 60"),
        ("[stim.peroneal]\namplitude_ma = 55\npulse_width_us = 600\n",
         "charge per phase of 55 mA, 600 us, 40 Hz is 33 uC, exceeds "
         "safety.max_charge_per_phase_uc = 30"),
        ("[stim.peroneal]\namplitude_ma = 50\npulse_width_us = 450\n",
         "Shannon k of 50 mA, 450 us, 40 Hz is 1.801, exceeds safety.max_shannon_k = 1.75"),
        ("[safety]\nelectrode_area_cm2 = 2\n",
         "r.m.s. current density of 35 mA, 300 us, 40 Hz is 2.711 mA/cm2, exceeds "
         "safety.max_rms_current_density_ma_per_cm2 = 2"),
        ("[stim.peroneal]\nramp_up_ms = 0\n",
         "stim.peroneal.ramp_up_ms: 35 mA x 300 us = 10.5 uC per phase in 0 ms rises at inf "
         "uC/s, exceeds safety.max_charge_rise_uc_per_s = 350"),
        ("[stim.peroneal]\nramp_up_ms = 20\n", "rises at 525 uC/s"),
        ("[safety]\nmax_amplitude_rise_ma_per_s = 1000\n",
         "max_amplitude_rise_ma_per_s was replaced by max_charge_rise_uc_per_s"),
        ("[stim.peroneal]\nramp_down_ms = 400\n",
         "stim.peroneal.ramp_down_ms: 400 ms exceeds safety.max_unknown_phase_ms = 250"),
        ("[safety]\nmax_continuous_on_ms = 1000\n",
         "stim.peroneal: timeout_ms + ramp_down_ms = 1600 ms exceeds "
         "safety.max_continuous_on_ms = 1000"),
        ("[loop]\nsample_rate_hz = 100\n[safety]\nsensor_timeout_ms = 15\n",
         "safety.sensor_timeout_ms: 15 ms is shorter than two sample periods (20 ms"),
        ("[safety]\nheartbeat_timeout_ms = 50\n", "safety.heartbeat_timeout_ms"),
        ("[safety]\nmax_shannon_k = 2.5\n", "safety.max_shannon_k"),
        ("[safety]\nmax_net_dc_ua = 100\n", "safety.max_net_dc_ua"),
        ("[stim.peroneal]\ninterphase_gap_us = 300\n[safety]\nmax_interphase_gap_us = 200\n",
         "stim.peroneal.interphase_gap_us: 300 exceeds safety.max_interphase_gap_us = 200"),
        ("[stim.peroneal]\nanodic_width_ratio = 6\n[safety]\nmax_anodic_width_ratio = 4\n",
         "stim.peroneal.anodic_width_ratio: 6 exceeds safety.max_anodic_width_ratio = 4"),
        ("[stim.peroneal]\nanodic_width_ratio = 10\ninterphase_gap_us = 500\nfrequency_hz = 60\n"
         "[safety]\nmax_pulse_period_fraction = 0.2\n",
         "stim.peroneal: a pulse of 300 us + gap 500 us + anodic 3000 us lasts 3800 us, 0.228 "
         "of the 16666.7 us period at 60 Hz, exceeds safety.max_pulse_period_fraction = 0.2"),
        ("[safety]\nmax_pulse_period_fraction = 0.6\n",
         "safety.max_pulse_period_fraction: input should be less than or equal to 0.5 "),
        ("[safety]\nmax_anodic_width_ratio = 11\n",
         "safety.max_anodic_width_ratio: input should be less than or equal to 10 "),
        ("[safety]\nmax_interphase_gap_us = 1001\n",
         "safety.max_interphase_gap_us: input should be less than or equal to 1000 "),
        ("[safety]\nmax_total_amplitude_ma = 30\n",
         "stim: the amplitudes of the channels that may stimulate together add up to 35 mA "
         "(stim.peroneal 35), exceeds safety.max_total_amplitude_ma = 30"),
        ('[stim]\npreset = "peroneal_calf"\n[safety]\nmax_total_amplitude_ma = 70\n',
         "add up to 75 mA (stim.peroneal 35, stim.channels.calf 40), exceeds "
         "safety.max_total_amplitude_ma = 70"),
        ("[safety]\nmax_total_amplitude_ma = 201\n",
         "safety.max_total_amplitude_ma: input should be less than or equal to 200 "),
        # Training and test mode are timed by the clock: their duty cycle is known when
        # the config is loaded (2960 ms on every 3460 ms: 0.888 of the worst 10 s).
        ("[stim]\nmode = \"training\"\n[stim.training]\non_ms = 2800\noff_ms = 500\n",
         "stim.peroneal: training mode stimulates 2960 ms (ramp_up_ms + training.on_ms + "
         "ramp_down_ms) every 3460 ms, up to 0.888 of any 10 s, exceeds "
         "safety.max_duty_cycle = 0.8 (lengthen training.off_ms or shorten the train)"),
        ("[stim]\nmode = \"test\"\n[safety]\nmax_duty_cycle = 0.1\n",
         "stim.peroneal: test mode stimulates 1160 ms (ramp_up_ms + test.on_ms + "
         "ramp_down_ms), up to 0.116 of any 10 s, exceeds safety.max_duty_cycle = 0.1"),
    ],
)
def test_fes_sim_refuses_an_unsafe_config_naming_the_limit(tmp_path, capsys, toml, expected):
    if "Shannon" in expected:
        toml += "[safety]\nmax_shannon_k = 1.75\nmax_pulse_width_us = 500\n"
    path = tmp_path / "unsafe.toml"
    path.write_text(toml)
    assert main(["sim", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_every_breach_is_listed_at_once(tmp_path, capsys):
    path = tmp_path / "unsafe.toml"
    path.write_text(
        "[stim.peroneal]\namplitude_ma = 58\npulse_width_us = 520\nramp_up_ms = 10\n"
        "[safety]\nelectrode_area_cm2 = 5\n"
    )
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    for limit in ("max_pulse_width_us", "max_charge_per_phase_uc",
                  "max_rms_current_density_ma_per_cm2", "max_shannon_k",
                  "max_charge_rise_uc_per_s"):
        assert f"safety.{limit}" in err


def test_stimulation_disabled_needs_no_stimulation_limits(tmp_path, capsys):
    path = tmp_path / "off.toml"
    path.write_text("[stim]\nenabled = false\n[stim.peroneal]\nramp_up_ms = 0\n")
    assert main(["check-config", str(path)]) == 0


def test_a_training_duty_cycle_at_the_limit_runs_untouched(tmp_path, capsys):
    """The training-mode duty check is no stricter than it must be: 3000 ms on every
    4000 ms is 0.8 of the worst 10 s, the limit itself; the watchdog then passes every
    command of a 40 s trial (with off_ms 995 it latched max_duty_cycle before the check
    refused such configs)."""
    path = tmp_path / "training.toml"
    path.write_text('[stim]\nmode = "training"\n[stim.training]\non_ms = 2840\n'
                    "off_ms = 1000\n")
    out = tmp_path / "run"
    assert main(["sim", "--config", str(path), "--duration-s", "40", "--out", str(out)]) == 0
    assert "watchdog: 0 faults, 0 commands not passed as asked" in capsys.readouterr().out


def test_test_mode_adds_only_the_current_of_the_channel_that_bursts(tmp_path, capsys):
    """Test mode bursts one channel: the calf's 40 mA does not count beside the
    peroneal's 35 mA (walking mode, which may overlap them, is refused above)."""
    path = tmp_path / "test_mode.toml"
    path.write_text('[stim]\npreset = "peroneal_calf"\nmode = "test"\n'
                    "[safety]\nmax_total_amplitude_ma = 50\n")
    assert main(["check-config", str(path)]) == 0
