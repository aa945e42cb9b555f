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
from helpers.shared_machine import (
    EMULATOR_UNSEEN_S,
    emulator_silence_explains,
    silent_link,
    starved_board_explains,
)

from hw.p24.emulator import P24Emulator
from hw.runqueue import (
    RunQueueWait,
    WaitWatch,
    held_event,
    machine_delay_within,
    paused_event,
    waited_within,
)


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


def test_a_select_is_held_only_beyond_its_timeout_and_its_threads_wait_for_a_cpu():
    # asked for 50 ms, back after 366 ms, 0.5 ms on a run queue (docs/hardware.md)
    assert held_event(1.0, 1.366, 0.05, 0.0005) == {
        "event": "held", "monotonic_s": 1.366, "since_s": 1.0, "held_ms": 315.5}
    assert held_event(1.0, 1.069, 0.05, 0.0) is None  # 19 ms over: not logged
    assert held_event(1.0, 1.366, 0.05, 0.3) is None  # the wait for a CPU explains it


def test_the_machines_delay_counts_holds_beside_waits_but_waited_within_does_not():
    # one select of 50 ms back after 100 ms: 10 ms on a run queue, 40 ms held; another
    # back after 100 ms with no wait for a CPU: 50 ms held
    log = [paused_event(1.0, 1.1, 0.01), held_event(1.0, 1.1, 0.05, 0.01),
           held_event(2.0, 2.1, 0.05, 0.0), {"event": "pulse", "monotonic_s": 1.0}]
    assert waited_within(log, 0.0, 3.0) == pytest.approx(0.01)
    assert machine_delay_within(log, 0.0, 3.0) == pytest.approx(0.01 + 0.04 + 0.05)
    # 80 ms of the first span outside the window: neither its wait nor its hold counts
    assert machine_delay_within(log, 1.08, 3.0) == pytest.approx(0.05)


#: A P24 link timeout's board block (summary.json) declared at 10.3 s.
TIMED_OUT = {"fault": "the P24 did not answer the pulse within 300 ms",
             "fault_monotonic_s": 10.3}


def test_a_link_timeout_is_excused_only_by_a_hold_that_fills_its_silence():
    silence = silent_link(TIMED_OUT, 0.3, 0.05)
    assert silence == [("the link's silence", pytest.approx(10.0), 10.3, pytest.approx(0.25))]
    # the select asked for 50 ms at 9.99 s, back at 10.356 s: 315.5 ms held, 66 ms of the
    # span outside the silence, so 249.5 ms of it provably inside: one ms short
    near = held_event(9.99, 10.356, 0.05, 0.0005)
    assert starved_board_explains(silence, [near]) == ""
    # the ptylate run's hold, inside the silence: excused
    inside = held_event(10.0, 10.35, 0.05, 0.0)  # 300 ms held, 50 ms of it after 10.3
    assert "the link's silence" in starved_board_explains(silence, [inside])
    # too short, or outside the silence: the test judges the run
    assert starved_board_explains(silence, [held_event(10.0, 10.25, 0.05, 0.0)]) == ""
    assert starved_board_explains(silence, [held_event(9.0, 9.35, 0.05, 0.0)]) == ""
    assert starved_board_explains(silence, []) == ""
    # other endings are no link timeout
    assert silent_link({"fault": None, "fault_monotonic_s": None}, 0.3, 0.05) == []
    assert silent_link({**TIMED_OUT, "fault": "link lost: unplugged"}, 0.3, 0.05) == []


def test_a_late_product_is_judged_whatever_the_board_logged_elsewhere():
    """A driver 50 ms late to start a train (``late_product``) leaves the board's selects
    on time: no ``held`` in its window, so its 40 ms over the bound is judged, even with
    a hold elsewhere in the walk or a silence the hold does explain."""
    late = [("train 1's first pulse", 5.0, 5.051, 0.041)]
    elsewhere = held_event(8.0, 8.35, 0.05, 0.0)
    assert starved_board_explains(late, [elsewhere, paused_event(5.0, 5.05, 0.001)]) == ""
    inside = held_event(10.0, 10.35, 0.05, 0.0)
    assert starved_board_explains(late + silent_link(TIMED_OUT, 0.3, 0.05), [inside]) == ""


def emulator_gap(since_s: float, until_s: float) -> dict:
    """A ``paused`` event as ``fes board-emulator`` (``hw.emulator``, speed 1) logs a gap
    of its clock from ``since_s`` to ``until_s``."""
    gap_ms = (until_s - since_s) * 1e3
    return {"event": "paused", "monotonic_s": until_s, "since_s": since_s,
            "board_t_s": 3.0, "paused_ms": round(gap_ms - 10.0, 3), "late_ms": round(gap_ms, 3)}


def link_lost(tmp_path, at_s: float = 10.1, fault: str = "link lost: no frame from the "
              "board for 101 ms", stopped_by: str = "link_lost"):
    """A trial folder whose summary says the project's driver declared ``fault`` at
    ``at_s`` (100 ms link timeout)."""
    out = tmp_path / "live"
    out.mkdir(exist_ok=True)
    (out / "summary.json").write_text(json.dumps({
        "stopped_by": stopped_by, "board": {"fault": fault, "fault_monotonic_s": at_s,
                                            "fault_since_monotonic_s": at_s - 0.101}}))
    return out


def test_a_board_emulators_link_timeout_is_excused_only_by_gaps_that_fill_its_silence(
    tmp_path
):
    """The P24 rule (``silent_link``) on the board emulator's clock gaps: of the 100 ms
    before the fault, all but ``EMULATOR_UNSEEN_S`` (30 ms) must be gaps of the
    emulator, counted as far as they lie inside."""
    assert pytest.approx(0.03) == EMULATOR_UNSEEN_S
    out = link_lost(tmp_path)
    # held from 5 ms before the silence to 20 ms after the fault: 115 ms logged, 25 ms
    # of it outside, 90 ms inside
    assert "the link's silence" in emulator_silence_explains(out, [emulator_gap(9.995, 10.12)],
                                                             0.1)
    # 75 ms of gap, 65 ms counted: 5 ms short of the 70 ms
    assert emulator_silence_explains(out, [emulator_gap(10.0, 10.075)], 0.1) == ""
    # two gaps inside add up (40 + 40 ms counted)
    both = [emulator_gap(10.0, 10.05), emulator_gap(10.05, 10.1)]
    assert emulator_silence_explains(out, both, 0.1) != ""
    # outside the silence, or nothing logged: the test judges the run
    assert emulator_silence_explains(out, [emulator_gap(9.5, 9.7)], 0.1) == ""
    assert emulator_silence_explains(out, [], 0.1) == ""
    # a fault declared once the test's own fault began is the test's to judge
    gap = [emulator_gap(9.995, 10.12)]
    assert emulator_silence_explains(out, gap, 0.1, before_s=10.05) == ""
    assert emulator_silence_explains(out, gap, 0.1, before_s=10.2) != ""
    # other endings: no silence to explain
    acks = link_lost(tmp_path, fault="board stopped acknowledging: a command is 101 ms "
                     "without answer")
    assert emulator_silence_explains(acks, gap, 0.1) == ""
    assert emulator_silence_explains(link_lost(tmp_path, stopped_by="duration"), gap, 0.1) == ""
    assert emulator_silence_explains(tmp_path / "no trial", gap, 0.1) == ""


def test_a_board_emulators_gap_counts_as_the_machines_delay_not_as_a_wait_for_a_cpu():
    gap = emulator_gap(1.0, 1.1)  # 100 ms: 90 ms beyond the clock's normal step
    assert machine_delay_within([gap], 0.0, 2.0) == pytest.approx(0.09)
    assert machine_delay_within([gap], 1.05, 2.0) == pytest.approx(0.04)
    assert waited_within([gap], 0.0, 2.0) == 0.0


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
