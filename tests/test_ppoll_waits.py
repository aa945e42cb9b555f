"""openEMSstim's firmware counts its own waits for a CPU (``hw.ppoll_waits``, preloaded
by ``FirmwareProcess``), each located within a sleep of the harness, so a train's short
window is credited what the machine took from it there, however long the machine keeps
a watcher in another process (``hw.runqueue.WaitWatch``) off the CPU; and the same
wrapper's log, every wait at its own sleep, is the truth that watcher is checked
against: never credited where the thread did not wait."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.bench.openems_harness import FirmwareProcess
from hw import ppoll_waits
from hw.runqueue import LOG_WAIT_S, RunQueueWait, WaitWatch, paused_event, waited_within

#: How long two busy loops share the firmware's CPU.
BUSY_S = 1.5
#: The windows a wait must be located in: a train's offset bound is the firmware's
#: floor + 10 ms (tests/test_hw_openems_walk.py, ``TOLERANCE_MS``).
WINDOW_S = 0.010
#: The sampling thread's niceness: the lowest, so the busy loops keep it off the CPU.
WATCHER_NICE = 19
#: What an event may span beyond its wait: the harness sleeps at most 0.25 ms in one
#: ``ppoll``, and the firmware's loop between two is microseconds (a sampling watcher
#: sleeps 1 ms between samples, plus its own waits for the CPU).
SPAN_BEYOND_WAIT_S = 0.001
#: The share of the kernel's count the log must hold (short waits are added up until
#: they reach ``hw.runqueue.LOG_WAIT_S``: at most that much is left unlogged), and the
#: share credited inside the windows (added-up short waits may span a window's edge).
LOGGED_SHARE = 0.95
LOCATED_SHARE = 0.8


#: ``waited_ms`` is logged to the microsecond: a few events' rounding.
ROUNDING_S = 1e-5
#: How long the truth's program works between two sleeps in the test's second case (us).
WORK_US = 500
#: The C program whose waits are the truth (``tests/helpers/ppoll_loop.c``).
PPOLL_LOOP = Path(__file__).parent / "helpers" / "ppoll_loop.c"


def _at_most(events: list[dict], start_s: float, end_s: float) -> float:
    """The most a thread can have waited between ``start_s`` and ``end_s`` by its own
    ``paused`` events (each wait lies inside its event's span): per event its wait, or
    the part of its span inside the window if shorter."""
    return sum(min(e["waited_ms"] / 1e3, max(0.0, min(e["monotonic_s"], end_s)
                                              - max(e["since_s"], start_s)))
               for e in events)


def _located(events: list[dict], start_s: float, end_s: float) -> float:
    """The waits credited inside consecutive ``WINDOW_S`` windows from start to end."""
    edges = [start_s + k * WINDOW_S for k in range(int((end_s - start_s) / WINDOW_S) + 2)]
    return sum(waited_within(events, a, b) for a, b in itertools.pairwise(edges))


@contextlib.contextmanager
def _two_busy_loops(cpu: int) -> Iterator[None]:
    """Two shell busy loops on ``cpu`` while the block runs (killed by pid after it)."""
    busy = [subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", "while :; do :; done"])
            for _ in range(2)]
    try:
        yield
    finally:
        for loop in busy:
            loop.send_signal(signal.SIGKILL)
            loop.wait()


def _kept_off_its_cpu(pid: int, cpu: int) -> tuple[float, float, float]:
    """Two busy loops on ``cpu`` (where ``pid`` is pinned) for ``BUSY_S``: the window's
    start and end (monotonic) and the kernel's count of ``pid``'s waits for a CPU in it
    (s), read 0.1 s after the loops end, so that a wait still under way has ended and
    been read by every watcher."""
    kernel = RunQueueWait(f"/proc/{pid}/task/{pid}/schedstat")
    time.sleep(0.1)
    before, start_s = kernel.seconds(), time.monotonic()
    with _two_busy_loops(cpu):
        time.sleep(BUSY_S)
    time.sleep(0.1)
    end_s, after = time.monotonic(), kernel.seconds()
    kernel.close()
    assert before is not None and after is not None
    return start_s, end_s, after - before


def _watch_beside(pid: int, cpu: int, nice: int) -> WaitWatch:
    """A ``WaitWatch`` of ``pid`` whose sampling thread runs on ``cpu`` at ``nice``."""
    watch = WaitWatch(pid)
    watcher = next(t for t in threading.enumerate() if t.name == f"waits-{pid}")
    assert watcher.native_id is not None
    os.sched_setaffinity(watcher.native_id, {cpu})
    os.setpriority(os.PRIO_PROCESS, watcher.native_id, nice)
    return watch


def test_the_firmware_logs_each_wait_where_it_fell(openems_programs, tmp_path):
    """The firmware pinned to one CPU beside two busy loops for 1.5 s: its own log holds
    nearly all the kernel counted (never more), each wait of 1 ms or more spans at most
    1 ms beyond it, and most of it is credited inside 10 ms windows; more than a
    ``WaitWatch`` thread of this process on the same CPU, at the lowest priority, locates
    there (its samples then span tens of ms)."""
    if ppoll_waits.c_compiler() is None:
        pytest.skip("no C compiler: the firmware's waits are sampled from outside")
    cpu = max(os.sched_getaffinity(0))
    firmware = FirmwareProcess(openems_programs["head"], tmp_path)
    try:
        assert firmware.waits_by.startswith("logged by the firmware's own process")
        os.sched_setaffinity(firmware.pid, {cpu})
        watch = _watch_beside(firmware.pid, cpu, WATCHER_NICE)
        start_s, end_s, counted = _kept_off_its_cpu(firmware.pid, cpu)
        watched = watch.stop()
    finally:
        firmware.stop()
    own = [e for e in firmware.waits() if start_s <= e["since_s"] and e["monotonic_s"] <= end_s]
    logged = waited_within(own, start_s, end_s)
    located, watch_located = _located(own, start_s, end_s), _located(watched, start_s, end_s)
    # A wait of 1 ms or more came between two sleeps (shorter ones are added up).
    beyond = max((e["monotonic_s"] - e["since_s"] - e["waited_ms"] / 1e3 for e in own
                  if e["waited_ms"] >= 2e3 * LOG_WAIT_S), default=0.0)
    print(f"kernel {counted * 1e3:.1f} ms; own log {logged * 1e3:.1f} ms in {len(own)} events"
          f" (those of 1 ms or more span <= {beyond * 1e3:.2f} ms beyond it), "
          f"{located * 1e3:.1f} ms located in {WINDOW_S * 1e3:g} ms windows; "
          f"WaitWatch at nice {WATCHER_NICE} {watch_located * 1e3:.1f} ms located")
    assert counted >= 0.02, "the busy loops did not keep the firmware off its CPU"
    assert all(e.keys() == paused_event(0.0, 0.0, 0.0, pid=0, tid=0).keys() for e in own)
    assert {(e["pid"], e["tid"]) for e in own} == {(firmware.pid, firmware.pid)}
    assert LOGGED_SHARE * counted <= logged <= counted + 0.001
    assert beyond <= SPAN_BEYOND_WAIT_S
    assert located >= LOCATED_SHARE * counted
    assert watch_located < located


def test_a_program_without_a_dynamic_ppoll_is_watched_from_outside(tmp_path):
    """A program whose ``ppoll`` calls the preloaded wrapper would never see (here one
    that imports no ``ppoll`` at all) is refused by name, so ``FirmwareProcess`` falls
    back to sampling it rather than trusting an empty log."""
    if shutil.which("nm") is None:
        pytest.skip("no nm (binutils)")
    program = tmp_path / "no_ppoll"
    shutil.copy(shutil.which("true") or "/bin/true", program)
    with pytest.raises(ppoll_waits.ShimUnavailable, match="no_ppoll does not call ppoll"):
        ppoll_waits.build_for(program, tmp_path / "build")


@pytest.mark.parametrize("work_us", [0, WORK_US], ids=["sleeping", "working"])
def test_a_sampled_wait_is_never_credited_where_the_thread_did_not_wait(tmp_path, work_us):
    """A program sleeping 0.1 ms in ``ppoll`` over and over (``tests/helpers/
    ppoll_loop.c``), pinned to one CPU beside two busy loops for 1.5 s, logs each of its
    waits for a CPU at the sleep it fell in (the wrapper built to log every wait): the
    truth. A ``WaitWatch`` thread of this process at nice 0 on that CPU often reads the
    program's count while it waits; the wait is counted at the next read though it began
    before this one. In no 10 ms window (a train's) may ``waited_within`` credit the
    sampler's events more than the truth's allow there (``_at_most``): a late reply
    would be excused by a wait that fell elsewhere. (Dated from the earlier read, 23-29
    of 160 windows were over in 3 runs, by up to 5.7-7.1 ms.) The program also works
    ``WORK_US`` after each sleep ("working"): then a read nearly always finds it running
    or runnable, so a sampler that dated a growth from the earlier read fails here most
    of all (35-41 windows over in 3 runs, by up to 5.5-6.1 ms; 22-23 in the sleeping
    case), and so does one dating it from the read before that whatever the thread's
    arrivals on a CPU between them (7-11 windows over, by up to 0.9-1.1 ms; 0-2 sleeping)."""
    compiler = ppoll_waits.c_compiler()
    if compiler is None:
        pytest.skip("no C compiler for the wrapper and the program it is preloaded into")
    program = tmp_path / "ppoll_loop"
    subprocess.run([compiler, "-O0", "-U_FORTIFY_SOURCE", "-o", str(program), str(PPOLL_LOOP)],
                   check=True)
    log = tmp_path / "truth.jsonl"
    cpu = max(os.sched_getaffinity(0))
    child = subprocess.Popen(
        [str(program), str(work_us)],
        env={**os.environ, **ppoll_waits.environment(ppoll_waits.build(tmp_path, 1e-9), log)})
    try:
        os.sched_setaffinity(child.pid, {cpu})
        watch = _watch_beside(child.pid, cpu, 0)
        start_s, end_s, counted = _kept_off_its_cpu(child.pid, cpu)
        sampled = watch.stop()
    finally:
        child.kill()
        child.wait()
    truth = ppoll_waits.read_events(log)
    edges = [start_s + k * WINDOW_S for k in range(int((end_s - start_s) / WINDOW_S) + 1)]
    windows = list(itertools.pairwise(edges))
    credited = [waited_within(sampled, a, b) for a, b in windows]
    most = [_at_most(truth, a, b) for a, b in windows]
    over = [(c - m, f"{a - start_s:.2f} s: {c * 1e3:.2f} > {m * 1e3:.2f} ms")
            for (a, _), c, m in zip(windows, credited, most, strict=True) if c > m + ROUNDING_S]
    print(f"kernel {counted * 1e3:.1f} ms, the program's own log "
          f"{waited_within(truth, start_s, end_s) * 1e3:.1f} ms; in {len(windows)} "
          f"{WINDOW_S * 1e3:g} ms windows the sampler credited {sum(credited) * 1e3:.1f} ms, "
          f"the log {sum(waited_within(truth, a, b) for a, b in windows) * 1e3:.1f} ms; "
          f"{len(over)} windows over, by up to {max(over, default=(0.0, ''))[0] * 1e3:.2f} ms: "
          f"{[text for _, text in over[:5]]}")
    assert counted >= 0.02, "the busy loops did not keep the program off its CPU"
    assert waited_within(truth, start_s, end_s) >= LOGGED_SHARE * counted
    assert over == []
