"""A live run that a heartbeat fault (or a stalled loop) ended is run again only with proof
that the machine stalled it (``helpers.shared_machine.rerun_after_heartbeat_faults``):
the kernel's count of the run's threads' waits for a CPU, or the simulated board's own
log. A loop that hung on its own leaves no such wait, and its run goes to the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers.cpu_waits import TreeWatch
from helpers.shared_machine import RUNS, machine_stalled, rerun_after_heartbeat_faults

from controller.commands.common import EXIT_WATCHDOG_FAULT
from hw.runqueue import paused_event

HEARTBEAT = ("fes run: safety watchdog fault (heartbeat_timeout_ms: no command from the "
             "loop, 35.2 ms > 30 ms (wall clock)); outputs off (the board acknowledged "
             "STOP_ALL)")
STALLED = ("fes run: safety watchdog fault (ack_timeout_ms: no acknowledgement from the "
           "stimulator, 31.0 ms > 30 ms (wall clock); the loop has sent no command for "
           "24.0 ms either (a stalled loop)); outputs off")


def test_a_heartbeat_fault_nothing_proves_the_machines_is_not_run_again(capsys):
    """A loop that hung on its own (here: a sleep, not runnable) ends as a stalled
    machine would; no wait for a CPU accounts for it, so the test gets that run."""
    calls = []

    def run(k: int) -> tuple[int, str, None]:
        calls.append(k)
        time.sleep(0.04)  # the loop's own hang: asleep, not waiting for a CPU
        return EXIT_WATCHDOG_FAULT, HEARTBEAT, None

    code, err, _ = rerun_after_heartbeat_faults(run)
    assert calls == [0] and code == EXIT_WATCHDOG_FAULT and err == HEARTBEAT
    shown = capsys.readouterr().out
    assert "not run again: nothing proves the machine stalled it" in shown
    assert "17.6 ms needed" in shown  # half the 35.2 ms silence


def test_a_heartbeat_fault_the_boards_log_proves_the_machines_is_run_again(capsys):
    """The simulated board waited 25 ms for a CPU in the last 35 ms of the run: the
    loop had no samples to answer; the run is the machine's, run again, the figure
    printed."""
    def run(k: int) -> tuple[int, str, list[dict]]:
        if k:
            return 0, "", []
        now = time.monotonic()
        return EXIT_WATCHDOG_FAULT, HEARTBEAT, [paused_event(now - 0.035, now, 0.025)]

    code, _, _ = rerun_after_heartbeat_faults(run, board_log=lambda log: log)
    assert code == 0
    shown = capsys.readouterr().out
    assert "run 1 of 3 ended by" in shown and "25.0 ms delayed by the machine" in shown


def test_a_stalled_loop_is_judged_by_its_silence_not_its_ack_age():
    now = 100.0
    proof, _ = machine_stalled(STALLED, [paused_event(now - 0.024, now, 0.013)], now)
    assert "13.0 ms delayed" in proof  # over half of the loop's 24.0 ms
    proof, lacking = machine_stalled(STALLED, [paused_event(now - 0.024, now, 0.011)], now)
    assert proof == "" and "11.0 ms delayed" in lacking and "12.0 ms needed" in lacking


def test_a_wait_long_before_the_runs_end_proves_nothing():
    now = 100.0
    far = [paused_event(now - 9.0, now - 8.96, 0.035)]  # early in the run, not its ending
    assert machine_stalled(HEARTBEAT, far, now)[0] == ""
    assert machine_stalled(HEARTBEAT, [paused_event(now - 1.04, now - 1.0, 0.035)], now)[0]


def _pinned_spinners(cpu: int, n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
            for _ in range(n)]


@pytest.mark.skipif(not os.path.exists("/proc/thread-self/schedstat"),
                    reason="the kernel does not count waits for a CPU here")
def test_a_loop_kept_off_its_cpu_by_other_jobs_is_run_again(capsys):
    """The real count: this thread, pinned to one CPU beside three busy processes, is
    runnable but mostly without it for 300 ms; the watch in its own process sees it,
    and the fault it "caused" is run again."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)

    def run(k: int) -> tuple[int, str, None]:
        if k:
            return 0, "", None
        spinners = _pinned_spinners(cpu, 3)
        try:
            time.sleep(0.3)  # they have started
            os.sched_setaffinity(0, {cpu})
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                pass
        finally:
            os.sched_setaffinity(0, before)
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        return EXIT_WATCHDOG_FAULT, HEARTBEAT, None

    code, _, _ = rerun_after_heartbeat_faults(run)
    assert code == 0, capsys.readouterr().out
    assert "run 1 of 3 ended by" in capsys.readouterr().out


def test_the_watch_ends_with_a_last_sample_and_sees_child_processes():
    watch = TreeWatch()
    cpu = min(os.sched_getaffinity(0))
    spinners = _pinned_spinners(cpu, 2)
    time.sleep(0.5)
    for spinner in spinners:
        spinner.kill()
        spinner.wait()
    waits = watch.stop()
    pids = {spinner.pid for spinner in spinners}
    assert any(event["pid"] in pids and event["waited_ms"] > 0 for event in waits)


def test_every_run_a_proven_stall_ended_is_run_again_up_to_runs():
    def run(k: int) -> tuple[int, str, list[dict]]:
        now = time.monotonic()
        return EXIT_WATCHDOG_FAULT, HEARTBEAT, [paused_event(now - 0.035, now, 0.03)]

    with pytest.raises(AssertionError, match=f"ended all {RUNS} runs"):
        rerun_after_heartbeat_faults(run, board_log=lambda log: log)
