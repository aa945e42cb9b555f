"""A heel switch sample lost on the board's side of the link, through both board
emulators, as the host sees it in ``fes run``.

The simulated patient's switch loses its samples for 80 ms in the stance of 2.222-2.764 s
(seed 3; ``lose_heel``: the limb's sample has a NaN heel switch there). The board must
report such a sample as lost (SAMPLE flag HEEL_LOST, docs/protocol.md), never as a
reading: the host reads it as NaN, the heel detector holds its phase, the watchdog
counts no valid sensor sample and ends the trial in its sensor timeout 30 ms into the
gap, no train starts, and samples.csv keeps the cells empty. Before, the Python
emulator sent a lost sample as contact (``if sample.heel_switch``: NaN is truthy), so
the trial walked on through the gap on a heel nobody had measured.

The gyroscope detector does not read the heel switch: the watchdog's valid sample is
one whose sensors the detector reads are valid (docs/safety.md), so the same gap leaves
a gyroscope trial walking (before 7 Dec 2026 it ended in the sensor timeout too).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

from helpers.avr_support import avr_build_or_skip
from helpers.live import events
from helpers.shared_machine import SHARED_MACHINE_LIMITS, rerun_after_heartbeat_faults

from controller.commands.common import EXIT_WATCHDOG_FAULT
from controller.config import load_config
from controller.ports import Sample
from controller.trial.live import LinkLimits, LiveResult, run_live_trial

HEEL_GAP_S = (2.58, 2.66)  # 80 ms of stance: beyond the 30 ms sensor timeout
#: Three samples (6 ms) of the same stance without a gyroscope reading: fewer than the
#: AVR firmware's SENSOR_FAIL_LIMIT (5) and the watchdog's 30 ms.
GYRO_GAP_S = (2.40, 2.406)
DURATION_S = 4.0


def lose(limb: Any, sensor: str, gap_s: tuple[float, float]) -> list[float]:
    """Make ``limb`` (a ``SimulatedLimb``) lose its ``sensor`` samples (a ``Sample``
    field) in ``gap_s`` (walk time): NaN there. Returns the values it lost, as they
    come."""
    lost: list[float] = []
    read = limb.read

    def losing() -> Sample | None:
        sample = read()
        if sample is not None and gap_s[0] - 1e-9 <= sample.t_s < gap_s[1] - 1e-9:
            lost.append(getattr(sample, sensor))
            sample = dataclasses.replace(sample, **{sensor: math.nan})
        return sample

    limb.read = losing
    return lost


def losing_patient(limb: Any) -> list[float]:
    """The patient of these tests: ``limb`` losing its gyroscope in ``GYRO_GAP_S`` and
    its heel switch in ``HEEL_GAP_S``; the heel switch values lost."""
    lose(limb, "gyro_rad_s", GYRO_GAP_S)
    return lose(limb, "heel_switch", HEEL_GAP_S)


def heel_config(sensor: str = "heel") -> Any:
    detector: dict[str, Any] = {"sensor": sensor}
    if sensor == "gyro":  # no mounting (and axis) check: it holds the gyroscope's
        # trains for its first strides, most of this short trial
        detector["gyro"] = {"shank": {"mount_check_strides": 0}}
    return load_config(overrides={"loop": {"duration_s": DURATION_S},
                                  "safety": SHARED_MACHINE_LIMITS, "detector": detector})


def check_lost_in_stance(result: LiveResult, folder: Path, lost: list[float]) -> None:
    """The trial a board reporting the gaps' samples as lost gives (module docstring):
    the gyroscope's gap read as such with the heel switch and force the board did read,
    the heel switch's gap as lost up to the watchdog's sensor timeout."""
    # In stance; the board samples on until it is stopped, after the fault.
    assert len(lost) >= 15 and set(lost) == {1.0}
    assert result.stopped_by == "watchdog_fault", result.message
    assert "sensor_timeout_ms: no valid sensor sample" in result.message
    fault = result.summary["watchdog"]["interventions"][0]
    assert HEEL_GAP_S[0] + 0.020 <= fault["t_s"] <= HEEL_GAP_S[0] + 0.040
    with (folder / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    no_gyro = [r for r in rows if GYRO_GAP_S[0] - 1e-9 <= float(r["time_s"]) < GYRO_GAP_S[1]]
    assert len(no_gyro) == 3 and all(r["gyro_rad_s"] == "" for r in no_gyro)
    assert all(r["heel_switch"] == "1" and float(r["heel_force_n"]) > 100.0 for r in no_gyro)
    in_gap = [r for r in rows if float(r["time_s"]) >= HEEL_GAP_S[0] - 1e-9]
    assert in_gap and all(r["heel_switch"] == "" and r["gyro_rad_s"] != "" for r in in_gap)
    assert all(r["stim_on"] == "0" for r in in_gap)
    before = [r for r in rows if float(r["time_s"]) < HEEL_GAP_S[0] - 1e-9]
    assert before[-1]["heel_switch"] == "1"
    assert result.summary["lost_samples"] == {"gyro_rad_s": 3, "heel_switch": len(in_gap)}
    assert result.summary["board"]["link"]["missing_samples"] == 0


def python_emulator_trial(tmp_path: Path, sensor: str
                          ) -> tuple[LiveResult, Path, list[float]]:
    """``fes run``'s trial with detector ``sensor`` against ``fes board-emulator``
    wearing the losing patient: the trial, its folder and the heel values lost."""
    from hw.emulator import EmulatorConfig, serve_in_thread
    from hw.firmware import FirmwareSettings

    def attempt(k: int) -> tuple[int, str, tuple[LiveResult, Path, list[float], list[dict]]]:
        log = io.StringIO()
        emu, finish = serve_in_thread(EmulatorConfig(
            seed=3, board=FirmwareSettings(comm_timeout_ms=400), speed=2.0), log)
        lost = losing_patient(emu.firmware._limb)
        folder = tmp_path / f"run{k}"
        try:
            result = run_live_trial(heel_config(sensor), emu.path, folder, None,
                                    LinkLimits(0.3, 0.4))
        finally:
            finish()
        board = [json.loads(line) for line in log.getvalue().splitlines()]
        code = EXIT_WATCHDOG_FAULT if result.stopped_by == "watchdog_fault" else 0
        return code, result.message, (result, folder, lost, board)

    _, _, (result, folder, lost, _) = rerun_after_heartbeat_faults(
        attempt, lambda run: run[3])
    return result, folder, lost


def test_the_python_board_emulator_reports_a_lost_heel_sample_as_lost(tmp_path):
    check_lost_in_stance(*python_emulator_trial(tmp_path, "heel"))


def test_a_lost_heel_sample_leaves_a_gyroscope_trial_walking(tmp_path):
    """The same board and patient with the gyroscope detector: the lost heel samples
    are read as lost (empty cells, counted) and the trial walks on to its end, trains
    after the gap included (before: sensor timeout 30 ms into the gap, as with the heel
    detector)."""
    result, folder, lost = python_emulator_trial(tmp_path, "gyro")
    assert len(lost) == 40 and set(lost) == {1.0}  # all of the gap, in stance
    assert result.stopped_by == "duration", result.message
    assert result.summary["watchdog"]["faults"] == 0
    assert result.summary["lost_samples"] == {"gyro_rad_s": 3, "heel_switch": 40}
    with (folder / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    in_gap = [r for r in rows if HEEL_GAP_S[0] - 1e-9 <= float(r["time_s"]) < HEEL_GAP_S[1]]
    assert len(in_gap) == 40 and all(r["heel_switch"] == "" for r in in_gap)
    starts = [float(rows[k]["time_s"]) for k in range(1, len(rows))
              if rows[k]["stim_on"] == "1" and rows[k - 1]["stim_on"] == "0"]
    assert any(t > HEEL_GAP_S[1] for t in starts), starts


def test_the_avr_firmware_reports_a_lost_heel_sample_as_lost(tmp_path):
    """The same patient wearing the AVR board in simavr: the lost heel samples reach its
    heel fault line (low: the sensor has no reading), and the firmware flags them
    HEEL_LOST. Before, the co-simulation raised on the NaN (``int(nan)``) and the
    firmware sent a sample without a gyroscope reading as heel off at 0 N."""
    from hw.avr import cosim

    build = avr_build_or_skip("firmware", "harness")

    def attempt(k: int) -> tuple[int, str, tuple[LiveResult, Path, list[float], Path]]:
        log = tmp_path / f"board{k}.jsonl"
        board, finish = cosim.serve_in_thread(cosim.AvrBoardConfig(
            seed=3, board=cosim.AvrBoardSettings(comm_timeout_ms=400)), log, build)
        lost = losing_patient(board._limb)
        folder = tmp_path / f"run{k}"
        try:
            result = run_live_trial(heel_config(), board.path, folder, None,
                                    LinkLimits(0.3, 0.4))
        finally:
            ending = finish()
        assert ending == "stopped", board.harness_stderr
        code = EXIT_WATCHDOG_FAULT if result.stopped_by == "watchdog_fault" else 0
        return code, result.message, (result, folder, lost, log)

    _, _, (result, folder, lost, _) = rerun_after_heartbeat_faults(
        attempt, lambda run: events(run[3]))
    check_lost_in_stance(result, folder, lost)
