"""A heel force sensor that barely loads, in a trial: the summary says so, with the
figure and what to do, as ``fes detect`` does for a recording (docs/detection.md)."""

from __future__ import annotations

import json

import pytest

from controller.cli import main

FORCE = '[detector]\nsensor = "heel"\nheel_input = "force"\n'
#: A 30 kg walker putting a tenth of the body weight on the heel: 29 N at its peak,
#: as a sensor beside the heel or a forefoot landing reads (the contact force is 20 N).
WEAK = ('base = "moderate"\ndescription = "A heel force sensor that barely loads."\n'
        "body_mass_kg = 30.0\nheel_load_fraction_bw = 0.1\n")


@pytest.mark.parametrize("weak", [True, False])
def test_the_summary_says_when_the_heel_force_barely_loads(tmp_path, capsys, weak):
    (tmp_path / "force.toml").write_text(FORCE)
    (tmp_path / "weak.toml").write_text(WEAK)
    patient = str(tmp_path / "weak.toml") if weak else "moderate"
    out = tmp_path / "run"
    assert main(["sim", "--patient", patient, "--config", str(tmp_path / "force.toml"),
                 "--duration-s", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    heel = json.loads((out / "summary.json").read_text())["heel_load"]
    if weak:
        assert heel["verdict"] == "weak" and heel["p99_n"] == 30.0
        assert ("heel: the heel force barely loads: 99 % of its samples read under 30 N, "
                "less than 3 times the contact force of 20 N") in printed
        # the shipped contact level follows the heel down to 12 N: what stays true
        assert ("the contact level follows the heel's own peak down to 12 N "
                "(detector.heel.force.contact_floor_n)") in printed
        assert "Move the sensor under the heel (a lower contact_floor_n helps only" in printed
    else:
        assert heel["verdict"] == "loads" and heel["message"] is None
        assert "heel:" not in printed
