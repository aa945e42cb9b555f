"""The simulated patient's heel switch dropouts (``heel_switch_dropouts_per_min``,
``heel_switch_dropout_ms``: a wireless insole's lost packets, a loose connector) on
every path a trial takes: ``fes sim``, and ``fes run`` against both board emulators (the
Python firmware model and the AVR firmware in simavr, which flag them SAMPLE
HEEL_LOST), record the samples of the patient's dropouts (``SimulatedLimb.dropouts``),
and those only, as lost: empty heel_switch cells, counted in summary.json
``lost_samples``. A lost sample starts no train: ``fes sim``'s trains start when they
start on the same walk without the dropouts, or later where the sample that walk
decided one on (the one before its start) was lost here (the detector holds its phase
and decides on the next reading). A lost sample read as "no contact" (the heel
detector's heel off once it has lasted its 20 ms debounce) started one of seed 11's
trains 132 ms early.

The patient loses its heel switch 60 times a minute, for 10 ms on average (a sample
is 2 ms); no dropout of these walks (seeds 11 and 13) reaches the watchdog's sensor
timeout at its maximum, 30 ms (the default 20 ms would end those of the heel and fused
detectors: a sample without a heel switch reading is no valid sensor sample when the
detector reads the switch; the emulator trials' gyroscope detector does not).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.board_trials import avr_board_trial, python_board_trial
from helpers.shared_machine import SHARED_MACHINE_LIMITS

from controller.cli import main
from controller.config import load_config
from controller.trial.live import LiveResult
from sim.limb import SimulatedLimb
from sim.patient import load_patient

PATIENT = """base = "moderate"
description = "Moderate foot drop; a wireless insole whose heel switch loses packets."
heel_switch_dropouts_per_min = 60.0
heel_switch_dropout_ms = 10.0
"""
RATE_HZ = 500.0


def patient_file(tmp_path: Path) -> Path:
    path = tmp_path / "insole.toml"
    path.write_text(PATIENT)
    return path


def samples(folder: Path) -> list[dict[str, str]]:
    with (folder / "samples.csv").open() as handle:
        return list(csv.DictReader(handle))


def in_dropouts(patient: Path, seed: int, t_s: np.ndarray) -> np.ndarray:
    """Which of the samples at ``t_s`` fall in the patient's heel switch dropouts (a
    shorter walk's dropouts are the first of a longer one's, so any length will do)."""
    limb = SimulatedLimb(load_patient(str(patient)), RATE_HZ, 60.0, seed)
    inside = np.zeros(t_s.size, dtype=bool)
    for start, end in limb.dropouts("heel_switch"):
        inside |= (t_s >= start) & (t_s < end)
    return inside


def check_lost_as_the_patient_lost_them(folder: Path, summary: dict, patient: Path,
                                        seed: int) -> np.ndarray:
    """The trial in ``folder`` lost exactly the heel switch samples of the patient's
    dropouts, and says so; returns which rows were lost."""
    rows = samples(folder)
    t_s = np.array([float(r["time_s"]) for r in rows])
    lost = np.array([r["heel_switch"] == "" for r in rows])
    assert np.array_equal(lost, in_dropouts(patient, seed, t_s))
    assert lost.sum() >= 5
    assert all(r["gyro_rad_s"] != "" for r in rows)
    assert summary["lost_samples"] == {"gyro_rad_s": 0, "heel_switch": int(lost.sum())}
    return lost


def train_starts(rows: list[dict[str, str]]) -> np.ndarray:
    """Rows at which the peroneal train starts."""
    on = np.array([r["stim_on"] == "1" for r in rows])
    return np.flatnonzero(on[1:] & ~on[:-1]) + 1


@pytest.mark.parametrize(("sensor", "seed"), [("heel", 11), ("heel", 13), ("fused", 11)])
def test_fes_sim_loses_the_patients_heel_samples_and_starts_no_train_on_them(
        tmp_path, capsys, sensor, seed):
    patient = patient_file(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[detector]\nsensor = "{sensor}"\n[safety]\nsensor_timeout_ms = 30.0\n')
    folders = {}
    for name, who in (("lost", str(patient)), ("kept", "moderate")):
        folders[name] = tmp_path / name
        assert main(["sim", "--patient", who, "--config", str(config), "--seed", str(seed),
                     "--duration-s", "30", "--out", str(folders[name])]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((folders["lost"] / "summary.json").read_text())
    assert summary["stopped_by"] == "duration"
    assert summary["watchdog"]["interventions"] == []
    lost = check_lost_as_the_patient_lost_them(folders["lost"], summary, patient, seed)
    assert (f"lost samples (no reading, empty in samples.csv): gyroscope 0, heel switch "
            f"{lost.sum()}") in printed
    starts, kept = (train_starts(samples(folders[name])) for name in ("lost", "kept"))
    assert starts.size == kept.size >= 20
    moved = starts != kept
    assert np.all(starts[moved] > kept[moved]) and np.all(lost[kept[moved] - 1]), (
        starts[moved], kept[moved])


def emulator_config(duration_s: float):
    return load_config(overrides={"loop": {"duration_s": duration_s},
                                  "safety": SHARED_MACHINE_LIMITS})


def check_live_trial(result: LiveResult, folder: Path, patient: Path, seed: int) -> None:
    assert result.stopped_by == "duration", result.message
    check_lost_as_the_patient_lost_them(folder, result.summary, patient, seed)
    assert result.summary["board"]["link"]["missing_samples"] == 0


def test_the_python_board_emulator_sends_the_patients_heel_dropouts_as_lost(tmp_path):
    patient, seed = patient_file(tmp_path), 11
    result, folder = python_board_trial(tmp_path, emulator_config(8.0), str(patient), seed)
    check_live_trial(result, folder, patient, seed)


def test_the_avr_firmware_sends_the_patients_heel_dropouts_as_lost(tmp_path):
    patient, seed = patient_file(tmp_path), 11
    result, folder = avr_board_trial(tmp_path, emulator_config(8.0), str(patient), seed)
    check_live_trial(result, folder, patient, seed)


def test_fes_sim_with_the_gyroscope_detector_is_not_touched_by_heel_dropouts(tmp_path, capsys):
    """The default detector does not read the heel switch: its trial with the patient's
    dropouts, at the default 20 ms sensor timeout, runs the trains of the walk without
    them, on the same samples, and no fault (before: the sensor timeout at 1.938 s, no
    train; docs/safety.md, "Valid sensor samples")."""
    patient, seed = patient_file(tmp_path), 0
    folders = {}
    for name, who in (("lost", str(patient)), ("kept", "moderate")):
        folders[name] = tmp_path / name
        assert main(["sim", "--patient", who, "--seed", str(seed), "--duration-s", "30",
                     "--out", str(folders[name])]) == 0
    capsys.readouterr()
    summary = json.loads((folders["lost"] / "summary.json").read_text())
    assert summary["stopped_by"] == "duration"
    assert summary["watchdog"]["interventions"] == []
    check_lost_as_the_patient_lost_them(folders["lost"], summary, patient, seed)
    starts, kept = (train_starts(samples(folders[name])) for name in ("lost", "kept"))
    assert kept.size >= 20 and np.array_equal(starts, kept)
