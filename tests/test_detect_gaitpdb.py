"""The heel force detector on walkers in PhysioNet gaitpdb format (``evaluate --gaitpdb``
and ``fes detect``), on small synthetic walks written here: the study's files are read
from a folder the user names, never from the repository.

On the 165 gaitpdb walkers the heel releases 12-26 % of the stride before toe off
(quartiles), while toe off falls at 62-69 % of the stride (docs/detection.md); the
synthetic walkers below are built from those figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.detect import evaluate
from controller.detect.heel import HEEL_FORCE, HEEL_SWITCH
from tests.helpers.gaitpdb_walks import RATE_HZ, Gait, foot_forces, write_demographics, write_walk


def _truth_and_heel(folder: Path, gait: Gait) -> tuple[Path, Path]:
    """A ``fes detect`` input (time, left heel force) and its reference events from the
    total force, as ``evaluate --gaitpdb`` scores it."""
    t = np.arange(0.0, 60.0, 1.0 / RATE_HZ)
    heel, toe = foot_forces(t, gait, 1.0)
    contact = (heel + toe) > 20.0
    edges = np.flatnonzero(np.diff(contact.astype(np.int8))) + 1
    rows = [f"{t[i]:.2f},{'heel_strike' if contact[i] else 'toe_off'}" for i in edges]
    truth = folder / "events.csv"
    truth.write_text("time_s,event\n" + "\n".join(rows) + "\n")
    heel_csv = folder / "heel.csv"
    heel_csv.write_text("time_s,heel_force_n\n" + "\n".join(
        f"{a:.2f},{b:.2f}" for a, b in zip(t, heel, strict=True)) + "\n")
    return heel_csv, truth


@pytest.mark.parametrize("lead", [0.12, 0.20, 0.26])
def test_toe_off_is_dated_from_heel_strike_when_the_heel_releases_early(
    tmp_path, capsys, lead
):
    """A walker whose heel leaves the insole a quartile, the median or the third quartile
    of the gaitpdb walkers' lead before toe off: every toe off is found, within 25 ms
    (median), never before heel off. Dated from heel off (7 % of the stride, measured on
    one control) they came 53 ms early (median) at 0.12, and none was found at 0.20 or
    0.26."""
    heel_csv, truth = _truth_and_heel(tmp_path, Gait(stance=0.65, release_lead=lead))
    assert main(["detect", "--input", str(heel_csv), "--output", str(tmp_path / "out.csv"),
                 "--sensor", "heel", "--heel-column", "heel_force_n",
                 "--heel-threshold-n", "20", "--truth", str(truth)]) == 0
    toe_off = json.loads(capsys.readouterr().out)["events"]["toe_off"]
    assert toe_off["recall"] >= 0.95 and toe_off["precision"] >= 0.95, toe_off
    assert toe_off["median_abs_error_ms"] <= 25.0, toe_off
    events = [line.split(",") for line in (tmp_path / "out.csv").read_text().split()[1:]]
    heel_off = -np.inf
    for time_s, event in events:
        if event == "heel_off":
            heel_off = float(time_s)
        elif event == "toe_off":
            assert float(time_s) >= heel_off, (time_s, heel_off)


def _rows(out: str, configuration: str = "heel force sensor") -> dict[
    tuple[str, str], list[str]
]:
    """The table's cells of the ``configuration`` (its start), by (scored, event)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if (len(cells) == 13 and cells[0].startswith("PhysioNet gaitpdb")
                and cells[1].startswith(configuration)):
            rows[(cells[2], cells[3])] = cells
    return rows


def test_evaluate_scores_every_walker_per_group_and_stage(tmp_path, capsys):
    """A folder of walks of two studies: the calibration study's row, and rows of the
    other study's controls, PD walkers and each Hoehn & Yahr stage, with walker and foot
    counts and the per-walker bias spread (two PD walkers whose stance differs by 6 % of
    the stride: about 66 ms apart). Before, the folder gave one row of pooled feet whose
    bias spread was always 0."""
    write_walk(tmp_path / "GaCo01_01.txt", Gait())
    write_walk(tmp_path / "GaPt02_01.txt", Gait(release_lead=0.26))
    write_walk(tmp_path / "JuCo03_01.txt", Gait(release_lead=0.15))
    write_walk(tmp_path / "JuPt04_01.txt", Gait(stance=0.68))
    write_walk(tmp_path / "JuPt04_02.txt", Gait(stance=0.68))
    write_walk(tmp_path / "JuPt05_01.txt", Gait(stance=0.62))
    write_demographics(tmp_path, {"GaCo01": 0.0, "GaPt02": 2.0, "JuCo03": 0.0,
                                  "JuPt04": 2.5, "JuPt05": 3.0})
    assert evaluate.main(["--gaitpdb", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    scored = {s for s, _ in rows}
    assert scored == {"Ga study (calibration)", "other studies (unseen), controls",
                      "other studies (unseen), PD",
                      "other studies (unseen), PD, Hoehn & Yahr 2.5",
                      "other studies (unseen), PD, Hoehn & Yahr 3"}, scored
    pd = rows[("other studies (unseen), PD", "toe off")]
    assert "(2 walkers, 6 feet)" in pd[0]
    assert float(pd[4].rstrip(" %")) >= 95.0  # recall
    assert 50.0 <= float(pd[12]) <= 80.0  # walker bias spread, ms
    chosen = re.search(r"stance fraction chosen on the Ga study: ([0-9.]+) \(shipped "
                       r"([0-9.]+)\)", out)
    assert chosen is not None, out
    assert abs(float(chosen[1]) - 0.65) <= 0.01  # the Ga walkers' stance
    assert float(chosen[2]) == HEEL_FORCE.toe_off_stance_fraction


def test_a_heel_that_barely_loads_is_warned_of(tmp_path, capsys):
    """A walker who lands flat or on the forefoot puts 30 N on the heel sensor (10 of
    the 612 gaitpdb feet stay under 60 N, 3 x the contact force; the detector found a
    median 75 % of their heel strikes): ``fes detect`` says so and what to do, where
    before it said nothing."""
    heel_csv, truth = _truth_and_heel(tmp_path, Gait(heel_peak_n=30.0))
    assert main(["detect", "--input", str(heel_csv), "--output", str(tmp_path / "out.csv"),
                 "--sensor", "heel", "--heel-column", "heel_force_n",
                 "--heel-threshold-n", "20", "--truth", str(truth)]) == 0
    err = capsys.readouterr().err
    assert ("fes detect: warning: heel_force_n barely loads: 99 % of its samples read "
            "under 30 N, less than 3 times the contact force of 20 N") in err, err
    # the contact level follows the heel down to 12 N: the sensor's place is the cure
    assert "the contact level follows the heel's own peak down to 12 N" in err
    assert "Move the sensor under the heel (a lower contact_floor_n helps only" in err
    assert "Traceback" not in err


def _percent(cell: str) -> float:
    return float(cell.rstrip(" %"))


def test_evaluate_scores_a_heel_switch_made_from_the_heel_force(tmp_path, capsys):
    """No heel switch was recorded in gaitpdb: the heel force read at or above a closing
    force stands in for one. A switch closing at 20 N finds the heel strikes on the
    same rows as the force sensor, calibration study and unseen groups; one closing at
    400 N, above what these heels (300 N) ever take, finds none; the Ga study's choice
    of stance fraction for the switch is printed. Before, --switch-closing-n did not
    exist and no switch row was scored."""
    write_walk(tmp_path / "GaCo01_01.txt", Gait())
    write_walk(tmp_path / "JuCo03_01.txt", Gait(release_lead=0.15))
    write_walk(tmp_path / "JuPt04_01.txt", Gait(stance=0.68))
    assert evaluate.main(["--gaitpdb", str(tmp_path), "--switch-closing-n", "20",
                          "--switch-closing-n", "400"]) == 0
    out = capsys.readouterr().out
    closing_20 = _rows(out, "heel switch (L1/R1 at or above 20 N)")
    closing_400 = _rows(out, "heel switch (L1/R1 at or above 400 N)")
    groups = {"Ga study (calibration)", "other studies (unseen), controls",
              "other studies (unseen), PD"}
    assert {s for s, _ in closing_20} == groups, closing_20
    for group in groups:
        assert _percent(closing_20[(group, "heel strike")][5]) >= 95.0, closing_20
        assert _percent(closing_400[(group, "heel strike")][5]) == 0.0, closing_400
    shipped = re.escape(f"{HEEL_SWITCH.toe_off_stance_fraction:g}")
    assert re.search(r"heel switch \(L1/R1 at or above 20 N\): toe-off stance fraction "
                     rf"chosen on the Ga study: [0-9.]+ \(shipped {shipped}\)", out), out


@pytest.mark.parametrize(("argv", "message"), [
    (["--switch-closing-n", "0"], "--switch-closing-n must be above 0 and at most 2000 N"),
    (["--switch-closing-n", "5000"], "--switch-closing-n must be above 0 and at most 2000 N"),
])
def test_a_closing_force_out_of_range_is_refused(tmp_path, capsys, argv, message):
    """A closing force of 0 N (a switch always closed) or beyond the heel detector's own
    limit is a user mistake: exit 2, the option and its range named, no traceback."""
    write_walk(tmp_path / "GaCo01_01.txt", Gait(), duration_s=10.0)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--gaitpdb", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_closing_force_without_gaitpdb_is_refused(tmp_path, capsys):
    """The switch is made from gaitpdb's heel force only: without --gaitpdb the option
    would be silently ignored, so it is refused."""
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--voisard", str(tmp_path), "--switch-closing-n", "20"])
    assert exit_info.value.code == 2
    assert "--switch-closing-n applies to --gaitpdb only" in capsys.readouterr().err
