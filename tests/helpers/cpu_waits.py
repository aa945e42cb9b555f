"""Every wait for a CPU of a test's live run: the test process's threads and those of all
its descendants (``fes run``, a board emulator, simavr's harness), and the kernel's
unbound workers that carry a pty's bytes, by the kernel's own count (``hw.runqueue``:
``/proc/<pid>/task/<tid>/schedstat``, the time each thread was runnable but had no CPU).

The watch runs in a process of its own (``TreeWatch``): a sampling thread inside the
test process would take the GIL from the live loop it watches (``fes run`` called in
process) and could itself cause the stall it is meant to prove. The count is
cumulative, so a sample every ``SAMPLE_S`` loses no wait; it only dates each one to
within the span between two samples, widened back by the wait itself for one under way
at the earlier sample, less where the thread's arrivals on a CPU show the wait began
later (``hw.runqueue.SampledThread``; ``paused`` events: ``since_s`` ..
``monotonic_s``, ``waited_ms`` of it runnable without a CPU), and
``hw.runqueue.machine_delay_within`` counts only what provably fell inside a window. A
watcher kept off the CPU itself dates its events more loosely, never overstates them.

Run as a script (by ``TreeWatch``): ``cpu_waits.py PID`` prints ``ready`` once it has
read every counter, then one JSON ``paused`` event a line, and ends after a last
sample when its standard input is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys

from hw.runqueue import SampledThread

#: How often the watcher samples every thread (s); 5 ms dates a wait well inside the
#: 30 ms silence of a heartbeat fault (``SHARED_MACHINE_SAFETY``) at a fifth of the
#: cost of ``hw.runqueue.SAMPLE_S``.
SAMPLE_S = 0.005
#: How often it looks for new processes and threads, in samples.
RESCAN_EVERY = 10


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (each thread's ``children`` file lists the
    processes that thread started; ``CONFIG_PROC_CHILDREN``)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # it has ended
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
            except OSError:
                continue
    return found


def threads(pids: list[int]) -> list[tuple[int, int]]:
    """Every (pid, tid) of ``pids`` still running."""
    found: list[tuple[int, int]] = []
    for pid in pids:
        try:
            found.extend((pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return found


def keep_up() -> str:
    """Let the watcher sample on time on a loaded machine, as far as it may: on every
    CPU (a test pinned to one passes its affinity on) and, where allowed (root, or
    ``CAP_SYS_NICE``), at the lowest real-time priority, above every ordinary process.
    A watcher kept off the CPU itself spreads each wait over a longer span, which
    ``machine_delay_within`` cannot place inside a fault's 30 ms: with twelve busy loops
    on the test's CPU, a watcher there placed 2.1 ms of a 46.3 ms silence (later runs
    with it raised found 0.0 ms of theirs: docs/protocol.md, not yet explained). Each
    sample takes it well under a millisecond. What it got, as text."""
    got = []
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
        got.append("every CPU")
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        got.append("SCHED_FIFO 1")
    return ", ".join(got) or "as started"


#: The pid under which the kernel's unbound workers' waits are logged: one "process",
#: its workers side by side (``hw.runqueue.machine_delay_within`` takes the longest).
KERNEL = 0


def kernel_workers() -> list[tuple[int, int]]:
    """The kernel's unbound workqueue threads (``kworker/u*``), as (``KERNEL``, pid):
    the tty worker among them pushes a pty's bytes to its reader (docs/hardware.md,
    "Bytes late on a loaded machine"), so while it waits for a CPU a board's samples
    wait with it, though no thread of the run is runnable."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().startswith("kworker/u"):
                        found.append((KERNEL, int(entry)))
            except OSError:
                continue
    return found


def watch(root: int, sample_s: float = SAMPLE_S) -> None:
    """Print a ``paused`` event for each wait for a CPU of at least
    ``hw.runqueue.LOG_WAIT_S`` of any thread of ``root`` or its descendants, or of the
    kernel's unbound workers (``kernel_workers``, logged with pid ``KERNEL``), until
    standard input closes (then one last sample)."""
    keep_up()
    counters: dict[tuple[int, int], SampledThread] = {}
    me = os.getpid()
    samples, closing = 0, False
    while True:
        if samples % RESCAN_EVERY == 0:
            for key in threads([p for p in descendants(root) if p != me]) + kernel_workers():
                if key not in counters:
                    pid, tid = key
                    thread = SampledThread(f"/proc/{pid or tid}/task/{tid}/schedstat")
                    if thread.ended:
                        thread.close()
                    else:
                        counters[key] = thread
            if samples == 0:
                print("ready", flush=True)
        samples += 1
        for key, thread in list(counters.items()):
            event = thread.sample(pid=key[0], tid=key[1])
            if thread.ended:
                thread.close()
                del counters[key]
            elif event is not None:
                print(json.dumps(event), flush=True)
        if closing:  # this was the sample after the close
            return
        readable, _, _ = select.select([sys.stdin], [], [], sample_s)
        closing = bool(readable) and not sys.stdin.read(1)


class TreeWatch:
    """The waits for a CPU of this process's threads and its descendants' from now until
    ``stop`` (a watcher process of its own: module docstring)."""

    def __init__(self, root: int | None = None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(os.getpid() if root is None else root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the CPU-wait watcher did not start")

    def stop(self) -> list[dict]:
        """End the watch after one last sample; every ``paused`` event it logged."""
        out, _ = self._process.communicate(timeout=30.0)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


if __name__ == "__main__":
    watch(int(sys.argv[1]))
