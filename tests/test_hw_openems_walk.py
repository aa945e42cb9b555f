"""A recorded walk through ``fes run`` into openEMSstim's own firmware (both versions).

``fes run --sensors replay:CSV --stimulator openemsstim:PTY`` plays a Voisard et al. 2023
foot-IMU walk (subject 13, left foot: 10 m, a U-turn, 10 m back; 20 swings) in real
time through the detector, scheduler and watchdog into the firmware on its pty. (Walks
with radio dropouts of 30 ms and more, such as subject 7's, end in the watchdog's
sensor timeout, as a live sensor that lost them would.) The
firmware's timeline must show one train per commanded train (one per detected swing), each
starting and ending within 10 ms of the firmware's own floor after the command recorded in
``samples.csv``, at the calibrated intensity, with no byte lost, no garbled line, no
crash. Each version runs on its own (the walk takes 29 s): two trials and two firmware
processes at once on a 2-core machine kept ``fes run`` off the CPU past its heartbeat.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.shared_machine import SHARED_MACHINE_SAFETY, rerun_after_heartbeat_faults
from helpers.walks import FOOT, WALK, shortened_walk

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import VERSIONS, FirmwareProcess, connected_at_zero
from controller.bench.openems_walk import WalkRun, replay_walk, settings_file
from hw.openems.intensity import wiper

SWINGS = 20
SETTINGS = harness_settings()


def walk_through(program: Path, tmp_path: Path, walk: Path, config: Path) -> WalkRun:
    """``replay_walk`` into one firmware; a run that a stalled machine ended with a
    heartbeat fault is run again (``rerun_after_heartbeat_faults``)."""

    def attempt(k: int) -> tuple[int, str, WalkRun]:
        run = replay_walk(program, tmp_path / f"attempt{k}", walk, config, SETTINGS)
        return run.code, run.stderr, run

    return rerun_after_heartbeat_faults(attempt)[2]


@pytest.mark.skipif(not WALK.is_file(), reason="the shared Voisard et al. data is not here")
@pytest.mark.parametrize("version", VERSIONS)
def test_a_replayed_walk_is_delivered_swing_by_swing(openems_programs, openems_floors,
                                                      tmp_path, version):
    walk = shortened_walk(tmp_path / "walk.csv")
    config = tmp_path / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY)
    run = walk_through(openems_programs[version], tmp_path, walk, config)
    full = wiper(SETTINGS.calibration.intensity(35.0))
    assert run.code == 0, run.stderr
    link = run.summary["board"]["link"]
    assert run.summary["board"]["fault"] is None and link["garbled_echoes"] == 0
    assert link["echoes"] == link["lines_sent"]
    assert run.lost_bytes == 0 and run.garbled_lines == 0 and not run.crashed
    assert len(run.commanded) >= SWINGS
    assert len(run.delivered) == len(run.commanded)
    floors = openems_floors[version]
    # the first start after connecting also sets the on-time (a longer line)
    onset_bounds = [min(floors.onset_t_ms) + 10.0] + [min(floors.onset_ms) + 10.0] * (
        len(run.commanded) - 1)
    onsets, offsets = run.latencies_ms()
    for onset, offset, bound, commanded, train in zip(
            onsets, offsets, onset_bounds, run.commanded, run.delivered, strict=True):
        assert 0.0 < onset <= bound, onsets
        assert 0.0 < offset <= min(floors.off_ms) + 10.0, offsets
        assert wiper(commanded.intensity) == full and full in train.wipers  # one step
    assert run.connected_at_zero == []


@pytest.mark.skipif(not WALK.is_file(), reason="the shared Voisard et al. data is not here")
def test_a_trial_stalled_past_the_on_time_reports_what_was_not_delivered(openems_programs,
                                                                          tmp_path):
    """``fes run`` stopped (SIGSTOP) during a train for hold_ms + 300 ms: the board ends
    the train by itself; resumed, the trial ends with the stimulation the board did not
    deliver in its summary, and the pads were never connected at no output."""
    walk = shortened_walk(tmp_path / "walk.csv")
    config = tmp_path / "trial.toml"
    config.write_text(FOOT + SHARED_MACHINE_SAFETY)
    firmware = FirmwareProcess(openems_programs["aa7f198"], tmp_path)
    run = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", "--no-status", "--duration-s", "6",
         "--sensors", f"replay:{walk}", "--stimulator", f"openemsstim:{firmware.path}",
         "--stimulator-settings", str(settings_file(SETTINGS, tmp_path)),
         "--config", str(config),
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60.0
        while not any(c.stimulating for c in firmware.timeline()):
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.01)
        time.sleep(0.1)
        run.send_signal(signal.SIGSTOP)
        time.sleep(SETTINGS.hold_ms / 1000.0 + 0.3)
        run.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=60.0)
    finally:
        if run.poll() is None:
            run.kill()
        firmware.stop()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert run.returncode != 0, err
    assert "not delivered" in summary["board"]["fault"], summary["board"]
    assert connected_at_zero(firmware.timeline(), 0) == []
