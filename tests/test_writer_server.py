"""The writer server: a trial's log writer forked by a process started once, handed the
trial's shared arrays and files as descriptors (controller.trial.writerserver)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from controller import sharedmem
from controller.config import TrialConfig, load_config
from controller.sharedmem import PassedFd, dumps_passing, loads_passed, shared_zeros
from controller.trial import writerserver
from controller.trial.simulated import run_simulated_trial
from controller.trial.writer import LogWriterError

FILES = ("samples.csv", "events.csv", "config.json")


def _config(seconds: float = 3.0) -> TrialConfig:
    return load_config(overrides={"sim": {"patient": "severe", "seed": 3},
                                  "loop": {"duration_s": seconds, "sample_rate_hz": 1000.0}})


def test_shared_arrays_and_descriptors_pass_to_another_process_as_the_same_memory(tmp_path):
    table = shared_zeros(4 * 1000).reshape(4, 1000)
    path = tmp_path / "out.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    data, fds = dumps_passing({"column": table[2], "file": PassedFd(fd), "own": np.arange(3)})
    pid = os.fork()
    if pid == 0:  # another process, with copies of the descriptors under other numbers
        passed = loads_passed(data, [os.dup(f) for f in fds])
        passed["column"][:] = 7.0
        os.write(passed["file"], b"written")
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    os.close(fd)
    assert np.all(table[2] == 7.0) and np.all(table[[0, 1, 3]] == 0.0)
    assert path.read_bytes() == b"written"


def test_a_trial_written_by_a_served_writer_has_the_bytes_of_a_forked_writers(
    tmp_path, monkeypatch
):
    forked = tmp_path / "forked"
    run_simulated_trial(_config(), forked)
    spawned: list[int] = []
    with writerserver.writer_server() as server:
        spawn = server.spawn
        monkeypatch.setattr(server, "spawn", lambda job: (spawned.append(1), spawn(job)))
        run_simulated_trial(_config(), tmp_path / "served")
    assert spawned == [1]  # the server's writer wrote it, not a fork of this process
    for name in FILES:
        assert (tmp_path / "served" / name).read_bytes() == (forked / name).read_bytes(), name


class KeepingSink:
    """A sink that cannot be handed to the server (not ``passable``): forked instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        self.rows = first + len(rows["time_s"])

    def close(self) -> None:
        self.path.write_text(str(self.rows))


def test_a_sink_the_server_cannot_take_gets_a_writer_forked_from_the_trial(tmp_path, monkeypatch):
    with writerserver.writer_server() as server:
        monkeypatch.setattr(server, "spawn", lambda job: 1 / 0)  # must not be used
        run_simulated_trial(_config(1.0), tmp_path / "trial", sinks=[KeepingSink(tmp_path / "n")])
    assert (tmp_path / "n").read_text() == "1000"
    assert (tmp_path / "trial" / "samples.csv").read_text().count("\n") == 1001


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    script = (
        "import os, sys, time\n"
        "from controller.trial.writerserver import writer_server\n"
        "with writer_server() as server:\n"
        "    print(server.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    server_pid = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(server_pid):
        assert time.monotonic() < deadline, "the writer server outlived its starter"
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class BrokenSink:
    """A sink the server can take that fails on its first block."""

    passable = True

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        raise RuntimeError("the sink broke")

    def close(self) -> None:
        """Nothing to release."""


def test_a_served_writer_that_fails_is_reported_after_the_trial(tmp_path, capfd):
    with writerserver.writer_server(), pytest.raises(LogWriterError, match="traceback is above"):
        run_simulated_trial(_config(1.0), tmp_path / "trial", sinks=[BrokenSink()])
    assert "RuntimeError: the sink broke" in capfd.readouterr().err


def test_a_trial_in_memory_an_ended_trial_used_has_the_bytes_of_one_in_fresh_memory(
    tmp_path, monkeypatch
):
    """The recorder's table and the limb's truth reuse an ended trial's memory files
    (``shared_empty``): every cell is written again, none is left from the earlier
    trial (whose stimulation columns were busy; this one's stay off)."""
    quiet = load_config(overrides={"sim": {"patient": "severe", "seed": 4},
                                   "loop": {"duration_s": 10.0, "sample_rate_hz": 1000.0},
                                   "stim": {"enabled": False}})
    monkeypatch.setattr(sharedmem, "REUSE_MIN_BYTES", 0)  # a short trial's files too
    monkeypatch.setattr(sharedmem, "_REUSABLE", {})
    run_simulated_trial(quiet, tmp_path / "fresh")
    monkeypatch.setattr(sharedmem, "_REUSABLE", {})
    summary = run_simulated_trial(_config(10.0), tmp_path / "busy")
    assert summary["stim"]["trains"] > 0
    assert sharedmem._REUSABLE  # its table and truth, kept
    run_simulated_trial(quiet, tmp_path / "reused")
    for name in ("samples.csv", "events.csv"):
        reused, fresh = (tmp_path / "reused" / name), (tmp_path / "fresh" / name)
        assert reused.read_bytes() == fresh.read_bytes(), name
