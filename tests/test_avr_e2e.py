"""``fes run`` against the AVR firmware in simavr (``fes board-emulator --mcu avr``), as
separate processes over a pty, compared with ``fes sim`` on the same seed.

What may differ, and by how much (the chip's share of the comparison):
- the gyro reaches the host as MPU-6050 counts (1/16.4 deg/s; INFO's 1998 deg/s full
  scale), the heel force as 10-bit ADC counts (2 N): detection sees the same walk to
  within those steps, so strides, trains and missed onsets are equal and the event and
  onset times agree to within a sample period (2 ms) plus the 1 ms allowance the
  Python emulator's comparison has (3 ms);
- pulses leave the pins where the firmware's timer puts them (a train's first pulse
  when the command arrives, the next ones a period apart from it); the patient's muscle
  takes each pulse at the start of the sample period after the one it fired in, as the
  simulator takes a command at the start of the next period. A pulse can land one period
  (2 ms) off the simulator's, so the charge per stride agrees to 2 % and the minimum toe
  clearance to 1 mm.

Both run with the mounting checks off (``MOUNTING_CHECKS_OFF``): the live host also
checks the gyro axis the board declares (the firmware sends all three axes; the
simulator's limb has one), which on this walk releases gait-triggered stimulation 94 ms
after the sign check, and so the first train, a difference of the host's checks, not of
the chip. The checks have their own tests (test_detect_mounting.py, test_detect_axis.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.avr_support import avr_build_or_skip
from helpers.live import Process, _no_process_outlives_its_test, events, summary, true_events
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults

from controller.cli import main
from hw.avr import cosim

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test

DURATION_S = "15"
#: The shank detector without its mounting checks (sign and axis), for both trials.
MOUNTING_CHECKS_OFF = "[detector.gyro.shank]\nmount_check_strides = 0\n"


def config_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def walk_against_the_firmware(tmp_path: Path, out: Path) -> Path:
    """``fes run`` for 15 s (seed 3) against a fresh simavr board; returns its log. A
    run that a stalled machine ended with a heartbeat fault (the host's own watchdog, not
    the board), or with an acknowledgement fault while simavr itself was off the CPU (its
    log's ``paused`` events), is run again (``rerun_after_heartbeat_faults``); any other
    ending fails."""
    avr_build_or_skip("firmware", "harness")

    def attempt(k: int) -> tuple[int, str, tuple[Path, Path]]:
        folder = tmp_path / f"attempt{k}"
        folder.mkdir()
        shutil.rmtree(out, ignore_errors=True)  # one trial per folder
        log = folder / "board.jsonl"
        emu = Process("board-emulator", "--mcu", "avr", "--seed", "3", "--comm-timeout-ms",
                      "400", "--log", str(log))
        path = emu.first_stdout_line()
        assert path.startswith("/dev/"), emu.stderr()
        host = Path(host_config(tmp_path)).read_text() + MOUNTING_CHECKS_OFF
        run = Process("run", "--port", path, "--config", config_file(tmp_path / "run.toml", host),
                      "--duration-s", DURATION_S, "--out", str(out), "--link-timeout-ms", "300",
                      "--max-lag-ms", "400", "--no-status")
        code = run.wait(120.0)
        assert emu.stop() == 0, emu.stderr()
        return code, run.stderr(), (log, out)  # the trial's folder: when a fault latched

    code, err, (log, _) = rerun_after_heartbeat_faults(attempt, lambda run: events(run[0]))
    assert code == 0, err
    return log


def test_a_15_s_walk_against_the_firmware_matches_fes_sim(tmp_path):
    live_out, sim_out = tmp_path / "live", tmp_path / "sim"
    log = walk_against_the_firmware(tmp_path, live_out)
    sim_config = config_file(tmp_path / "sim.toml", MOUNTING_CHECKS_OFF)
    assert main(["sim", "--seed", "3", "--duration-s", DURATION_S, "--out", str(sim_out),
                 "--config", sim_config]) == 0
    live, sim = summary(live_out), summary(sim_out)

    assert live["stopped_by"] == "duration"
    assert live["duration_s"] == pytest.approx(15.0, abs=0.01)
    assert "gyro_axis" not in live and live["gyro_mounting"] is None
    info = live["board"]["info"]  # the firmware's identity, from its INFO
    assert (info["firmware"], info["protocol_version"], info["sample_rate_hz"]) == (
        ".".join(map(str, cosim.FIRMWARE_VERSION)), 4, 500)
    assert live["ground_truth"] == "board emulator debug frames"
    assert live["board"]["outputs_off_confirmed"] is True
    assert live["board"]["link"]["missing_samples"] == 0
    assert live["strides"] == sim["strides"] >= 8
    assert live["stim"]["trains"] == sim["stim"]["trains"]
    assert live["stim"]["missed_onsets"] == sim["stim"]["missed_onsets"]
    for figure in ("median", "p95"):
        assert live["stim"]["onset_error_ms"][figure] == pytest.approx(
            sim["stim"]["onset_error_ms"][figure], abs=3.0)
    assert live["detector"]["recall"] == sim["detector"]["recall"]
    for event in ("heel_strike_error_ms", "toe_off_error_ms"):
        assert live["detector"][event]["median"] == pytest.approx(
            sim["detector"][event]["median"], abs=3.0)
    assert live["stim"]["charge_uc_per_stride"] == pytest.approx(
        sim["stim"]["charge_uc_per_stride"], rel=0.02)
    assert live["clearance"]["swings"] == sim["clearance"]["swings"]
    assert live["clearance"]["toe_drag_events"] == sim["clearance"]["toe_drag_events"]
    assert live["clearance"]["toe_clearance_min_mm"]["median"] == pytest.approx(
        sim["clearance"]["toe_clearance_min_mm"]["median"], abs=1.0)
    for (t_live, e_live), (t_sim, e_sim) in zip(
        true_events(live_out), true_events(sim_out), strict=True
    ):
        assert e_live == e_sim and t_live == pytest.approx(t_sim, abs=2e-6)

    board = events(log)
    pulses = next(e for e in board if e["event"] == "pulses")
    assert pulses["violations"] == 0, pulses["first_violation"]
    assert pulses["channel_0"] > 0
    trains = [e for e in board if e["event"] == "train"]
    assert len(trains) == live["stim"]["trains"]
