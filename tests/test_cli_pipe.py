"""A reader that leaves early (``fes sim | head``): no traceback, the command's own exit
code, its files complete, a live trial walked to its end (``controller.console``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from controller.console import ReaderMayLeave


def closed_pipe() -> int:
    """The write end of a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


def fes_with_reader_gone(args: list[str], stream: str) -> subprocess.CompletedProcess[str]:
    """Run ``fes ARGS`` with its ``stream`` ("stdout" or "stderr") on a closed pipe and
    the other captured."""
    gone = closed_pipe()
    try:
        kept = "stderr" if stream == "stdout" else "stdout"
        return subprocess.run(
            [sys.executable, "-m", "controller.cli", *args],
            **{stream: gone, kept: subprocess.PIPE}, text=True, check=False,  # type: ignore[call-overload]
        )
    finally:
        os.close(gone)


def test_a_printout_to_a_reader_gone_is_dropped_quietly():
    proc = fes_with_reader_gone(["check-config", "--explain"], "stdout")
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr


def test_a_trial_whose_reader_is_gone_writes_its_files_and_exits_0(tmp_path):
    out = tmp_path / "trial"
    proc = fes_with_reader_gone(["sim", "--duration-s", "5", "--out", str(out)], "stdout")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["duration_s"] == 5 and summary["stopped_by"] == "duration"


def test_a_live_trial_walks_to_its_end_when_its_status_reader_is_gone(tmp_path):
    out = tmp_path / "live"
    proc = fes_with_reader_gone(
        ["sim", "--realtime", "--duration-s", "2", "--out", str(out)], "stderr"
    )
    assert proc.returncode == 0
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == "duration"
    rows = (out / "samples.csv").read_text().splitlines()
    assert len(rows) - 1 == 2 * 500  # every sample of the 2 s at the default 500 Hz


def test_writes_after_the_reader_left_go_nowhere_and_the_stream_stays_usable():
    gone = closed_pipe()
    with os.fdopen(gone, "w") as raw:
        stream = ReaderMayLeave(raw)
        assert stream.write("first\n") == len("first\n")
        stream.flush()  # the pipe's EPIPE: the descriptor now points at /dev/null
        assert stream.write("later\n") == len("later\n")
        stream.flush()
        assert os.path.samefile(f"/proc/self/fd/{raw.fileno()}", os.devnull)


def test_an_open_reader_gets_everything(tmp_path: Path):
    path = tmp_path / "out.txt"
    with path.open("w") as raw:
        stream = ReaderMayLeave(raw)
        print("one", file=stream)  # type: ignore[arg-type]
        stream.write("two\n")
    assert path.read_text() == "one\ntwo\n"
