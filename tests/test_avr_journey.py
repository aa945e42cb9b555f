"""A bench engineer's first session with the project's board, end to end, with only the
board simulated: a Mega 2560 as it leaves the factory (Arduino's own STK500v2
bootloader, flash and EEPROM erased, a reset whenever a host opens its port) wearing the
simulated patient on its pins; ``make flash`` and ``make eeprom`` through real avrdude;
``fes run`` trials through the bootloader's reset; Ctrl-C; the cable pulled; the board
plugged in again; a trial set beyond the board's stored limits (docs/hardware.md,
"Build, flash, run").

What a user would notice, each step:
- the firmware make flash wrote, with the configuration make eeprom stored, answers and
  reports it (board id, its lowered charge limit) in ``summary.json``;
- a trial through the Mega's reset walks with every sensor: no heel switch sample lost,
  the patient's truth relayed (strides scored). Before the harness re-drove the patient's
  lines after a reset, every heel sample was lost (6 195 of 6 195) and the truth absent;
- Ctrl-C mid-trial: exit 130, the samples up to it on disk, outputs off confirmed;
- the cable pulled mid-trial: exit 5, outputs off not confirmed, files written; this
  board's second stream, after a second reset, scored against truth dated on the
  restarted firmware's clock (before: 1 stride, recall 0, onset 350 ms after toe off;
  now the detector's heel strikes within 33-41 ms of the true ones, as in a first trial);
- plugged in again (a new simulated board with the same flash and EEPROM): a trial runs
  with nothing stale;
- a channel set beyond the board's stored charge limit: refused at HELLO, naming it
  (before: the first train refused mid-walk, exit 6).

Each ``fes run`` opens the port, which resets the board into its bootloader: the host
tells the bootloader to start the firmware (hw.stk500v2), which then answers within
2 s of board time after the reset (before, the host waited out 6 s of silence,
hw.board.BOOTLOADER_QUIET_S, and the firmware answered 7 s after the reset).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.avr_support import avr_build_or_skip, skip_unless_present
from helpers.live import Process, _no_process_outlives_its_test, summary
from helpers.live import events as log_events
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults

from controller.commands.common import EXIT_REFUSED
from hw.avr import build as avr_build
from hw.avr import cosim

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test

#: What make eeprom stores: an id, a timeout loose enough for a shared machine, a charge
#: limit lowered below the trial's safety.max_charge_per_phase_uc (30) and above the
#: default stimulation's 35 mA x 300 us (10.5 uC).
BOARD = cosim.AvrBoardSettings(board_id=42, comm_timeout_ms=400, max_charge_per_phase_uc=20.0)
EEPROM = ("BOARD_ID=42", "COMM_TIMEOUT_MS=400", "MAX_CHARGE_PER_PHASE_UC=20")
#: A channel over the board's 20 uC (22.5 uC), within the trial's own limits.
OVER_THE_BOARD = ("[stim.peroneal]\namplitude_ma = 50.0\npulse_width_us = 450.0\n"
                  "ramp_up_ms = 100.0\n")
#: Status lines come once a second of trial time; the walk is well under way by this one.
#: The detector finds its first event after some 4 strides (4.5-5.2 s into these walks,
#: by the walk's phase when the stream starts): at 5.0 s the unplugged trial had matched
#: no heel strike yet in 1 of 4 runs (its error median None); by 7.0 s it has matched one.
UNDER_WAY = "t     7.0 s"


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A fresh build directory, as a user's first make makes (copied from the session's
    build with its times kept, so that make builds nothing)."""
    skip_unless_present(avr_build.flash_missing())
    built = avr_build_or_skip("firmware", "harness").directory
    fresh = tmp_path / "build"
    fresh.mkdir()
    for name in ("firmware.elf", "firmware.hex", "simavr-board"):
        shutil.copy2(built / name, fresh / name)
    return fresh


def _mega(build: Path, log: Path, flashed: bool) -> tuple[cosim.SimavrBoard, Any]:
    config = cosim.AvrBoardConfig(seed=3, board=BOARD)
    return cosim.serve_in_thread(config, log, avr_build.Build(build),
                                 bootloader=avr_build.MEGA2560_BOOTLOADER, flashed=flashed)


def _make(target: str, port: str, build: Path, *settings: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(avr_build.SOURCE_DIR), target,
         f"PORT={port}", f"BUILD={build}", *settings],
        capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def _fes_run(port: str, out: Path, config: str, duration_s: float) -> Process:
    return Process("run", "--port", port, "--config", config, "--duration-s",
                   f"{duration_s:g}", "--out", str(out), "--link-timeout-ms", "300",
                   "--max-lag-ms", "400")


def _under_way(run: Process, timeout_s: float = 60.0) -> bool:
    """True once the trial's status line is at ``UNDER_WAY``; False if it ended first."""
    deadline = time.monotonic() + timeout_s
    while not any(line.startswith(UNDER_WAY) for _, line in run.lines):
        if run.proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, run.stderr()
        time.sleep(0.05)
    return True


def _trial(name: str, tmp_path: Path, start: Callable[[Path], Process],
           act: Callable[[], None] | None = None) -> tuple[int, str, Path]:
    """A trial started by ``start(out)``, with ``act`` done once it is under way; run
    again when the machine's load stalled the host's loop (a heartbeat fault: the host
    watchdog's, not the board's; ``rerun_after_heartbeat_faults``). Its exit code,
    stderr and folder."""

    def attempt(k: int) -> tuple[int, str, Path]:
        out = tmp_path / f"{name}{k}"
        run = start(out)
        if act is not None and _under_way(run):
            act()
        return run.wait(90.0), run.stderr(), out

    return rerun_after_heartbeat_faults(attempt)


def _answered_after_reset_s(log: Path) -> float:
    """Board time from the reset of the first ``fes run``'s open to the HELLO the
    firmware answered (the last before the stream started), from the harness's log."""
    seen = log_events(log)
    start = next(i for i, e in enumerate(seen) if e["event"] == "stream_start")
    before = seen[:start]
    reset = [e for e in before if e["event"] == "reset"][-1]["board_t_s"]
    return float([e for e in before if e["event"] == "hello"][-1]["board_t_s"] - reset)


def _rows(out: Path) -> int:
    with (out / "samples.csv").open() as handle:
        return sum(1 for _ in handle) - 1


def _walked_with_every_sensor(out: Path) -> dict[str, Any]:
    """The trial's summary, after checking what a reset board used to lose."""
    s = summary(out)
    assert s["board"]["info"]["board_id"] == 42
    assert s["board"]["info"]["max_charge_per_phase_uc"] == 20.0
    assert s["lost_samples"] == {"gyro_rad_s": 0, "heel_switch": 0}
    assert s["ground_truth"] == "board emulator debug frames"
    assert s["strides"] is not None and s["strides"] >= 2
    assert s["detector"]["recall"] > 0.0 and s["detector"]["precision"] == 1.0
    return s


@pytest.fixture
def factory_mega(build: Path, tmp_path: Path) -> Iterator[tuple[cosim.SimavrBoard, Any]]:
    board, finish = _mega(build, tmp_path / "board.jsonl", flashed=False)
    yield board, finish
    finish()


def test_flash_configure_walk_interrupt_unplug_replug_and_a_refused_setting(
        build: Path, tmp_path: Path, factory_mega: tuple[cosim.SimavrBoard, Any]) -> None:
    board, finish = factory_mega
    config = host_config(tmp_path)
    _make("flash", board.path, build)
    _make("eeprom", board.path, build, *EEPROM)

    # Ctrl-C under way, after the reset that fes run's open makes.
    runs: list[Process] = []

    def start(out: Path) -> Process:
        runs.append(_fes_run(board.path, out, config, 60))
        return runs[-1]

    code, err, stopped = _trial("interrupted", tmp_path, start,
                                lambda: runs[-1].proc.send_signal(signal.SIGINT))
    assert code == 130, err
    assert (f"fes run: no answer to HELLO on {board.path}; an STK500v2 bootloader (AVRISP_2) "
            "answered at 115200 baud") in err  # what happened before the first status line
    assert _answered_after_reset_s(tmp_path / "board.jsonl") < 2.0  # 7.2 s with the silence
    s = _walked_with_every_sensor(stopped)
    assert s["stopped_by"] == "interrupted" and s["board"]["outputs_off_confirmed"] is True
    assert 5.0 <= s["duration_s"] < 30.0
    assert _rows(stopped) == round(s["duration_s"] * 500)

    # The cable pulled under way.
    code, err, pulled = _trial("unplugged", tmp_path, start, board.unplug)
    assert code == 5, err
    assert "outputs off not confirmed" in err
    # The second stream of this board, after a reset: the truth dated on the restarted
    # firmware's clock.
    s = _walked_with_every_sensor(pulled)
    assert abs(s["detector"]["heel_strike_error_ms"]["median"]) < 60.0  # 33-41 ms measured
    assert s["stopped_by"] == "link_lost" and s["board"]["outputs_off_confirmed"] is False
    assert _rows(pulled) == round(s["duration_s"] * 500) > 2500
    assert finish(10.0) == "unplugged"

    # Plugged in again: the same flash and EEPROM, nothing else kept.
    board, finish = _mega(build, tmp_path / "replugged.jsonl", flashed=True)
    try:
        over = tmp_path / "over.toml"
        over.write_text(OVER_THE_BOARD)
        refused = Process("run", "--port", board.path, "--config", str(over),
                          "--out", str(tmp_path / "refused"))
        assert refused.wait(60.0) == EXIT_REFUSED, refused.stderr()
        assert ("stim.peroneal: charge per phase of 50 mA x 450 us is 22.5 uC, beyond the "
                "board's max charge per phase 20 uC") in refused.stderr()
        assert not (tmp_path / "refused").exists()
        code, err, again = _trial("again", tmp_path,
                                  lambda out: _fes_run(board.path, out, config, 6))
        assert code == 0, err
        s = _walked_with_every_sensor(again)
        assert s["stopped_by"] == "duration" and s["board"]["outputs_off_confirmed"] is True
        assert s["board"]["info"]["fault_before_this_session"] == "none"
    finally:
        finish()
