"""A signal ``fes`` was started with ignored stays ignored (``controller.interrupts.caught``).

``nohup fes sweep ... &`` ignores SIGHUP so that the work outlives the terminal; a
background command of a shell without job control is started with SIGINT ignored so that
the terminal's Ctrl-C ends only the foreground one. ``fes`` used to install its own
handlers over both, so closing the ssh session ended a nohup'd paced trial (exit 130,
"interrupted"). SIGTERM still ends such a trial as Ctrl-C would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.live import FES


def _rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _grown(path: Path, beyond: int, timeout_s: float = 60.0) -> int:
    """Wait until ``path`` holds more than ``beyond`` lines; return how many."""
    deadline = time.monotonic() + timeout_s
    while (rows := _rows(path)) <= beyond:
        assert time.monotonic() < deadline, f"{path} stopped at {rows} lines"
        time.sleep(0.05)
    return rows


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
@pytest.mark.parametrize("ignored", [True, False], ids=["ignored", "default"])
def test_a_signal_ignored_from_the_start_does_not_end_a_paced_trial(tmp_path, signum, ignored):
    out = tmp_path / "trial"

    def start_ignoring() -> None:
        if ignored:
            signal.signal(signum, signal.SIG_IGN)

    proc = subprocess.Popen(
        [*FES, "sim", "--realtime", "--duration-s", "120", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=start_ignoring, process_group=0,
    )
    try:
        rows = _grown(out / "samples.csv", 100)  # the paced loop is running
        proc.send_signal(signum)
        if ignored:
            _grown(out / "samples.csv", rows + 250)  # half a second more at 500 Hz
            assert proc.poll() is None, "the ignored signal ended the trial"
            proc.send_signal(signal.SIGTERM)  # kill's default still ends it
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["duration_s"] < 120
