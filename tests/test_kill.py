"""Kill tests: ``fes sim`` and ``fes run`` (against ``fes board-emulator``) killed with
SIGKILL, SIGINT and SIGTERM at random moments, as real processes.

What must hold (docs/files.md, "What survives a crash"):

* SIGINT and SIGTERM, in any phase: exit code 130; if the trial's folder was claimed,
  its files are complete (``summary.json`` with every row ``samples.csv`` holds).
* SIGKILL: whatever files exist parse, ``config.json`` and ``summary.json`` whole or
  absent, ``samples.csv`` complete lines only.
* A simulated trial's rows are a byte-exact prefix of the same trial run to its end, and
  a SIGKILL of the trial's process loses at most a second of samples: the writer
  process writes every row the loop published, and the loop publishes every second.
* A live trial loses at most a second of samples whatever is killed (also the whole
  process group: the writer dies too), and the board's outputs end off (its log).

``KILLS_CI`` cases per signal and command in CI, ``KILLS_SLOW`` in the ``slow`` variant.
Every moment is drawn from a seeded generator and printed on failure, so a failure can
be repeated.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.live import FES, stamp_stderr
from helpers.shared_machine import host_config

from sim.limb import BLOCK_SAMPLES

KILLS_CI = 3
KILLS_SLOW = 20
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
SIM_ARGS = ("--duration-s", "300", "--seed", "5")  # 150,000 samples at 500 Hz
SIM_RATE_HZ = 500
RUN_RATE_HZ = 500


@dataclass
class Fes:
    """A ``fes`` command in a session (and process group) of its own, its stderr lines
    stamped with ``time.monotonic()`` as they arrive."""

    args: tuple[str, ...]
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[tuple[float, str]] = field(default_factory=list)
    started_s: float = 0.0
    ended_before_signal: bool = False

    def __post_init__(self) -> None:
        self.started_s = time.monotonic()
        self.proc = subprocess.Popen(
            [*FES, *self.args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        self._reader = stamp_stderr(self.proc, self.lines)

    def stdout_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def signal(self, signum: int, group: bool = False) -> float:
        """Send ``signum`` to the process (or its whole group); returns when."""
        self.ended_before_signal = self.proc.poll() is not None
        when = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.send_signal(signum)
        return when

    def wait_all(self, timeout_s: float = 60.0) -> int:
        """Wait for the process and every process of its group (the log writer
        outlives a killed trial until it has written what was published)."""
        code = self.proc.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while _group_alive(self.proc.pid):
            assert time.monotonic() < deadline, "a process of the trial never ended"
            time.sleep(0.01)
        self._reader.join(timeout=5.0)
        return code

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def running(*args: str) -> Iterator[Fes]:
    fes = Fes(args)
    try:
        yield fes
    finally:
        fes.end()


def wait_for(path: Path, timeout_s: float = 60.0) -> float:
    """Wait until ``path`` exists; return when it appeared."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.002)
    return time.monotonic()


def complete_lines(path: Path) -> list[str]:
    """The lines of a streamed CSV file, each complete: a file left by a kill may end
    anywhere, but only after a newline."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path.name} ends inside a line"
    return data.decode("utf-8").splitlines()


def parsed_json(path: Path) -> dict | None:
    """A JSON file, whole, or None if it is absent (never half written)."""
    if not path.exists():
        return None
    return json.loads(path.read_text())


def check_files(out: Path, interrupted: bool) -> list[str]:
    """What every killed trial folder must satisfy; returns the rows of samples.csv."""
    if not out.exists() or not any(out.iterdir()):
        return []  # killed before the folder was claimed: nothing was written
    if not (out / "config.json").exists():
        # Killed while the streams were being opened (config.json comes once they all
        # are): nothing but their headers was written.
        for stream in out.glob("*.csv"):
            assert stream.read_bytes().count(b"\n") <= 1, stream
        return []
    assert parsed_json(out / "config.json") is not None  # atomic, after the streams
    rows = complete_lines(out / "samples.csv")
    header, body = rows[0], rows[1:]
    events = complete_lines(out / "events.csv")
    assert events[0] == "time_s,source,event"
    times = [float(line.split(",")[0]) for line in events[1:]]
    assert all(len(line.split(",")) == 3 for line in events[1:])
    summary = parsed_json(out / "summary.json")
    if interrupted:
        assert summary is not None, "Ctrl-C or SIGTERM left no summary.json"
        assert times == sorted(times)  # the completed file is sorted
        assert summary["duration_s"] == pytest.approx(len(body) / rate_of(out), abs=1e-9)
    for line in body:
        assert line.count(",") == header.count(","), line
    return body


def check_exit(code: int, signum: int, out: Path, stderr: str, context: str) -> None:
    """Ctrl-C and SIGTERM end ``fes`` with 130 and no traceback (0: the signal came after
    the command had ended). The only exception is a signal so early that the
    interpreter had not started ``fes``'s code (the OS ends it, or the interpreter stops
    with "Failed to import the site module"): nothing was written."""
    if signum == signal.SIGKILL:
        return
    before_fes = code == -signum or (code == 1 and "init_import_site" in stderr)
    if before_fes:  # killed by the OS, or the interpreter gave up importing ``site``
        assert not out.exists() or not any(out.iterdir()), context
        return
    assert code in (130, 0), context
    assert "Traceback" not in stderr, context


def rate_of(out: Path) -> float:
    config = json.loads((out / "config.json").read_text())
    return float(config["loop"]["sample_rate_hz"])


@pytest.fixture(scope="module")
def sim_reference(tmp_path_factory) -> tuple[bytes, float]:
    """The trial the killed ones are cut from, run to its end: its samples.csv and how
    long the command took."""
    out = tmp_path_factory.mktemp("reference") / "trial"
    start = time.monotonic()
    with running("sim", *SIM_ARGS, "--out", str(out)) as fes:
        assert fes.wait_all() == 0, fes.stderr()
    return (out / "samples.csv").read_bytes(), time.monotonic() - start


def kill_sim(tmp_path: Path, reference: tuple[bytes, float], name: str, seed: int) -> None:
    """One ``fes sim`` killed at a random moment; checks the files it leaves."""
    rng = random.Random(f"{name}-{seed}")
    samples_ref, took_s = reference
    signum = SIGNALS[name]
    out = tmp_path / f"{name}-{seed}"
    with running("sim", *SIM_ARGS, "--out", str(out)) as fes:
        # A third of the moments anywhere in the command's life (start-up included),
        # the others once the folder is claimed (the loop and the writing).
        if rng.random() < 1 / 3:
            time.sleep(rng.uniform(0.0, took_s))
        else:
            claimed_s = wait_for(out / "config.json")
            time.sleep(max(0.0, rng.uniform(0.0, took_s - (claimed_s - fes.started_s))))
        fes.signal(signum)
        code = fes.wait_all()
    context = f"{name} seed {seed}: exit {code}\n{fes.stderr()}"
    check_exit(code, signum, out, fes.stderr(), context)
    body = check_files(out, interrupted=signum != signal.SIGKILL and code == 130)
    text = "".join(line + "\n" for line in body).encode()
    reference_body = samples_ref.split(b"\n", 1)[1]
    assert reference_body.startswith(text), f"rows differ from the whole trial: {context}"
    summary = parsed_json(out / "summary.json") if body else None
    if code == -signal.SIGKILL and summary is None and body:
        # Killed in the loop: the writer wrote every row the loop published, and the
        # loop publishes every second of samples (so at most one second is lost), and
        # at the end of each block of its kernel.
        published = len(body) % SIM_RATE_HZ == 0 or len(body) % BLOCK_SAMPLES == 0
        assert published, f"{len(body)} rows: {context}"


@pytest.mark.parametrize("seed", range(KILLS_CI))
@pytest.mark.parametrize("name", list(SIGNALS))
def test_fes_sim_killed_at_a_random_moment(tmp_path, sim_reference, name, seed):
    kill_sim(tmp_path, sim_reference, name, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(KILLS_CI, KILLS_SLOW))
@pytest.mark.parametrize("name", list(SIGNALS))
def test_fes_sim_killed_at_a_random_moment_many_times(tmp_path, sim_reference, name, seed):
    kill_sim(tmp_path, sim_reference, name, seed)


def board_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def kill_run(tmp_path: Path, name: str, seed: int) -> None:
    """One ``fes run`` against the emulator killed at a random moment (SIGKILL of the
    process or, every other time, of its whole group).

    A run that a heartbeat fault ended before the signal could (another job kept it off
    the CPU beyond the watchdog's wall-clock timeout, rightly faulted) is not a kill; it
    is run again, at most twice."""
    for attempt in range(3):
        if kill_run_once(tmp_path / f"attempt{attempt}", name, seed, attempt):
            return
    raise AssertionError(f"{name} seed {seed}: every run ended before its signal")


def kill_run_once(tmp_path: Path, name: str, seed: int, attempt: int) -> bool:
    """One attempt of ``kill_run``; False if the run had ended before the signal."""
    rng = random.Random(f"run-{name}-{seed}-{attempt}")
    signum = SIGNALS[name]
    group = signum == signal.SIGKILL and seed % 2 == 1
    comm_timeout_s = 0.4
    tmp_path.mkdir()
    log = tmp_path / "board.jsonl"
    out = tmp_path / "live"
    with running("board-emulator", "--log", str(log), "--seed", str(seed),
                 "--comm-timeout-ms", str(round(comm_timeout_s * 1000))) as emu:
        port = emu.stdout_line()
        assert port.startswith("/dev/"), emu.stderr()
        with running("run", "--port", port, "--config", host_config(tmp_path),
                     "--duration-s", "30", "--out", str(out), "--link-timeout-ms", "300",
                     "--max-lag-ms", "400", "--no-status") as run:
            if rng.random() < 1 / 4:  # start-up: imports, warm-up, HELLO
                time.sleep(rng.uniform(0.0, 3.0))
            else:
                wait_for(out / "config.json")
                time.sleep(rng.uniform(0.0, 3.0))
            killed_s = run.signal(signum, group)
            code = run.wait_all()
        time.sleep(comm_timeout_s + 0.2)  # the board's own timeout, if the host went silent
        events = board_log(log)
    context = f"{name} seed {seed} group {group}: exit {code}\n{run.stderr()}"
    if code == 7 and "heartbeat_timeout_ms" in run.stderr():
        # The watchdog ended the trial (a stall of the loaded machine) before the signal
        # could: its stderr says "stopped by watchdog_fault", never "interrupted".
        return False
    if run.ended_before_signal:
        assert code == 0, context
    check_exit(code, signum, out, run.stderr(), context)
    body = check_files(out, interrupted=signum != signal.SIGKILL and code == 130)
    # Outputs off: the last output change the board logged left every channel off.
    changes = [e for e in events if e["event"] == "outputs"]
    assert not changes or changes[-1]["on"] == [], f"{changes[-1:]}: {context}"
    started = [e for e in events if e["event"] == "stream_start"]
    if code == -signal.SIGKILL and started and started[0]["monotonic_s"] < killed_s:
        # At most one second lost: the board streamed since stream_start at its rate, so
        # the host had at most that many samples when it was killed.
        streamed = (killed_s - started[0]["monotonic_s"]) * RUN_RATE_HZ
        assert len(body) >= streamed - RUN_RATE_HZ, f"{len(body)} of {streamed:.0f}: {context}"
    if code == 130 and started and started[0]["monotonic_s"] < killed_s:
        stops = [e for e in events if e["event"] == "stop_all"]
        assert stops and stops[-1]["monotonic_s"] >= killed_s, context
    return True


@pytest.mark.parametrize("seed", range(KILLS_CI))
@pytest.mark.parametrize("name", list(SIGNALS))
def test_fes_run_killed_at_a_random_moment(tmp_path, name, seed):
    kill_run(tmp_path, name, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(KILLS_CI, KILLS_SLOW))
@pytest.mark.parametrize("name", list(SIGNALS))
def test_fes_run_killed_at_a_random_moment_many_times(tmp_path, name, seed):
    kill_run(tmp_path, name, seed)


def test_a_rerun_never_mixes_its_files_with_a_killed_trials(tmp_path, sim_reference):
    """A killed trial's folder is refused without --overwrite; with it, the earlier
    files are gone before the new trial writes anything."""
    out = tmp_path / "trial"
    with running("sim", *SIM_ARGS, "--out", str(out)) as fes:
        wait_for(out / "config.json")
        time.sleep(0.3)
        fes.signal(signal.SIGKILL)
        fes.wait_all()
    (out / "notes.txt").write_text("mine")
    with running("sim", "--duration-s", "2", "--out", str(out)) as fes:
        assert fes.wait_all() == 2
    assert "already holds" in fes.stderr() and "--overwrite" in fes.stderr()
    with running("sim", "--duration-s", "2", "--seed", "9", "--out", str(out),
                 "--overwrite") as fes:
        assert fes.wait_all() == 0, fes.stderr()
    assert (out / "notes.txt").read_text() == "mine"  # not a trial file: left alone
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["sim"]["seed"] == 9 and summary["duration_s"] == 2.0
    with (out / "samples.csv").open() as handle:
        assert len(list(csv.reader(handle))) == 1 + 2 * SIM_RATE_HZ
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

