"""The validation table: every row agrees with its published range as its reference
expects, on fixed seeds, and the command writes what it prints."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from sim.gait import NEXT_HEEL_STRIKE, TOE_OFF
from sim.limb import SimulatedLimb
from sim.openloop import Stimulation, stride_commands
from sim.patient import load_patient
from sim.references import REFERENCES
from sim.validate import COLUMNS, OTHER_MEASURES, WALK_MEASURES, main, validate

#: Short walks on two seeds keep the test quick; the docs' table uses 5 seeds of 60 s.
SEEDS = (0, 1)
DURATION_S = 30.0


@pytest.fixture(scope="module")
def rows():
    return validate(SEEDS, DURATION_S)


def test_every_row_agrees_as_its_reference_expects(rows):
    wrong = [
        f"{r.reference.quantity} ({r.reference.condition}): simulated {r.median:.3g}, range "
        f"{r.reference.low:g} to {r.reference.high:g}, expected "
        f"{'in' if r.reference.expected_in_range else 'out of'} range"
        for r in rows if r.in_range != r.reference.expected_in_range
    ]
    assert not wrong, "\n".join(wrong)


def test_the_table_covers_what_the_issue_lists():
    assert len(REFERENCES) >= 12
    measures = {r.measure for r in REFERENCES}
    for needed in ("stride_time_s", "stance_fraction", "ankle_at_toe_off_deg",
                   "stance_peak_dorsiflexion_deg", "minimum_toe_clearance_mm",
                   "shank_stance_median_rad_s", "shank_toe_off_minimum_rad_s",
                   "shank_swing_peak_rad_s", "foot_flat_median_rad_s",
                   "ankle_at_heel_strike_deg", "swing_peak_dorsiflexion_deg",
                   "half_force_frequency_hz", "twitch_peak_ms", "endurance_20_percent_mvc_s",
                   "clonus_frequency_hz", "heat_rise_for_weakening_c", "motor_threshold_ma"):
        assert needed in measures, needed
    assert any(r.change for r in REFERENCES)  # the change stimulation makes


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: r.measure)
def test_every_reference_is_sourced_and_measurable(reference):
    assert reference.measure in WALK_MEASURES or reference.measure in OTHER_MEASURES
    assert re.search(r"[A-Z][a-z]+.*(19|20)\d\d", reference.source)  # author and year
    assert reference.low <= reference.high
    if not reference.expected_in_range:
        assert len(reference.limit) > 100  # why, and what it means for a user


def test_the_command_writes_the_table_it_prints(tmp_path, capsys):
    path = tmp_path / "table.csv"
    assert main(["--seeds", "1", "--duration-s", "20", "--csv", str(path)]) == 0
    printed = capsys.readouterr().out
    with path.open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS
    assert len(table) == len(REFERENCES)
    assert all(row["in_range"] in ("yes", "no") for row in table)
    assert f"{sum(row['in_range'] == 'yes' for row in table)} of {len(table)} rows" in printed


def test_the_command_refuses_a_useless_run(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_open_loop_stimulation_ramps_down_after_the_extension():
    rate = 1000.0
    limb = SimulatedLimb(load_patient("healthy"), rate, 5.0, 0)
    stimulation = Stimulation(amplitude_ma=30.0, lead_s=0.05, ramp_up_s=0.06,
                              extension_s=0.1, ramp_down_s=0.1)
    commands = stride_commands(limb.schedule, rate, 5000, stimulation)
    row = next(r for r in limb.schedule.strides if r[TOE_OFF] > 0.1)
    k = round((row[NEXT_HEEL_STRIKE] + 0.1) * rate)
    amplitude = commands[:, 1]
    assert amplitude[k - 5] == pytest.approx(30.0)  # held through the extension
    assert amplitude[k + 50] == pytest.approx(15.0, abs=0.5)  # halfway down
    assert amplitude[k + 101] == 0.0 and commands[k + 101, 0] == 0.0
    onset = round((row[TOE_OFF] - 0.05) * rate)
    assert amplitude[onset + 30] == pytest.approx(15.0, abs=0.5)  # halfway up
    assert np.all(np.diff(amplitude[onset:onset + 60]) >= 0.0)
