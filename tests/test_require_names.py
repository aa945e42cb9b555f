"""``--require`` (and ``--objective``) names checked before any trial runs, against a
blank summary of the trial's config built by the code that builds every summary
(``controller.trial.simulated.blank_summary``): a typo in a CI job costs no trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_config
from controller.trial.figures import flatten
from controller.trial.simulated import blank_summary

CALF = "[stim.channels.calf]\nchannel = 1\n"


@pytest.mark.parametrize(("toml", "options"), [
    ("", []),
    ("", ["--no-stim"]),
    (CALF, []),
    ('[detector]\nsensor = "heel"\n', []),
    ('[detector]\nsensor = "fused"\nheel_input = "force"\n', []),
    ('[stim]\nmode = "training"\n', []),
    ("", ["--realtime", "--duration-s", "1"]),
])
def test_a_blank_summary_has_the_names_of_a_trials(tmp_path, toml, options):
    """The names a real trial's summary.json has are those of the blank summary of its
    config: channels, detector, stimulation mode and clock change them alike."""
    config_file = tmp_path / "c.toml"
    config_file.write_text(toml)
    out = tmp_path / "t"
    args = ["sim", "--duration-s", "3", "--config", str(config_file), *options]
    assert main([*args, "--out", str(out)]) == 0
    overrides = {"stim": {"enabled": False}} if "--no-stim" in options else {}
    config = load_config(config_file, overrides)
    real = flatten(json.loads((out / "summary.json").read_text()))
    assert set(real) == set(flatten(blank_summary(config, "--realtime" in options)))


def test_sim_refuses_an_unknown_name_before_the_trial(tmp_path, capsys):
    """It ran the whole trial (its files written) and then exited 2."""
    out = tmp_path / "t"
    code = main(["sim", "--duration-s", "30", "--out", str(out),
                 "--require", "clearance.toe_drags<=2", "--require", "watchdog.faults==0",
                 "--require", "detector.recal>=0.9"])
    err = capsys.readouterr().err
    assert code == 2
    assert "clearance.toe_drags: no such figure in summary.json; did you mean " \
        "clearance.toe_drag_events" in err
    assert "detector.recal: no such figure in summary.json; did you mean detector.recall" in err
    assert "watchdog.faults" not in err
    assert not out.exists() and "trial:" not in capsys.readouterr().out


def test_a_channel_the_config_has_is_a_name_one_it_lacks_is_not(tmp_path, capsys):
    config_file = tmp_path / "c.toml"
    config_file.write_text(CALF)
    out = tmp_path / "t"
    check = ["--require", "stim.channels.calf.trains>=0"]
    assert main(["sim", "--duration-s", "4", "--out", str(out), *check]) == 2
    assert "stim.channels.calf.trains: no such figure" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sim", "--duration-s", "4", "--out", str(out), "--config", str(config_file),
                 *check]) == 0


def test_a_name_in_a_null_block_is_null_not_unknown(tmp_path, capsys):
    """A trial too short for a true event has no detector figures (``"detector":
    null``): ``detector.recall`` is a name such a config has, null in this trial, so
    the check fails as a null figure does (exit 3); it was "no such figure" (exit 2)."""
    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "0.1", "--out", str(out),
                 "--require", "detector.recall>=0.9", "--require", "watchdog.faults==0"]) == 3
    assert json.loads((out / "summary.json").read_text())["detector"] is None
    err = capsys.readouterr().err
    assert "detector.recall>=0.9 failed: detector.recall is null (not measured)" in err


def test_sweep_refuses_unknown_names_before_any_trial(tmp_path, capsys):
    """It ran the first trial (all of them with --workers 2 or more: each worker's first)
    before it found the name unknown."""
    out = tmp_path / "s"
    code = main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "20",
                 "--workers", "1", "--out", str(out), "--require", "clearance.toe_drags<=2"])
    assert code == 2
    assert "clearance.toe_drags: no such figure in summary.json; did you mean " \
        "clearance.toe_drag_events" in capsys.readouterr().err
    assert not out.exists()


def test_sweep_names_the_trial_whose_config_lacks_a_name(tmp_path, capsys):
    """A name only some trials can have (a channel swept on and off) is named with the
    first trial that cannot have it; before, the sweep ran every trial and then stopped
    writing its tables (exit 2)."""
    config_file = tmp_path / "c.toml"
    config_file.write_text(CALF)
    out = tmp_path / "s"
    code = main(["sweep", "--config", str(config_file), "--grid",
                 "stim.channels.calf.enabled=true,false", "--duration-s", "2",
                 "--workers", "1", "--out", str(out), "--require",
                 "stim.channels.calf.trains>=1", "--require", "stim.channels.peroneal.trainz>=1",
                 "--require", "stim.channels.calf.trainz>=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "trial 1: stim.channels.calf.trains: no such figure" in err
    assert "trial 0: stim.channels.calf.trains" not in err
    for every_trials in ("stim.channels.peroneal.trainz", "stim.channels.calf.trainz"):
        # said once, without a trial, whatever close names each trial's config has
        assert err.count(f"{every_trials}: no such figure") == 1
        assert f"\n  - {every_trials}: no such figure" in err
    assert not out.exists()


def test_swept_parameters_are_names_too(tmp_path):
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "1",
                 "--workers", "1", "--out", str(out), "--dry-run",
                 "--require", "stim.peroneal.amplitude_ma<=30"]) == 0
    assert not Path(out / "results.csv").exists()
