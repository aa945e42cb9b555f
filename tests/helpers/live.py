"""``fes`` subprocesses for the end-to-end tests (``tests/test_hw_e2e.py``,
``tests/test_avr_e2e.py``), the fixture that kills any left running, the processes of a
session (a killed sweep's workers), and readers of the files a trial writes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

FES = [sys.executable, "-m", "controller.cli"]
T = TypeVar("T")


def with_emulator(command: Callable[[str], T]) -> tuple[T, str]:
    """``command(port)`` run while a board emulator (``hw.emulator``, in a thread, a
    default board) serves ``port``: its result, and the emulator's log (JSON lines: a
    test asks whether the board was spoken to)."""
    from hw.emulator import EmulatorConfig, serve_in_thread
    from hw.firmware import FirmwareSettings

    log = io.StringIO()
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings()), log)
    try:
        result = command(emu.path)
    finally:
        finish()
    return result, log.getvalue()


def stamp_stderr(proc: subprocess.Popen[str], lines: list[tuple[float, str]]
                 ) -> threading.Thread:
    """Start a thread that appends each stderr line of ``proc`` to ``lines``, stamped
    with ``time.monotonic()`` as it arrives; join it once ``proc`` has ended."""

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


class Process:
    """A ``fes`` subprocess whose stderr lines are stamped with ``time.monotonic()``.

    Every one still running when its test ends (an assertion failed before ``stop``) is
    killed by ``_no_process_outlives_its_test``: a board emulator left behind would run
    for ever and load the machine for every later test."""

    running: ClassVar[list[Process]] = []

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*FES, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        Process.running.append(self)
        self.lines: list[tuple[float, str]] = []
        self._reader = stamp_stderr(self.proc, self.lines)

    def first_stdout_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def wait(self, timeout_s: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5.0)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait(10.0)

    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    while Process.running:
        proc = Process.running.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(10.0)


def emulator(tmp_path: Path, *args: str) -> tuple[Process, str, Path]:
    """``fes board-emulator`` logging to ``tmp_path/board.jsonl``: the process, its pty's
    path and the log's path."""
    log = tmp_path / "board.jsonl"
    proc = Process("board-emulator", "--log", str(log), *args)
    path = proc.first_stdout_line()
    assert path.startswith("/dev/"), proc.stderr()
    return proc, path, log


def events(log: Path) -> list[dict]:
    """The emulator's log, one dict per event."""
    return [json.loads(line) for line in log.read_text().splitlines()]


def summary(out: Path) -> dict:
    """A trial's ``summary.json``."""
    return json.loads((out / "summary.json").read_text())


def true_events(out: Path) -> list[tuple[float, str]]:
    with (out / "events.csv").open() as handle:
        return [(float(r["time_s"]), r["event"]) for r in csv.DictReader(handle)
                if r["source"] == "true"]


def session_alive(session: int) -> list[int]:
    """Processes (not zombies) of a session: a ``fes`` command started in a session of its
    own and its children (a sweep's workers)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def signal_once_written(proc: subprocess.Popen[str], path: Path, size: int, signum: int,
                        within_s: float = 90.0) -> str:
    """Send ``signum`` to ``proc`` once ``path`` holds ``size`` bytes (or ``proc`` ended,
    or ``within_s`` passed); return its stderr once it has ended (killed if it has not
    within a minute)."""
    try:
        deadline = time.monotonic() + within_s
        while proc.poll() is None and time.monotonic() < deadline and (
                not path.exists() or path.stat().st_size < size):
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        return err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def shared_memory_kib() -> int:
    """Shared memory pages this process has mapped (a trial's rows), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            return int(line.split()[1])
    pytest.skip("no RssShmem in /proc/self/status")
    return 0


def assert_same_trials(kept: Path, windowed: Path, names: list[str], summary: dict,
                       strip: Callable[[dict], dict]) -> None:
    """The files ``names`` of two trial folders are the same bytes, and both
    ``summary.json`` are ``summary`` once ``strip`` has taken the wall clock out."""
    for name in names:
        assert (windowed / name).read_bytes() == (kept / name).read_bytes(), name
    on_disk = [json.loads((folder / "summary.json").read_text()) for folder in (kept, windowed)]
    assert [strip(s) for s in on_disk] == [strip(summary)] * 2


class QuietStimulator:
    """A sensorless stimulator that takes every command (``SensorlessStimulator``)."""

    channels = 2
    fault = None
    stop_confirmed = True
    off_without_host = "nothing: a test stimulator"
    off_command = "STOP"

    def connect(self) -> None:
        pass

    def apply(self, t_s: float, commands: Any) -> None:
        pass

    def stop_all(self) -> None:
        pass

    def close(self) -> None:
        pass

    def add_fault_listener(self, listener: Any) -> None:
        pass

    def link_counters(self) -> dict[str, Any]:
        return {}
