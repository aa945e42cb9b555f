"""The evidence of a starved simulated board (``hw.runqueue``) and the rule that reruns a
live walk on it (``tests/helpers/shared_machine.starved_board_explains``): which waits
for a CPU count inside a window, and that a late reply no wait accounts for is never
excused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
from helpers.shared_machine import starved_board_explains

from hw.p24.emulator import P24Emulator
from hw.runqueue import RunQueueWait, WaitWatch, paused_event, waited_within


def test_a_wait_counts_only_as_far_as_its_span_lies_inside_the_window():
    log = [paused_event(1.0, 1.010, 0.008)]  # 8 ms of a 10 ms span
    assert waited_within(log, 0.0, 2.0) == pytest.approx(0.008)
    assert waited_within(log, 1.004, 2.0) == pytest.approx(0.004)  # 4 ms may lie before
    assert waited_within(log, 1.0, 1.003) == pytest.approx(0.001)
    assert waited_within(log, 1.011, 2.0) == 0.0
    assert waited_within(log, 0.0, 0.999) == 0.0


def test_threads_of_one_process_wait_side_by_side_and_processes_one_after_the_other():
    log = [paused_event(1.0, 1.01, 0.006, pid=7, tid=7),
           paused_event(1.0, 1.01, 0.005, pid=7, tid=8),
           paused_event(1.01, 1.02, 0.002, pid=7, tid=8),
           paused_event(1.0, 1.02, 0.003),  # the board's own log: no pid
           {"event": "pulse", "monotonic_s": 1.005}]
    assert waited_within(log, 0.0, 2.0) == pytest.approx(0.007 + 0.003)


def test_a_late_reply_is_excused_only_when_the_waits_cover_its_excess():
    log = [paused_event(1.0, 1.02, 0.015)]
    assert "train 1" in starved_board_explains([("train 1", 1.0, 1.03, 0.012)], log)
    assert starved_board_explains([("train 1", 1.0, 1.03, 0.016)], log) == ""
    # one late reply nothing accounts for: the run is the test's to judge
    assert starved_board_explains([("train 1", 1.0, 1.03, 0.012),
                                   ("train 2", 3.0, 3.03, 0.001)], log) == ""
    assert starved_board_explains([], log) == ""


def test_the_kernel_counts_a_threads_wait_and_a_watch_ends_with_its_process():
    own = RunQueueWait()
    first = own.seconds()
    assert first is not None and own.seconds() >= first
    own.close()
    assert own.seconds() is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    watch = WaitWatch(child.pid)
    child.wait()
    assert isinstance(watch.stop(), list)  # the sampler ended with the process
    assert RunQueueWait("/proc/nonexistent/schedstat").seconds() is None


class _Counter:
    def __init__(self, values):
        self.values = iter(values)

    def seconds(self):
        return next(self.values)


def test_the_p24_emulator_logs_its_own_waits_for_a_cpu():
    log = io.StringIO()
    emulator = P24Emulator(log)
    try:
        emulator._waited = _Counter([0.0106, 0.0102])
        emulator._log_wait(5.0, 0.010)  # 0.6 ms: logged
        emulator._log_wait(5.1, 0.010)  # 0.2 ms: not
    finally:
        emulator.close()
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(e["event"], e["since_s"], e["waited_ms"]) for e in events] == [
        ("paused", 5.0, 0.6)]


def test_the_p24_emulator_logs_a_select_the_kernel_held(monkeypatch):
    """A ``select`` back long after its timeout while the serving thread did not wait
    for a CPU (the kernel's tty worker had not run: docs/hardware.md, "Bytes late on a
    loaded machine") is logged as ``held``, at least the overrun; one back on time is
    not."""
    import hw.p24.emulator as emulator_module

    def held_select(readable, writable, errors, timeout):
        time.sleep(timeout + 0.1)  # as the kernel did for 317 ms in __flush_work
        return [], [], []

    log = io.StringIO()
    emulator = P24Emulator(log)
    try:
        emulator._waited = _Counter([0.0] * 4)  # never on a run queue
        monkeypatch.setattr(emulator_module.select, "select", held_select)
        emulator._serve_once()
        monkeypatch.setattr(emulator_module.select, "select",
                            lambda r, w, x, timeout: time.sleep(timeout) or ([], [], []))
        emulator._serve_once()
    finally:
        emulator.close()
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    held = [e for e in events if e["event"] == "held"]
    assert len(held) == 1, events
    assert 99.9 <= held[0]["held_ms"] < 250.0  # the sleep beyond the timeout, and little more
    assert held[0]["monotonic_s"] - held[0]["since_s"] >= 0.1
