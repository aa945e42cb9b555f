"""``fes board-emulator`` and ``fes run`` against each other, as separate processes
talking over a real pty: a walk comparable with ``fes sim``, an unplug, a Ctrl-C, the
status line on a terminal.

Timing on a shared CI machine: these tests give the emulated board a communication
timeout of a few hundred ms instead of its default 100 ms, because another job can pause
either process for tens of ms and the board would rightly switch off; the rules checked
(outputs off within the board's timeout, the host's report within 100 ms of an unplug)
do not depend on the value.
"""

from __future__ import annotations

import csv
import fcntl
import math
import os
import pty
import re
import shutil
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest
from helpers.live import (
    FES,
    Process,
    _no_process_outlives_its_test,
    emulator,
    events,
    summary,
    true_events,
)
from helpers.shared_machine import (
    emulator_silence_explains,
    host_config,
    rerun_after_heartbeat_faults,
)

from controller.cli import main
from hw.board import WIRE_TRUTH_COLUMNS
from sim.limb import TRUTH_COLUMNS

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test


def walk_across_the_link(tmp_path: Path, out: Path, *options: str) -> Path:
    """``fes run`` for 10 s (seed 3) against a fresh emulator played 3 times faster than
    real time (2 until 7 Dec 2026: what is compared with ``fes sim`` is board time);
    returns the board's log.

    A run that a stalled machine ended with a heartbeat fault, or with an acknowledgement
    fault while the emulator itself was off the CPU, is run again
    (``rerun_after_heartbeat_faults`` with the board's log); any other ending but success
    fails."""

    def attempt(k: int) -> tuple[int, str, tuple[Path, Path]]:
        folder = tmp_path / f"attempt{k}"
        folder.mkdir()
        shutil.rmtree(out, ignore_errors=True)  # one trial per folder
        emu, path, log = emulator(folder, "--seed", "3", "--speed", "3",
                                  "--comm-timeout-ms", "400")
        run = Process("run", "--port", path, "--config", host_config(tmp_path),
                      "--duration-s", "10", "--out", str(out), "--link-timeout-ms", "300",
                      "--max-lag-ms", "400", "--no-status", *options)
        code = run.wait()
        emu.stop()
        return code, run.stderr(), (log, out)  # the trial's folder: when a fault latched

    code, err, (log, _) = rerun_after_heartbeat_faults(
        attempt, lambda run: events(run[0]),
        lambda run: emulator_silence_explains(out, events(run[0]), 0.3))
    assert code == 0, err
    return log


def test_a_walk_across_the_serial_link_matches_fes_sim(tmp_path):
    live_out, sim_out = tmp_path / "live", tmp_path / "sim"
    log = walk_across_the_link(tmp_path, live_out)
    assert main(["sim", "--seed", "3", "--duration-s", "10", "--out", str(sim_out)]) == 0
    live, sim = summary(live_out), summary(sim_out)

    assert live["stopped_by"] == "duration"
    assert live["ground_truth"] == "board emulator debug frames"
    # Board-paced deadlines count from each sample's arrival: the host's own work is
    # measured, lateness and missed periods are not (zeros would be by construction).
    timing = live["timing"]
    assert timing["clock"] == "board"
    assert timing["latency_us"]["median"] >= 0.0 and timing["overruns"] >= 0
    assert set(timing["lateness_us"].values()) == {None}
    assert timing["first_sample"]["lateness_us"] is None
    assert timing["misses"] is None and timing["missed_percent"] is None
    assert timing["not_measured"].startswith("the board's stream paces the loop")
    assert live["strides"] == sim["strides"] >= 7
    assert live["stim"]["trains"] == sim["stim"]["trains"]
    assert live["stim"]["missed_onsets"] == sim["stim"]["missed_onsets"]
    onset_live, onset_sim = live["stim"]["onset_error_ms"], sim["stim"]["onset_error_ms"]
    assert abs(onset_live["median"] - onset_sim["median"]) <= 3.0
    assert abs(onset_live["p95"] - onset_sim["p95"]) <= 3.0
    assert live["detector"]["recall"] == sim["detector"]["recall"]
    for event in ("heel_strike_error_ms", "toe_off_error_ms"):
        assert abs(live["detector"][event]["median"] - sim["detector"][event]["median"]) <= 3.0
    # The stimulation reached the patient across the link: the same clearance.
    assert live["clearance"]["swings"] == sim["clearance"]["swings"]
    assert live["clearance"]["toe_drag_events"] == sim["clearance"]["toe_drag_events"]
    mtc_live = live["clearance"]["toe_clearance_min_mm"]["median"]
    assert mtc_live == pytest.approx(sim["clearance"]["toe_clearance_min_mm"]["median"], abs=1.0)
    # Same files, same true events (to the microsecond of the wire).
    for name in ("samples.csv", "events.csv", "config.json"):
        assert (live_out / name).exists()
    sim_columns = (sim_out / "samples.csv").open().readline().strip().split(",")
    live_columns = (live_out / "samples.csv").open().readline().strip().split(",")
    wire_only = [c for c in sim_columns if c not in TRUTH_COLUMNS or c in WIRE_TRUTH_COLUMNS]
    assert live_columns == wire_only
    for (t_live, e_live), (t_sim, e_sim) in zip(
        true_events(live_out), true_events(sim_out), strict=True
    ):
        assert e_live == e_sim and t_live == pytest.approx(t_sim, abs=2e-6)
    assert live["board"]["outputs_off_confirmed"] is True
    assert any(e["event"] == "stop_all" for e in events(log))


def stimulation_midpoint(tmp_path: Path, seed: int, after_s: float) -> float:
    """The middle of the first stimulation train after ``after_s`` in ``fes sim``."""
    out = tmp_path / "reference"
    assert main(["sim", "--seed", str(seed), "--duration-s", "6", "--out", str(out)]) == 0
    with (out / "samples.csv").open() as handle:
        rows = [(float(r["time_s"]), r["stim_on"] == "1") for r in csv.DictReader(handle)]
    start = next(t for (t, on), (_, was) in zip(rows[1:], rows, strict=False)
                 if on and not was and t > after_s)
    end = next(t for t, on in rows if t > start and not on)
    return (start + end) / 2


def test_unplugged_mid_trial_host_reports_and_board_switches_off(tmp_path):
    comm_timeout_s = 0.2
    unplug_s = stimulation_midpoint(tmp_path, seed=4, after_s=1.0)

    def attempt(k: int) -> tuple[int, str, tuple[Process, Path, Path]]:
        folder = tmp_path / f"attempt{k}"
        folder.mkdir()
        emu, path, log = emulator(folder, "--seed", "4", "--unplug-at-s", f"{unplug_s:.3f}",
                                  "--comm-timeout-ms", str(round(comm_timeout_s * 1000)))
        out = folder / "live"
        run = Process("run", "--port", path, "--config", host_config(tmp_path),
                      "--duration-s", "20", "--out", str(out), "--no-status")
        code = run.wait()
        assert emu.wait(10.0) == 0  # the emulator ends once its outputs are off
        return code, run.stderr(), (run, log, out)

    def unplugged_s(log: Path) -> float:
        return next((e["monotonic_s"] for e in events(log) if e["event"] == "unplug"),
                    math.inf)

    # A run the machine ended before the unplug (the watchdog's wall-clock rules, or the
    # link timeout with the emulator's gaps filling its silence) again.
    code, err, (run, log, out) = rerun_after_heartbeat_faults(
        attempt, lambda result: events(result[1]),
        lambda result: emulator_silence_explains(result[2], events(result[1]), 0.1,
                                                 before_s=unplugged_s(result[1])))
    assert code == 5, err  # link lost

    board = events(log)
    unplug = next(e for e in board if e["event"] == "unplug")
    assert unplug["on"] == [0]  # it was stimulating when the cable went
    off = next(e for e in board if e["event"] == "outputs" and e["monotonic_s"] > unplug[
        "monotonic_s"])
    assert off["on"] == [] and off["reason"] == "comm_timeout"
    assert off["board_t_s"] - unplug["board_t_s"] <= comm_timeout_s + 0.002
    reported = next(t for t, line in run.lines if "link fault" in line)
    assert reported - unplug["monotonic_s"] < 0.1

    result = summary(out)
    assert result["stopped_by"] == "link_lost"
    assert result["board"]["outputs_off_confirmed"] is False
    assert result["duration_s"] == pytest.approx(unplug_s, abs=0.05)
    assert "STOP_ALL sent but not acknowledged" in run.stderr()


def test_ctrl_c_switches_off_sends_stop_all_and_keeps_the_files(tmp_path):
    def attempt(k: int) -> tuple[int, str, tuple[Path, Path]]:
        folder = tmp_path / f"attempt{k}"
        folder.mkdir()
        emu, path, log = emulator(folder, "--seed", "1", "--comm-timeout-ms", "400")
        out = folder / "live"
        run = Process("run", "--port", path, "--config", host_config(tmp_path),
                      "--duration-s", "60", "--out", str(out), "--no-status",
                      "--link-timeout-ms", "300", "--max-lag-ms", "300")
        deadline = time.monotonic() + 30.0
        while not (log.exists() and any(e["event"] == "stream_start" for e in events(log))):
            assert time.monotonic() < deadline, run.stderr()
            time.sleep(0.05)
        time.sleep(1.0)
        run.proc.send_signal(signal.SIGINT)
        code = run.wait()
        emu.stop()
        return code, run.stderr(), (log, out)

    # A run the machine ended before the Ctrl-C (the watchdog's wall-clock rules, or the
    # link timeout with the emulator's gaps filling its silence) again.
    code, err, (log, out) = rerun_after_heartbeat_faults(
        attempt, lambda result: events(result[0]),
        lambda result: emulator_silence_explains(result[1], events(result[0]), 0.3))
    assert code == 130, err
    result = summary(out)
    assert result["stopped_by"] == "interrupted"
    assert result["board"]["outputs_off_confirmed"] is True
    stop = [e for e in events(log) if e["event"] == "stop_all"]
    assert stop and not [e for e in events(log) if e["event"] == "outputs"
                         and e["monotonic_s"] > stop[-1]["monotonic_s"] and e["on"]]
    rows = (out / "samples.csv").read_text().splitlines()
    assert len(rows) - 1 == pytest.approx(result["duration_s"] * 500, abs=1)
    assert len(rows) > 500


def test_a_terminal_that_hangs_up_ends_the_trial_as_ctrl_c_does(tmp_path):
    """``fes run`` in a terminal whose window is closed, or an ssh session that drops: the
    kernel sends SIGHUP and every write to the terminal fails (EIO). The trial died by the
    signal: no STOP_ALL (the board's own timeout switched it off), no summary.json."""

    def attempt(k: int) -> tuple[int, str, tuple[Path, Path]]:
        folder = tmp_path / f"attempt{k}"
        folder.mkdir()
        emu, path, log = emulator(folder, "--seed", "1", "--comm-timeout-ms", "400")
        out = folder / "live"
        master, terminal = pty.openpty()
        try:
            run = subprocess.Popen(  # the terminal is its controlling terminal, as in a shell
                [*FES, "run", "--port", path, "--config", host_config(tmp_path),
                 "--duration-s", "60", "--out", str(out), "--link-timeout-ms", "300",
                 "--max-lag-ms", "300"],
                stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
            os.close(terminal)
            screen = bytearray()
            reader = threading.Thread(target=read_terminal, args=(master, screen), daemon=True)
            reader.start()
            deadline = time.monotonic() + 30.0
            while not (log.exists() and any(e["event"] == "stream_start" for e in events(log))):
                assert time.monotonic() < deadline and run.poll() is None, screen.decode()
                time.sleep(0.05)
            time.sleep(1.0)
        finally:
            os.close(master)  # the hang-up
        try:
            code = run.wait(timeout=30)
        finally:
            emu.stop()
        return code, screen.decode(), (log, out)

    code, err, (log, out) = rerun_after_heartbeat_faults(
        attempt, lambda result: events(result[0]),
        lambda result: emulator_silence_explains(result[1], events(result[0]), 0.3))
    assert code == 130, (code, err)
    result = summary(out)
    assert result["stopped_by"] == "interrupted"
    assert result["board"]["outputs_off_confirmed"] is True
    board = events(log)
    stop = [e for e in board if e["event"] == "stop_all"]
    assert stop and not [e for e in board if e["event"] == "fault"]  # no COMM_TIMEOUT
    rows = (out / "samples.csv").read_text().splitlines()
    assert len(rows) - 1 == pytest.approx(result["duration_s"] * 500, abs=1)


def test_the_odfs_preset_across_the_serial_link_matches_fes_sim(tmp_path):
    """Asymmetric 4:1 pulses (configs/stim/odfs.toml) travel as STIM_SHAPED: the same
    walk, trains and charge as ``fes sim --stim odfs`` on the same seed."""
    live_out, sim_out = tmp_path / "live", tmp_path / "sim"
    log = walk_across_the_link(tmp_path, live_out, "--stim", "odfs")
    assert main(["sim", "--seed", "3", "--stim", "odfs", "--duration-s", "10",
                 "--out", str(sim_out)]) == 0
    live, sim = summary(live_out), summary(sim_out)

    assert live["stopped_by"] == "duration"
    assert live["board"]["info"]["protocol_version"] == 4
    assert live["strides"] == sim["strides"] >= 7
    # Stimulation starts once the gyroscope's mounting check has seen three strides.
    assert live["gyro_mounting"] == sim["gyro_mounting"]
    assert live["gyro_mounting"]["verdict"] == "mounted"
    assert live["stim"]["trains"] == sim["stim"]["trains"] >= 4
    assert live["stim"]["missed_onsets"] == sim["stim"]["missed_onsets"]
    onset_live, onset_sim = live["stim"]["onset_error_ms"], sim["stim"]["onset_error_ms"]
    assert abs(onset_live["median"] - onset_sim["median"]) <= 3.0
    assert live["stim"]["charge_uc_per_stride"] == pytest.approx(
        sim["stim"]["charge_uc_per_stride"], rel=0.02)
    assert live["clearance"]["toe_drag_events"] == sim["clearance"]["toe_drag_events"]
    # The board delivered the shape the config asks for: gap 0, recovery 4 times as long.
    switched_on = [e for e in events(log) if e["event"] == "outputs" and e["on"] == [0]]
    assert switched_on and all(e["shapes"] == {"0": [0, 4.0]} for e in switched_on)


def test_a_board_without_pulse_shapes_refuses_the_odfs_preset_by_name(tmp_path):
    emu, path, log = emulator(tmp_path, "--protocol-version", "1")
    run = Process("run", "--port", path, "--stim", "odfs", "--duration-s", "5",
                  "--out", str(tmp_path / "live"), "--no-status")
    assert run.wait() == 10, run.stderr()  # board refused
    emu.stop()
    assert "stim.peroneal.anodic_width_ratio 4: the board speaks protocol version 1" in (
        run.stderr())
    assert not (tmp_path / "live").exists()
    hellos = [e["version"] for e in events(log) if e["event"] == "hello"]
    assert hellos == [4, 1]  # asked for version 4, fell back to the board's version 1
    assert not [e for e in events(log) if e["event"] == "outputs" and e["on"]]


def read_terminal(fd: int, into: bytearray) -> None:
    """Everything written to the pty whose master is ``fd``, until every writer closed it."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the last process holding the terminal has ended
            return
        if not chunk:
            return
        into.extend(chunk)


def on_a_terminal(tmp_path: Path, k: int) -> tuple[int, str, tuple[str, Path, Path]]:
    """``fes run`` for 7 s with a terminal as its stdin and stderr, against a fresh
    emulator: the exit code, what the terminal showed (twice: as the stderr and with the
    board's log and the trial's folder, for ``rerun_after_heartbeat_faults``)."""
    folder = tmp_path / f"attempt{k}"
    folder.mkdir()
    emu, path, log = emulator(folder, "--seed", "2", "--speed", "2", "--comm-timeout-ms", "400")
    master, terminal = pty.openpty()  # fes run's stdin and stderr, as in a shell
    screen = bytearray()
    try:
        run = subprocess.Popen(
            [*FES, "run", "--port", path, "--config", host_config(tmp_path), "--duration-s", "7",
             "--out", str(folder / "live"),
             "--link-timeout-ms", "300", "--max-lag-ms", "400"],
            stdin=terminal, stdout=subprocess.PIPE, stderr=terminal,
        )
        os.close(terminal)
        reader = threading.Thread(target=read_terminal, args=(master, screen), daemon=True)
        reader.start()
        code = run.wait(timeout=60)
        reader.join(timeout=5.0)
    finally:
        os.close(master)
        emu.stop()
    return code, screen.decode(), (screen.decode(), log, folder / "live")


def test_on_a_terminal_the_status_line_shows_link_and_loop_timing(tmp_path):
    code, _, (shown, _, _) = rerun_after_heartbeat_faults(
        lambda k: on_a_terminal(tmp_path, k), lambda result: events(result[1]),
        lambda result: emulator_silence_explains(result[2], events(result[1]), 0.3))
    assert code == 0, shown
    lines = shown.replace("\r", "").splitlines()
    assert lines[0] == "fes run: space or Esc is an emergency stop"  # a terminal: keys on
    status = [line for line in lines if line.startswith("t ")]
    assert [line[:12] for line in status] == [f"t     {t}.0 s " for t in range(1, 7)]
    for line in status:
        frames_in = int(re.search(r"frames in (\d+)", line).group(1))  # type: ignore[union-attr]
        assert frames_in >= 500 and "| link ok" in line and "samples lost 0" in line
        assert "watchdog faults 0 |" in line and re.search(r"latency us p99 \d+", line)
    # Until the gyroscope's mounting check has seen three strides (some 4 s), the line
    # says why nothing is stimulated; the cadence comes with the checked strides.
    assert "| gyro: checking its sign, no gait-triggered stimulation yet |" in status[0]
    assert "gyro:" not in status[-1]
    assert re.search(r"cadence \d+ steps/min", status[-1])
    assert lines[-1].startswith("fes run: stopped by duration")
