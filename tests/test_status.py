"""The status line: one sink in the log writer process for ``fes sim --realtime`` and
``fes run``; a live trial's loop publishes its link, cadence and watchdog figures into
shared memory and never writes to the terminal itself."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.shared_machine import rerun_after_heartbeat_faults

from controller.commands.common import EXIT_WATCHDOG_FAULT
from controller.config import load_config
from controller.detect.config import build_detector
from controller.detect.weakheel import WeakHeelCheck
from controller.events import DetectedEvent, Event
from controller.safety import Watchdog
from controller.sharedmem import SharedSnapshot
from controller.trial.live import COMPILE_NOTICE, LinkLimits, LiveStatus, run_live_trial
from controller.trial.recorder import TrialRecorder
from controller.trial.status import LIVE_FIELDS, StatusLine, live_snapshot
from hw.board import Board, BoardFault, BoardRequirements
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import FirmwareSettings

FORK = multiprocessing.get_context("fork")


def test_a_snapshot_is_read_whole_only_once_published_and_across_a_fork():
    snapshot = SharedSnapshot(("a", "b"))
    assert snapshot.read() is None  # nothing published yet

    def publish() -> None:
        values = snapshot.begin()
        values[0], values[1] = 1.5, 2.5
        snapshot.end()

    child = FORK.Process(target=publish)
    child.start()
    child.join()
    assert snapshot.read() == {"a": 1.5, "b": 2.5}
    values = snapshot.begin()
    values[0] = 9.0  # half an update: never handed out
    assert snapshot.read(wait_s=0.001) is None
    snapshot.end()
    assert snapshot.read() == {"a": 9.0, "b": 2.5}


def test_a_snapshot_read_during_a_paused_update_waits_for_it():
    """The writer thread may be switched away between ``begin`` and ``end`` (here for
    20 ms): the reader gets the finished update, not None (a status line once read
    "link --" mid-trial that way)."""
    snapshot = SharedSnapshot(("a",))
    snapshot.begin()[0] = 1.0
    snapshot.end()
    started = threading.Event()

    def slow_update() -> None:
        values = snapshot.begin()
        started.set()
        time.sleep(0.02)
        values[0] = 2.0
        snapshot.end()

    writer = threading.Thread(target=slow_update)
    writer.start()
    started.wait()
    assert snapshot.read() == {"a": 2.0}
    writer.join()


def idle_live_status() -> tuple[LiveStatus, Board, Watchdog, TrialRecorder]:
    config = load_config()
    board = Board("loop://", BoardRequirements(config.safety, 500.0))  # never connected
    watchdog = Watchdog(board, config.safety)
    recorder = TrialRecorder(10)
    detector = build_detector(config.detector, 500.0)
    return LiveStatus(board, watchdog, recorder, detector), board, watchdog, recorder


def test_live_status_publishes_cadence_watchdog_and_link():
    status, board, watchdog, recorder = idle_live_status()
    status.publish()
    live = status.snapshot.read()
    assert live is not None and np.isnan(live["cadence_steps_per_min"])
    assert live["link_state"] == 0 and np.isnan(live["board_rtt_last_ms"])
    # Strides of 1.0 s, then four of 1.2 s: the cadence follows the last four strides.
    strikes = [0.0, 1.0, 2.2, 3.4, 4.6, 5.8]
    recorder.detected.extend(DetectedEvent(Event.HEEL_STRIKE, t + 0.05, t) for t in strikes)
    recorder.detected.append(DetectedEvent(Event.TOE_OFF, 6.5, 6.4))
    board.stats.frames_in, board.stats.bad_frames, board.stats.board_rtt_last_ms = 3000, 4, 0.7
    watchdog.emergency_stop("test")
    board.fault = BoardFault("link", "link lost: unplugged", 0.0, 0.0)
    status.publish()
    live = status.snapshot.read()
    assert live is not None
    assert live["cadence_steps_per_min"] == pytest.approx(100.0)
    text = render_one_line(status.snapshot)
    assert "cadence 100 steps/min" in text
    assert "watchdog faults 1 latched emergency_stop" in text
    assert "link link fault, rtt 0.7 ms, frames in 3000 out 0 bad 4 lost 0" in text


def render_one_line(live: SharedSnapshot) -> str:
    stream = io.StringIO()
    line = StatusLine(stream, interval_s=0.5, live=live)
    n = 60  # 0.6 s at 100 Hz: one line, at 0.5 s
    line.write(0, {
        "time_s": np.arange(n) * 0.01, "phase": np.full(n, 3.0), "stim_on": np.zeros(n),
        "amplitude_ma": np.zeros(n), "lateness_us": np.full(n, 5.0),
        "latency_us": np.full(n, 40.0), "skipped_periods": np.zeros(n, dtype=np.int64),
    })
    (text,) = stream.getvalue().splitlines()
    assert text.startswith("t     0.5 s | swing     | stim off     | cadence")
    assert text.endswith("lateness us median 5 p99 5 max 5 | latency us p99 40 | "
                         "misses 0 (0.000 %)")
    return text


def test_a_clock_that_does_not_measure_lateness_is_not_shown_as_on_time():
    """A loop paced by its source (the board's stream, a replay) has NaN lateness rows:
    the line says lateness is not measured on that clock, and shows no misses (every
    sample is served), rather than "lateness us median 0 ... misses 0"."""
    stream = io.StringIO()
    line = StatusLine(stream, interval_s=0.5, clock="replay")
    n = 60
    line.write(0, {
        "time_s": np.arange(n) * 0.01, "phase": np.full(n, 3.0), "stim_on": np.zeros(n),
        "amplitude_ma": np.zeros(n), "lateness_us": np.full(n, np.nan),
        "latency_us": np.full(n, 40.0), "skipped_periods": np.zeros(n, dtype=np.int64),
    })
    (text,) = stream.getvalue().splitlines()
    assert text.endswith("| stim off     | lateness not measured (replay clock) | "
                         "latency us p99 40")


def test_the_line_says_so_when_a_live_trial_has_published_nothing_yet():
    assert "cadence -- | watchdog -- | link --" in render_one_line(live_snapshot())


def test_a_status_line_refuses_a_snapshot_of_other_fields():
    with pytest.raises(ValueError, match="LIVE_FIELDS"):
        StatusLine(io.StringIO(), live=SharedSnapshot(LIVE_FIELDS[:3]))


class StampedStream(io.TextIOBase):
    """A terminal stand-in that appends every write to a file, with the process and
    thread that wrote it; each write can take ``delay_s`` (a slow terminal)."""

    def __init__(self, path: Path, delay_s: float = 0.0) -> None:
        self.path = path
        self.delay_s = delay_s

    def write(self, text: str) -> int:
        time.sleep(self.delay_s)
        record = {"pid": os.getpid(), "thread": threading.get_ident(), "text": text}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        return len(text)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()]


class Untouchable(io.TextIOBase):
    """Standard output or error of the test process: any write fails."""

    def write(self, text: str) -> int:
        raise AssertionError(f"the trial's process wrote {text!r}")


def live_trial(tmp_path: Path, delay_s: float = 0.0):
    """A 2.2 s live trial against an emulator on a thread, its status lines into a
    ``StampedStream``: the result and the stream. A trial a heartbeat fault ended (this
    process off the CPU on a loaded machine, the watchdog right: seen once in a full run
    at load 2.3, 6 Dec 2026) is run again with a fresh stream
    (``rerun_after_heartbeat_faults``); any other ending is the test's to judge."""
    config = load_config(overrides={"loop": {"duration_s": 2.2}})

    def attempt(k: int):
        stream = StampedStream(tmp_path / f"status{k}.jsonl", delay_s=delay_s)
        emu, finish = serve_in_thread(
            EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=400)))
        try:
            result = run_live_trial(config, emu.path, tmp_path / f"live{k}", stream,
                                    LinkLimits(0.3, 0.3))
        finally:
            finish()
        code = EXIT_WATCHDOG_FAULT if result.stopped_by == "watchdog_fault" else 0
        return code, result.message, (result, stream)

    return rerun_after_heartbeat_faults(attempt)[2]


def test_the_loop_thread_never_writes_the_status_line_the_writer_process_does(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(sys, "stdout", Untouchable())
    monkeypatch.setattr(sys, "stderr", Untouchable())
    result, stream = live_trial(tmp_path)
    monkeypatch.undo()
    assert result.stopped_by == "duration"
    records = stream.records()
    # On a cold numba cache (this test alone after an install) the trial's process says
    # it is compiling, before the board is asked anything: that is its only text.
    ours = "".join(r["text"] for r in records if r["pid"] == os.getpid()).splitlines()
    assert all(line == COMPILE_NOTICE or line.startswith("compiled in ") for line in ours)
    records = [r for r in records if r["pid"] != os.getpid()]  # no thread of this process
    assert len({r["pid"] for r in records}) == 1
    lines = "".join(r["text"] for r in records).splitlines()
    assert [line[:12] for line in lines] == ["t     1.0 s ", "t     2.0 s "]
    for line in lines:
        # The board's stream is the clock: lateness is not measured, not "0".
        assert "| link ok" in line and "lateness not measured (board clock) |" in line
        assert "lateness us" not in line and "misses" not in line
        assert re.search(r"\| latency us p99 \d+$", line)
        frames_in = int(re.search(r"frames in (\d+)", line).group(1))  # type: ignore[union-attr]
        assert frames_in > 0


def test_a_slow_terminal_does_not_slow_the_live_loop(tmp_path):
    # Each status line takes 0.6 s to write. Had the loop waited for one, it would have
    # fallen 300 samples behind the board and ended the trial as a host fault (0.3 s).
    result, stream = live_trial(tmp_path, delay_s=0.6)
    assert result.stopped_by == "duration", result.message
    assert result.summary["board"]["link"]["max_backlog_samples"] < 100
    lines = "".join(r["text"] for r in stream.records()).splitlines()
    assert len(lines) == 2 and all("| link ok" in line for line in lines)


FIXED_WEAK = ("heel: BARELY LOADS (99 % under 30 N): heel strikes missed, move the sensor "
              "under the heel or lower detector.heel.force.contact_force_n")
FOLLOWED_WEAK = ("heel: BARELY LOADS (99 % under 30 N, contact level followed down to "
                 "12 N): some heel strikes missed or late, move the sensor under the heel")


@pytest.mark.parametrize(("peak_n", "floor_n", "said"), [
    (30.0, None, FIXED_WEAK), (500.0, None, None),
    (30.0, 12.0, FOLLOWED_WEAK), (500.0, 12.0, None),
])
def test_live_status_says_when_the_heel_force_barely_loads(peak_n, floor_n, said):
    """A heel force sensor in a live trial: once its first second of readings (20 s in a
    trial) shows a heel that barely loads, 99 % under 3 times the 20 N contact force,
    the line says so, with the figure and what to do; a loaded heel adds nothing. With
    the contact level following the heel (down to 12 N, the shipped force sensor), the
    line says that, and that the sensor belongs under the heel; lowering the contact
    force, the fixed level's cure, is not offered."""
    config = load_config()
    board = Board("loop://", BoardRequirements(config.safety, 100.0))  # never connected
    recorder = TrialRecorder(300)
    status = LiveStatus(board, Watchdog(board, config.safety), recorder,
                        build_detector(config.detector, 100.0),
                        WeakHeelCheck(20.0, 100.0, window_s=1.0, floor_n=floor_n))
    t = np.arange(150) * 0.01
    recorder.table[recorder.index["heel_force_n"], :150] = peak_n * np.sin(np.pi * t) ** 2
    recorder.count = 150
    status.publish()
    text = render_one_line(status.snapshot)
    if said is None:
        assert "heel:" not in text
    else:
        assert f"| {said} |" in text, text
