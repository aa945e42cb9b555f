"""A heel switch sample lost on the board's side of the link, through both board
emulators, as the host sees it in ``fes run``.

The simulated patient wears an insole whose heel switch loses packets (``PATIENT``: 30
dropouts a minute, 100 ms long on average); with seed 37 the first is 2.431-2.602 s, in
the heel contact of 2.162-2.666 s (``heel_gap``). The board must report such a sample as lost
(SAMPLE flag HEEL_LOST, docs/protocol.md), never as a reading: the host reads it as
NaN, the heel detector holds its phase, the watchdog counts no valid sensor sample and
ends the trial in its sensor timeout 30 ms into the gap, no train starts, and
samples.csv keeps the cells empty. Before, the Python emulator sent a lost sample as
contact (``if sample.heel_switch``: NaN is truthy), so the trial walked on through the
gap on a heel nobody had measured.

The gyroscope detector does not read the heel switch: the watchdog's valid sample is
one whose sensors the detector reads are valid (docs/safety.md, "Valid sensor
samples"), so the same dropouts leave a gyroscope trial walking (before 7 Dec 2026 it
ended in the sensor timeout too).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
from helpers.board_trials import avr_board_trial, python_board_trial
from helpers.shared_machine import SHARED_MACHINE_LIMITS

from controller.config import load_config
from controller.ports import Sample
from controller.trial.live import LiveResult
from sim.limb import SimulatedLimb
from sim.patient import load_patient

PATIENT = """base = "moderate"
description = "Moderate foot drop; an insole whose heel switch loses packets."
heel_switch_dropouts_per_min = 30.0
heel_switch_dropout_ms = 100.0
"""
SEED = 37
#: Three samples (6 ms) of the same stance without a gyroscope reading: fewer than the
#: AVR firmware's SENSOR_FAIL_LIMIT (5) and the watchdog's 30 ms.
GYRO_GAP_S = (2.30, 2.306)
DURATION_S = 4.0
RATE_HZ = 500.0


def patient_file(tmp_path: Path) -> str:
    path = tmp_path / "insole.toml"
    path.write_text(PATIENT)
    return str(path)


def heel_gap(patient: str) -> tuple[float, float]:
    """The patient's first heel switch dropout (s): in stance (the same walk without
    dropouts reads contact all through it) and beyond the 30 ms sensor timeout."""
    start, end = SimulatedLimb(load_patient(patient), RATE_HZ, DURATION_S,
                               SEED).dropouts("heel_switch")[0]
    walk = SimulatedLimb(load_patient("moderate"), RATE_HZ, DURATION_S, SEED).run(
        np.zeros((round(DURATION_S * RATE_HZ), 4)))
    t_s = walk["time_s"]
    assert end - start > 0.060 and walk["heel_switch"][(t_s >= start) & (t_s < end)].min() == 1
    assert start > GYRO_GAP_S[1]
    return start, end


def lose_gyro(limb: Any) -> None:
    """Make ``limb`` (a ``SimulatedLimb``) lose its gyroscope samples in ``GYRO_GAP_S``
    (walk time): NaN there."""
    read = limb.read

    def losing() -> Sample | None:
        sample = read()
        if sample is not None and GYRO_GAP_S[0] - 1e-9 <= sample.t_s < GYRO_GAP_S[1] - 1e-9:
            sample = dataclasses.replace(sample, gyro_rad_s=math.nan)
        return sample

    limb.read = losing


def heel_config(sensor: str = "heel") -> Any:
    detector: dict[str, Any] = {"sensor": sensor}
    if sensor == "gyro":  # no mounting (and axis) check: it holds the gyroscope's
        # trains for its first strides, most of this short trial
        detector["gyro"] = {"shank": {"mount_check_strides": 0}}
    return load_config(overrides={"loop": {"duration_s": DURATION_S},
                                  "safety": SHARED_MACHINE_LIMITS, "detector": detector})


def check_lost_in_stance(result: LiveResult, folder: Path, gap_s: tuple[float, float]) -> None:
    """The trial a board reporting the gaps' samples as lost gives (module docstring):
    the gyroscope's gap read as such with the heel switch and force the board did read,
    the heel switch's gap ``gap_s`` as lost up to the watchdog's sensor timeout."""
    assert result.stopped_by == "watchdog_fault", result.message
    assert "sensor_timeout_ms: no valid sensor sample" in result.message
    fault = result.summary["watchdog"]["interventions"][0]
    assert gap_s[0] + 0.020 <= fault["t_s"] <= gap_s[0] + 0.040
    with (folder / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    no_gyro = [r for r in rows if GYRO_GAP_S[0] - 1e-9 <= float(r["time_s"]) < GYRO_GAP_S[1]]
    assert len(no_gyro) == 3 and all(r["gyro_rad_s"] == "" for r in no_gyro)
    assert all(r["heel_switch"] == "1" and float(r["heel_force_n"]) > 100.0 for r in no_gyro)
    in_gap = [r for r in rows if float(r["time_s"]) >= gap_s[0]]
    assert in_gap and all(r["heel_switch"] == "" and r["gyro_rad_s"] != "" for r in in_gap)
    assert all(r["stim_on"] == "0" for r in in_gap)
    before = [r for r in rows if float(r["time_s"]) < gap_s[0]]
    assert before[-1]["heel_switch"] == "1"
    assert result.summary["lost_samples"] == {"gyro_rad_s": 3, "heel_switch": len(in_gap)}
    assert result.summary["board"]["link"]["missing_samples"] == 0


def test_the_python_board_emulator_reports_a_lost_heel_sample_as_lost(tmp_path):
    patient = patient_file(tmp_path)
    result, folder = python_board_trial(tmp_path, heel_config(), patient, SEED, lose_gyro)
    check_lost_in_stance(result, folder, heel_gap(patient))


def test_the_avr_firmware_reports_a_lost_heel_sample_as_lost(tmp_path):
    """The same patient wearing the AVR board in simavr: the lost heel samples reach its
    heel fault line (low: the sensor has no reading), and the firmware flags them
    HEEL_LOST. Before, the co-simulation raised on the NaN (``int(nan)``) and the
    firmware sent a sample without a gyroscope reading as heel off at 0 N."""
    patient = patient_file(tmp_path)
    result, folder = avr_board_trial(tmp_path, heel_config(), patient, SEED, lose_gyro)
    check_lost_in_stance(result, folder, heel_gap(patient))


def test_lost_heel_samples_leave_a_gyroscope_trial_walking(tmp_path):
    """The same board and patient with the gyroscope detector: the lost heel samples are
    read as lost (empty cells, counted) and the trial walks on to its end, with trains
    after the first dropout (before: the sensor timeout 30 ms into it, as with the heel
    detector)."""
    patient = patient_file(tmp_path)
    gap_s = heel_gap(patient)
    result, folder = python_board_trial(tmp_path, heel_config("gyro"), patient, SEED,
                                        lose_gyro)
    assert result.stopped_by == "duration", result.message
    assert result.summary["watchdog"]["faults"] == 0
    with (folder / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    in_gap = [r for r in rows if gap_s[0] - 1e-9 <= float(r["time_s"]) < gap_s[1] - 1e-9]
    assert len(in_gap) >= 30 and all(r["heel_switch"] == "" for r in in_gap)
    lost = sum(r["heel_switch"] == "" for r in rows)
    assert result.summary["lost_samples"] == {"gyro_rad_s": 3, "heel_switch": lost}
    starts = [float(rows[k]["time_s"]) for k in range(1, len(rows))
              if rows[k]["stim_on"] == "1" and rows[k - 1]["stim_on"] == "0"]
    assert any(t > gap_s[1] for t in starts), starts
