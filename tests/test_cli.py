"""The `fes` command: bad input is named with its allowed range and exits 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trial.toml"
    path.write_text(text)
    return path


def test_default_config_is_valid(capsys):
    from controller.resources import default_config_path

    assert main(["check-config", str(default_config_path())]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[loop]\nsample_rate_hz = 5\n", "loop.sample_rate_hz"),
        ("[stim.peroneal]\nramp_up_ms = -3\n", "stim.peroneal.ramp_up_ms"),
        ("[stim.peroneal]\nfrequency_hz = 'fast'\n", "stim.peroneal.frequency_hz"),
        ("[loop]\nsample_rate = 500\n", "loop.sample_rate: unknown field"),
        ("[stim.peroneal]\namplitude_ma = 80\n", "exceeds safety.max_amplitude_ma = 60"),
        ("[safety]\nmax_amplitude_ma = 500\n", "safety.max_amplitude_ma"),
        ("[sim]\npatient = 'nobody'\n", "available:"),
        ("[loop\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_field(tmp_path, capsys, toml, expected):
    assert main(["check-config", str(write(tmp_path, toml))]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_range_is_stated(tmp_path, capsys):
    assert main(["check-config", str(write(tmp_path, "[loop]\nsample_rate_hz = 5\n"))]) == 2
    assert ">= 100.0 and <= 2000.0" in capsys.readouterr().err


def test_every_bad_field_is_listed_at_once(tmp_path, capsys):
    text = "[loop]\nsample_rate_hz = 5\nduration_s = -1\n"
    assert main(["check-config", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert "loop.sample_rate_hz" in err and "loop.duration_s" in err


def test_bad_command_line_value_exits_2(capsys):
    assert main(["sim", "--duration-s", "-5"]) == 2
    assert "loop.duration_s" in capsys.readouterr().err


def test_console_script_prints_no_traceback_for_a_missing_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "check-config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_help_explains_every_sim_option(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    out = capsys.readouterr().out
    for option in ("--config", "--patient", "--duration-s", "--seed", "--out", "--no-stim",
                   "--realtime", "--cpu", "--rt-priority", "--spin-us"):
        assert option in out


def option_help(capsys, monkeypatch, *command: str) -> dict[str, str]:
    """Each option of ``fes COMMAND --help`` with its help text, one line each."""
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    texts: dict[str, str] = {}
    option = None
    for line in capsys.readouterr().out.splitlines():
        if line.strip().startswith("-"):
            invocation, _, text = line.strip().partition("  ")
            option = invocation.split()[0].rstrip(",")
            texts[option] = text.strip()
        elif option is not None and line.startswith("   "):
            texts[option] += " " + line.strip()
        else:
            option = None
    return texts


def test_sim_help_gives_every_value_option_its_default_and_range(capsys, monkeypatch):
    """``fes sim --help`` gave no default for --patient, --stim or --cpu, and no range for
    --duration-s, --seed, --cpu or --spin-us (a value outside one is refused, exit 2)."""
    texts = option_help(capsys, monkeypatch, "sim")
    for option in ("--patient", "--duration-s", "--seed", "--rate-hz", "--stim", "--cpu",
                   "--rt-priority", "--spin-us", "--out", "--format"):
        assert "default" in texts[option], option
    for option, limits in (("--duration-s", "86400"), ("--seed", "4294967295"),
                           ("--cpu", "1023"), ("--spin-us", "5000"), ("--rate-hz", "2000"),
                           ("--rt-priority", "99")):
        assert limits in texts[option], option


def test_default_toml_lists_every_field_at_its_model_default():
    from controller.config import TrialConfig
    from controller.resources import default_config_path, load_toml

    data = load_toml(default_config_path())

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in tree.items():
            out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    assert keys(data) == keys(TrialConfig().model_dump())
    assert TrialConfig.model_validate(data) == TrialConfig()


def test_a_command_line_builds_its_command_alone_with_the_same_options():
    """``fes detect ...`` builds only detect's parser: the same help and options as in
    the full parser, and every command of the full parser has its module listed."""
    import argparse

    from controller.cli import COMMANDS, build_parser

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))

    full = subparsers(build_parser())
    assert list(full) == list(COMMANDS)
    for name in COMMANDS:
        alone = subparsers(build_parser(name))
        assert list(alone) == [name]
        assert alone[name].format_help() == full[name].format_help()


@pytest.mark.parametrize("realtime", [False, True], ids=["virtual", "realtime"])
def test_the_files_line_names_every_file_the_trial_wrote(tmp_path, capsys, realtime):
    """``fes sim --realtime`` (and ``fes run``) write timing.csv, but the last line said
    'files: DIR/samples.csv, events.csv, summary.json, config.json'."""
    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "0.2", "--out", str(out),
                 *(["--realtime"] if realtime else [])]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("files: "))
    named = {name.strip().rsplit("/", 1)[-1] for name in line.removeprefix("files: ").split(",")}
    assert named == {p.name for p in out.iterdir()}


def test_no_stim_with_a_stim_preset_is_refused_as_conflicting(tmp_path, capsys):
    """``fes sim --stim odfs --no-stim`` ran without stimulation and said nothing of the
    preset it ignored: which of the two did the user mean?"""
    out = tmp_path / "t"
    assert main(["sim", "--stim", "odfs", "--no-stim", "--duration-s", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--no-stim" in err and "--stim odfs" in err and "Traceback" not in err
    assert not out.exists()


def test_a_simulated_foot_gyroscope_is_refused(tmp_path, capsys):
    """The simulated patient has a shank gyroscope only. fes sim with detector.placement =
    "foot" ran the foot's detector on the shank's signal and printed its figures as a
    foot's (recall 0.88, heel strike +36.9 ms, 30 s moderate walker), exit 0."""
    path = tmp_path / "foot.toml"
    path.write_text('[detector]\nplacement = "foot"\n')
    out = tmp_path / "t"
    assert main(["sim", "--config", str(path), "--duration-s", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "detector.placement: 'foot', but the simulated patient wears its gyroscope on " \
           "the shank" in err and "fes detect --placement foot" in err
    assert not out.exists()
    path.write_text('[detector]\nplacement = "foot"\nsensor = "heel"\n')  # no gyroscope
    assert main(["sim", "--config", str(path), "--duration-s", "2", "--out", str(out)]) == 0
    capsys.readouterr()
