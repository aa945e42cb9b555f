"""A sweep killed halfway (a real SIGKILL of a real process) resumes to the same table."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

from helpers.live import session_alive

from controller.cli import main
from controller.sweep.store import PARTIAL_PREFIX
from controller.sweep.table import WALL_CLOCK_FIGURES

GRID = ["--grid", "stim.peroneal.amplitude_ma=20,25,30,35", "--seeds", "2",
        "--duration-s", "12"]
TRIALS = 8


def finished(out: Path) -> int:
    folder = out / "trials"
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if not p.name.startswith(PARTIAL_PREFIX))


def table(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIGURES} for r in rows]


def test_killed_sweep_resumes_to_the_table_of_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "controller.cli", "sweep", *GRID, "--workers", "2",
               "--out", str(killed)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while finished(killed) < 2:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.01)
    proc.kill()  # SIGKILL to the parent alone, as `kill -9 PID` does
    proc.wait()
    done_at_kill = finished(killed)
    assert 2 <= done_at_kill < TRIALS
    while session_alive(proc.pid):  # its workers notice and exit
        assert time.monotonic() < deadline, f"orphans: {session_alive(proc.pid)}"
        time.sleep(0.05)

    assert main(["sweep", *GRID, "--workers", "1", "--out", str(killed)]) == 0
    assert finished(killed) == TRIALS
    assert main(["sweep", *GRID, "--workers", "1", "--out", str(tmp_path / "whole")]) == 0
    assert table(killed) == table(tmp_path / "whole")
    assert len(table(killed)) == TRIALS
