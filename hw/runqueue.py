"""How long a simulated board waited for a CPU: the kernel's own count, not a guess.

A board emulator or a firmware harness runs as an ordinary process on the host, so a
loaded machine can keep it off the CPU while bytes wait for it: its output is then late
though neither the host nor the board's logic was (a real board is never descheduled).
Linux counts, for every thread, the time it spent runnable on a run queue without a CPU
(``/proc/<pid>/task/<tid>/schedstat``, second field, nanoseconds; ``CONFIG_SCHED_INFO``),
and adds a wait only when it ends (the thread gets the CPU back). A serving loop reading
its own count before and after it sleeps reads it while it runs, so no wait is under way
then: each wait the count grew by lies between the two reads. A thread sampling another
thread (``SampledThread``) may read while that thread waits: the wait is counted at the
next read, and began before the earlier one, by at most the growth, and after the read
before that one where the thread got a CPU twice in between (``SampledThread`` dates it
so). Either records ``paused`` events (``since_s`` .. ``monotonic_s``, at least
``waited_ms`` of it spent waiting for a CPU), and a test can ask how much of a late reply
the board's own starvation accounts for (``waited_within``).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

#: The calling thread's schedstat (the link is resolved when it is opened).
THIS_THREAD = "/proc/thread-self/schedstat"
#: Waits shorter than this are not logged (an idle core wakes a thread in microseconds).
LOG_WAIT_S = 0.0005
#: How often ``WaitWatch`` samples another process's threads.
SAMPLE_S = 0.001


class RunQueueWait:
    """A thread's or process's total run-queue wait so far, read from ``path`` (a
    schedstat file); ``seconds`` returns None where the kernel does not count it or the
    process has ended."""

    def __init__(self, path: str = THIS_THREAD) -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def seconds(self) -> float | None:
        read = self.read()
        return read[0] if read is not None else None

    def read(self) -> tuple[float, int] | None:
        """The wait so far (s) and, from the same read, how many times the thread has got
        a CPU (the file's third field, ``pcount``, one more at every arrival; 0 where
        absent, and then no wait is dated by it)."""
        if self._fd is None:
            return None
        try:
            fields = os.pread(self._fd, 128, 0).split()
        except OSError:  # the process has ended
            return None
        if len(fields) < 2:
            return None
        return int(fields[1]) / 1e9, int(fields[2]) if len(fields) >= 3 else 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def paused_event(since_s: float, until_s: float, waited_s: float, **where: int) -> dict:
    """A ``paused`` log event: between ``since_s`` and ``until_s`` (monotonic) a thread
    waited ``waited_s`` for a CPU (``where``: its ``pid`` and ``tid`` when another
    process's threads are watched)."""
    return {"event": "paused", "monotonic_s": until_s, "since_s": since_s,
            "waited_ms": round(waited_s * 1e3, 3), **where}


#: A ``select`` back this much after its timeout, beyond the calling thread's own wait
#: for a CPU, is logged as ``held`` (``held_event``).
HELD_LOG_S = 0.02


def held_event(since_s: float, until_s: float, timeout_s: float, waited_s: float) -> dict | None:
    """A ``held`` log event for a ``select`` (or ``poll``) asked at ``since_s`` to wait
    at most ``timeout_s`` and back at ``until_s``, while its thread waited ``waited_s``
    for a CPU: the time beyond both, from ``HELD_LOG_S`` on (None below it). Only the
    kernel keeps a ``select`` past its own timeout with the thread not on a run queue: on
    a pty it waits inside the kernel (``__flush_work``) for the tty worker to push the
    bytes to the line discipline (docs/hardware.md, "Bytes late on a loaded machine").
    The figure is a lower bound: a hold shorter than the timeout is not seen."""
    held = until_s - since_s - timeout_s - waited_s
    if held < HELD_LOG_S:
        return None
    return {"event": "held", "monotonic_s": until_s, "since_s": since_s,
            "held_ms": round(held * 1e3, 3)}


#: The events ``machine_delay_within`` counts, and the fields that may hold the delay
#: (the first present): a ``paused`` wait for a CPU (``waited_ms``, this module's count)
#: or the board emulator's clock gap beyond its normal step (``paused_ms``,
#: ``hw.emulator.BoardEmulator.board_time_s``: a wait for a CPU or a held ``select``);
#: a ``held`` select (``held_ms``).
MACHINE_DELAYS = {"paused": ("waited_ms", "paused_ms"), "held": ("held_ms",)}


def waited_within(log: Iterable[dict], start_s: float, end_s: float) -> float:
    """Seconds the logged process(es) provably waited for a CPU between ``start_s`` and
    ``end_s``: each ``paused`` event's wait less the part of its span outside the window
    (as if the wait had fallen there); per process the thread that waited longest
    (threads wait side by side), summed over processes (which a reply passes one after
    the other). So the figure never overstates the waits."""
    return _within(log, start_s, end_s, {"paused": ("waited_ms",)})


def machine_delay_within(log: Iterable[dict], start_s: float, end_s: float) -> float:
    """``waited_within`` counting the kernel's holds too (``held`` events, each the
    part of a ``select`` beyond its timeout and its thread's wait for a CPU, so disjoint
    from that thread's ``paused`` waits) and the board emulator's clock gaps
    (``paused`` with ``paused_ms``, which both make): seconds the machine provably
    delayed the logged process(es) between ``start_s`` and ``end_s``, never overstated."""
    return _within(log, start_s, end_s, MACHINE_DELAYS)


def _within(log: Iterable[dict], start_s: float, end_s: float,
            kinds: Mapping[str, tuple[str, ...]]) -> float:
    per_thread: dict[tuple[int | None, int | None], float] = {}
    for event in log:
        field = next((f for f in kinds.get(event["event"], ()) if f in event), None)
        if field is None or "since_s" not in event:
            continue
        since, until = event["since_s"], event["monotonic_s"]
        outside = max(0.0, start_s - since) + max(0.0, until - end_s)
        key = (event.get("pid"), event.get("tid"))
        per_thread[key] = per_thread.get(key, 0.0) + max(0.0, event[field] / 1e3 - outside)
    per_process: dict[int | None, float] = {}
    for (pid, _), waited in per_thread.items():
        per_process[pid] = max(per_process.get(pid, 0.0), waited)
    return sum(per_process.values())


#: How many times the thread must have got a CPU between the two reads before the
#: previous one for a wait under way at the previous read to have begun after the first
#: of them: one arrival may be torn from its wait by the read (``SampledThread``).
ARRIVALS_BETWEEN = 2


class SampledThread:
    """Another thread's waits for a CPU, sampled from outside through its schedstat file
    (``path``): ``sample`` returns a ``paused`` event for the growth since the previous
    read, from ``LOG_WAIT_S`` on.

    The kernel adds a wait when it ends (``sched_info_arrive`` in
    ``kernel/sched/stats.h``, when the thread gets a CPU), so a wait under way at a read
    is counted at the next one though it began before: every wait in a growth ``g``
    ended after the previous read (stamped before it, ``t0``) and by this read (stamped
    after it, ``t1``), so it began at or after ``t0 - g``; the event spans ``t0 - g`` ..
    ``t1``. Dated from ``t0`` alone, a wait under way at a read fell partly before its
    event and ``waited_within`` overstated a short window: a sampler at nice 0 on one
    CPU with the thread and two busy loops credited 245.5-314.3 ms in 160 10 ms windows
    where the thread's own log put 204.1-300.2 ms, 23-29 windows over (by up to 5.7-7.1
    ms); dated so, none over, 121.7-141.7 ms credited of 233.0-245.2 (3 runs each,
    tests/test_ppoll_waits.py, docs/hardware.md).

    Tighter where the thread got a CPU between the two reads before the previous one: a
    wait is counted from the thread's enqueue (``sched_info_enqueue``) to its arrival on
    a CPU (``sched_info_arrive``, which also adds one to schedstat's third field,
    ``pcount``), so a wait under way at the previous read began after the thread's last
    arrival before that read. If ``pcount`` grew between the read before (stamped
    ``t-1``) and the previous one, that arrival came after ``t-1``, and the event spans
    from ``max(t0 - g, t-1)``. It takes a growth of ``ARRIVALS_BETWEEN`` (2), not 1: the
    kernel prints the fields without a lock, so one read may see an arrival's ``pcount``
    without its wait (then counted in the next growth though it began before); arrivals
    are a run and a wait apart, so two cannot both fall between one read's loads,
    nanoseconds apart, and the earlier one bounds every wait after it. A move to another
    CPU adds the part of a wait so far to the count without an arrival
    (``sched_info_dequeue``): no ``pcount`` growth is claimed from it. The arrivals come
    in the same read as the count, at no cost.

    Both datings from the same reads (sampler at nice 0 beside two busy loops on the
    thread's CPU, 160 10 ms windows, 3 runs each; docs/hardware.md): a 0.1 ms ``ppoll``
    loop's own waits credited 52.9-54.4 % by the growth alone, 74.9-77.1 % with the
    arrivals; working 0.5 ms after each sleep, 80.4-82.7 % and 81.1-84.1 %; never over
    the truth. Dated from ``t-1`` whatever the arrivals, 0-2 windows (sleeping) and 7-11
    (working) were over, by up to 0.3-1.1 ms (tests/test_ppoll_waits.py). Also
    tried and not kept: dating from ``t0`` where the previous read found the thread
    asleep in its ``stat`` file (3-4 points more credit when sleeping, none working, for
    a second ``/proc`` read: 5.6 us a sample instead of 1.7, and two microseconds-wide
    holes in the kernel's wake-up path; commits 22e1835 to 26f6f0f hold it).
    ``ended``: the thread has ended (or the kernel does not count its waits)."""

    def __init__(self, path: str) -> None:
        self._read_s = time.monotonic()  # before the read: see the class docstring
        self._counter = RunQueueWait(path)
        read = self._counter.read()
        self._waited, self._arrivals = read if read is not None else (0.0, 0)
        self.ended = read is None
        # The read before the previous one: its before-stamp and arrivals (None: none).
        self._earlier_s: float | None = None
        self._earlier_arrivals = 0

    def sample(self, **where: int) -> dict | None:
        """Read the count now: a ``paused`` event (``where``: the thread's ``pid`` and
        ``tid``) when it grew by ``LOG_WAIT_S`` or more since the previous read (shorter
        growths are dropped), else None; ``ended`` set when the thread has ended."""
        read_s = time.monotonic()
        read = self._counter.read()
        now = time.monotonic()
        if read is None:
            self.ended = True
            return None
        waited, arrivals = read
        grown = waited - self._waited
        event = (paused_event(self._began_by(grown), now, grown, **where)
                 if grown >= LOG_WAIT_S else None)
        self._earlier_s, self._earlier_arrivals = self._read_s, self._arrivals
        self._read_s, self._waited, self._arrivals = read_s, waited, arrivals
        return event

    def _began_by(self, grown: float) -> float:
        """The earliest a wait counted in a growth of ``grown`` since the previous read
        can have begun (the class docstring's two rules)."""
        since = self._read_s - grown
        if (self._earlier_s is not None
                and self._arrivals - self._earlier_arrivals >= ARRIVALS_BETWEEN):
            since = max(since, self._earlier_s)
        return since

    def close(self) -> None:
        self._counter.close()


class WaitWatch:
    """A thread sampling every thread of process ``pid`` each ``SAMPLE_S`` until the
    process ends or ``stop`` is called; each wait for a CPU of at least ``LOG_WAIT_S``
    between two samples becomes a ``paused`` event (``events``, and a JSON line in
    ``log_path`` if given). The sampler itself may be kept off the CPU: a sample then
    spans longer, and ``waited_within`` counts only what provably fell in a window."""

    def __init__(self, pid: int, log_path: Path | None = None) -> None:
        self.pid = pid
        self.events: list[dict] = []
        self._log_path = log_path
        self._running = True
        self._thread = threading.Thread(target=self._watch, name=f"waits-{pid}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        counters: dict[int, SampledThread] = {}
        log = self._log_path.open("w") if self._log_path is not None else None
        try:
            while self._running:
                try:
                    tids = [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
                except OSError:
                    break  # the process has ended
                for tid in tids:
                    self._sample(counters, tid, log)
                time.sleep(SAMPLE_S)
        finally:
            for thread in counters.values():
                thread.close()
            if log is not None:
                log.close()

    def _sample(self, counters: dict[int, SampledThread], tid: int,
                log: TextIO | None) -> None:
        if tid not in counters:
            thread = SampledThread(f"/proc/{self.pid}/task/{tid}/schedstat")
            if thread.ended:
                thread.close()
            else:
                counters[tid] = thread
            return
        event = counters[tid].sample(pid=self.pid, tid=tid)
        if event is not None:
            self.events.append(event)
            if log is not None:
                log.write(json.dumps(event) + "\n")

    def stop(self) -> list[dict]:
        """Stop sampling; every event logged."""
        self._running = False
        self._thread.join(timeout=1.0)
        return list(self.events)


def run_watched(command: Sequence[str], timeout_s: float,
                env: Mapping[str, str] | None = None) -> tuple[int, str, list[dict]]:
    """Run ``command`` to its end, its threads' waits for a CPU watched (``WaitWatch``):
    its exit code, its stderr and those waits (a live trial's host, beside its board)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    watch = WaitWatch(process.pid)
    try:
        _, stderr = process.communicate(timeout=timeout_s)
    finally:
        process.kill()
        waits = watch.stop()
    return process.returncode, stderr, waits
