"""The ``[stim]`` section: presets, cross-field rules and safety limits, as a user meets
them through ``fes check-config`` and ``fes sim``."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_config
from controller.resources import available, configs_root, load_toml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trial.toml"
    path.write_text(text)
    return path


def check(tmp_path: Path, capsys, text: str) -> tuple[int, str]:
    code = main(["check-config", str(write(tmp_path, text))])
    return code, capsys.readouterr().err


def test_the_device_presets_are_shipped():
    assert {"odfs", "l300", "walkaide", "peroneal_calf"} <= set(available("stim"))


@pytest.mark.parametrize("name", available("stim"))
def test_every_preset_loads_within_the_default_safety_limits(name):
    config = load_config(overrides={"stim": {"preset": name}})
    preset = load_toml(configs_root() / "stim" / f"{name}.toml")
    assert config.stim.preset == name
    for key, value in preset["peroneal"].items():
        assert getattr(config.stim.peroneal, key) == value
    for channel, settings in preset.get("channels", {}).items():
        for key, value in settings.items():
            assert getattr(config.stim.channels[channel], key) == value


def test_every_preset_names_its_source_in_comments():
    for name in available("stim"):
        text = (configs_root() / "stim" / f"{name}.toml").read_text()
        comments = [line for line in text.splitlines() if line.startswith("#")]
        assert len(comments) >= 8, name


def test_the_users_file_overrides_the_preset_and_the_command_line_both(tmp_path):
    path = write(tmp_path, '[stim]\npreset = "odfs"\n[stim.peroneal]\namplitude_ma = 30.0\n')
    config = load_config(path, {"stim": {"peroneal": {"lead_ms": 150.0}}})
    assert config.stim.peroneal.amplitude_ma == 30.0  # the file over the preset
    assert config.stim.peroneal.lead_ms == 150.0  # the command line over the preset
    assert config.stim.peroneal.anodic_width_ratio == 4.0  # the preset over the default


def test_sim_picks_a_preset_by_name(tmp_path):
    assert main(["sim", "--stim", "walkaide", "--duration-s", "3", "--out", str(tmp_path)]) == 0
    assert '"preset": "walkaide"' in (tmp_path / "config.json").read_text()


def test_unknown_preset_lists_the_available_ones(capsys):
    assert main(["sim", "--stim", "nosuch", "--duration-s", "1"]) == 2
    err = capsys.readouterr().err
    assert "available: " in err and "odfs" in err and "Traceback" not in err


def test_a_preset_cannot_chain_presets(tmp_path, capsys):
    preset = tmp_path / "mine.toml"
    preset.write_text('preset = "odfs"\n')
    code, err = check(tmp_path, capsys, f'[stim]\npreset = "{preset}"\n')
    assert code == 2 and "cannot name another preset" in err


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[safety]\nmax_frequency_hz = 100\nmax_pulse_width_us = 1000\n[stim.peroneal]\n"
         "frequency_hz = 100\npulse_width_us = 900\nanodic_width_ratio = 10\n"
         "interphase_gap_us = 200\n",
         "stim.peroneal: a pulse of 900 us + gap 200 us + anodic 9000 us lasts 10100 us, "
         "not less than the 10000 us period at 100 Hz"),
        ("[stim.channels.calf]\nchannel = 0\n",
         "stim.channels.calf.channel: output 0 is already used by stim.peroneal"),
        ("[stim.channels.Calf]\nchannel = 1\n", "lower-case identifier"),
        ("[stim.channels.calf]\nchannel = 1\namplitude_ma = 75\n",
         "stim.channels.calf.amplitude_ma: 75 exceeds safety.max_amplitude_ma = 60"),
        ("[stim.peroneal]\ntrigger = 'heel_off'\n",
         "stim.peroneal.trigger: heel_off needs a detector that reports heel off"),
        ("[stim.peroneal]\ntrigger = 'heel_strike_ish'\n", "stim.peroneal.trigger"),
        ("[stim]\nmode = 'training'\n[stim.training]\non_ms = 3000\n",
         "ramp_up_ms + training.on_ms + ramp_down_ms = 3160 ms exceeds "
         "safety.max_continuous_on_ms = 3000"),
        ("[stim]\nmode = 'test'\n[stim.test]\nchannel_name = 'calf'\n",
         "stim.test.channel_name: 'calf' is not an enabled channel"),
        ("[stim.prediction]\nmin_strides = 8\n", "no prediction would ever be made"),
        ("[stim.peroneal]\nlead_ms = 600\n", "stim.peroneal.lead_ms"),
    ],
)
def test_bad_stimulation_settings_are_named(tmp_path, capsys, toml, expected):
    code, err = check(tmp_path, capsys, toml)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_a_disabled_channel_is_not_checked_against_the_others(tmp_path, capsys):
    code, _ = check(tmp_path, capsys, "[stim.channels.calf]\nenabled = false\nchannel = 0\n")
    assert code == 0


def test_training_within_the_limits_is_accepted(tmp_path, capsys):
    toml = "[stim]\nmode = 'training'\n[stim.training]\non_ms = 2500\n"
    assert check(tmp_path, capsys, toml)[0] == 0
