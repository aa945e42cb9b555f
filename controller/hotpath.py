"""Keeping surprises out of the loop's hot path.

What can make one sample of an otherwise fast loop late, and what this module does:

* **The JIT.** A numba kernel compiles (or loads its cache) on its first call, which
  takes from tens of milliseconds to seconds. ``warm_up`` calls ``warm_up()`` on every
  stage that has one (``WarmsUp``) before the loop starts; each stage runs its kernels
  once on scratch copies of its state, with the argument types of the loop, so the
  first sample finds them compiled and the trial itself is unchanged.
* **The garbage collector.** A cyclic collection walks every tracked object and can take
  milliseconds. ``gc_paused`` freezes what exists (moves it out of the collector's
  reach), disables automatic collection for the loop and re-enables it afterwards. The
  loop creates no reference cycles (a test checks it), so nothing accumulates. A first
  run's compilation runs without the collector (``collector_off``): numba's compiler
  keeps it busy for a tenth of the compile time. Its frames are laid out in one large
  chunk of the interpreter's frame stack (``in_one_chunk``), which the compiler's
  recursion would otherwise map and unmap from the OS hundreds of thousands of times.
* **The operating system.** ``realtime_section`` optionally pins the calling thread to
  one CPU (``os.sched_setaffinity``) and gives it a real-time priority
  (``SCHED_FIFO`` through ``os.sched_setscheduler``), so that other processes cannot
  preempt it. It always lowers the thread's timer slack to 1 ns (Linux ``prctl``), so
  that a sleep ends when asked and not up to 50 us later, and the interpreter's switch
  interval to 100 us, so that another Python thread holding the GIL must let go of it
  that soon once the loop wants it (helpers that can live in a process should: see
  ``controller.trial.writer``). Whatever the OS refuses is reported in a plain sentence
  and the loop runs without it; everything is restored on exit. Pinning and priority
  are per thread on Linux and inherited by threads and processes started inside the
  section, so helpers (the log writer process) start before it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Protocol, TextIO, TypeVar, runtime_checkable

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
_LOOP_TIMER_SLACK_NS = 1
#: Longest time another Python thread may keep the GIL once the loop wants it back
#: (CPython's default is 5 ms, five whole periods at 1 kHz).
LOOP_SWITCH_INTERVAL_S = 100e-6
RT_PRIORITY_HINT = (
    "needs root, CAP_SYS_NICE or an rtprio limit (e.g. '@fes - rtprio 80' in "
    "/etc/security/limits.conf)"
)


@runtime_checkable
class WarmsUp(Protocol):
    """A stage with numba kernels that can compile them before the first sample."""

    def warm_up(self) -> None:
        """Run every kernel once on scratch copies of the state; change nothing."""
        ...


def warm_up(*stages: object) -> float:
    """Warm up every stage that can; return the seconds it took."""
    start = time.perf_counter()
    for stage in stages:
        if isinstance(stage, WarmsUp):
            stage.warm_up()
    return time.perf_counter() - start


@contextlib.contextmanager
def announced_if_slow(
    notes: TextIO | None, after_s: float, text: str, done: str = "done"
) -> Iterator[None]:
    """Write ``text`` (a line) to ``notes`` if the block is still running after
    ``after_s``, and when it ends, ``done`` with the seconds it took (``compiled in
    7.9 s``): compiling the kernels on a first run takes many seconds, and a command
    that prints nothing meanwhile looks hung. Quick blocks print nothing."""
    if notes is None:
        yield
        return
    announced = threading.Event()
    lock = threading.Lock()

    def announce() -> None:
        with lock:
            if not announced.is_set():
                announced.set()
                notes.write(text + "\n")
                notes.flush()

    timer = threading.Timer(after_s, announce)
    timer.daemon = True
    start = time.perf_counter()
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            if announced.is_set():
                notes.write(f"{done} in {time.perf_counter() - start:.1f} s\n")
                notes.flush()
            announced.set()  # a timer that fires now stays silent


@contextlib.contextmanager
def collector_off(freeze_after: bool = False) -> Iterator[None]:
    """No cyclic garbage collection inside the block (memory is still freed by reference
    counting); the collector is on again after it if it was before. With
    ``freeze_after`` what exists then is first frozen (``gc.freeze``: out of the
    collector's reach, unfrozen by ``gc_paused``), for a block after which the process
    ends: the collector, on again, would otherwise walk everything the block made at
    its first collection (0.3 s at the end of a first ``fes sim``).

    For numba's compilation of a first run (``controller.trial.compiled_loop``): its
    compiler makes objects by the million, many held long enough to reach the oldest
    generation, whose collections then walk them all again and again. In a cold ``fes
    sim`` compiled in one process the collector ran about 1,280 times for 1.27 s of 13 s
    of CPU (9 full collections of 0.1-0.17 s each; timed with ``gc.callbacks``); off, the
    run took 1.1-1.3 s less, with 97 MB more at its peak (359 against 262 MB) until
    the collector, on again, frees the cycles left."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if freeze_after:
                gc.freeze()
            gc.enable()


T = TypeVar("T")


def _call(function: Callable[[], T]) -> T:
    return function()


#: ``_call`` whose frame asks for room for 2**17 more values on its stack (1 MiB): the
#: interpreter gives it a 2 MiB chunk of its frame stack of its own (``in_one_chunk``).
_call_in_a_large_chunk: Callable[[Callable[[], T]], T] = types.FunctionType(
    _call.__code__.replace(co_stacksize=_call.__code__.co_stacksize + 2**17),
    _call.__globals__, "_call_in_a_large_chunk",
)


def in_one_chunk(function: Callable[[], T]) -> T:
    """``function()``, its Python frames laid out in one large chunk of the interpreter's
    frame stack.

    For numba's compilation of a first run (``controller.trial.compiled_loop``). CPython
    (3.11 and later) keeps its frames on a stack of 16 kB chunks, maps a chunk from the
    OS (``mmap``) when a call crosses into it and unmaps it as soon as the call returns
    below it; numba's compiler recurses back and forth across such boundaries, so a
    cold ``fes sim`` mapped and unmapped a chunk 280,000 times (``strace -f -c``: 280,026
    ``mmap`` of 16,384 bytes, 280,028 ``munmap``), each about 10 us of system time and
    page faults. Called through a frame that asks for 1 MiB of value stack (it uses a
    few entries), ``function`` starts with 1 MiB of that chunk free above it, more than
    the compiler's deepest recursion takes; the chunk is unmapped once, on return."""
    return _call_in_a_large_chunk(function)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block; restored afterwards."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _set_timer_slack(libc: ctypes.CDLL | None, slack_ns: int) -> int | None:
    """Set this thread's timer slack; return the previous one (None where unsupported)."""
    if libc is None:
        return None
    previous = int(libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0))
    if previous < 0 or libc.prctl(_PR_SET_TIMERSLACK, slack_ns, 0, 0, 0) != 0:
        return None
    return previous


def _pin(cpu_index: int, notes: list[str]) -> set[int] | None:
    """Pin this thread to ``cpu_index``; return the previous CPU set, None if not done."""
    if not hasattr(os, "sched_setaffinity"):
        notes.append(f"CPU {cpu_index} not pinned: this OS has no sched_setaffinity")
        return None
    previous = os.sched_getaffinity(0)
    if cpu_index not in previous:
        notes.append(
            f"CPU {cpu_index} not pinned: this process may use CPUs {sorted(previous)}"
        )
        return None
    try:
        os.sched_setaffinity(0, {cpu_index})
    except OSError as err:
        notes.append(f"CPU {cpu_index} not pinned: {err.strerror}")
        return None
    notes.append(f"pinned to CPU {cpu_index}")
    return previous


def _raise_priority(priority: int, notes: list[str]) -> tuple[int, int] | None:
    """SCHED_FIFO at ``priority``; return the previous (policy, priority), None if not done."""
    if not hasattr(os, "sched_setscheduler"):
        notes.append(f"real-time priority {priority} not set: this OS has no SCHED_FIFO")
        return None
    previous = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as err:
        notes.append(
            f"real-time priority {priority} not set ({err.strerror}): SCHED_FIFO "
            f"{RT_PRIORITY_HINT}; the loop runs at normal priority"
        )
        return None
    notes.append(f"SCHED_FIFO priority {priority}")
    return previous


@contextlib.contextmanager
def realtime_section(cpu_index: int = -1, priority: int = 0) -> Iterator[list[str]]:
    """Tune the calling thread for the loop; yield what was done or refused, in words.

    ``cpu_index`` -1 leaves the affinity alone; ``priority`` 0 leaves the scheduling
    policy alone (1-99 asks for ``SCHED_FIFO`` at that priority).
    """
    notes: list[str] = []
    libc = _libc()
    slack = _set_timer_slack(libc, _LOOP_TIMER_SLACK_NS)
    notes.append("timer slack 1 ns" if slack is not None else "timer slack unchanged")
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL_S)
    affinity = _pin(cpu_index, notes) if cpu_index >= 0 else None
    policy = _raise_priority(priority, notes) if priority > 0 else None
    try:
        yield notes
    finally:
        if policy is not None:
            os.sched_setscheduler(0, policy[0], os.sched_param(policy[1]))
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
        sys.setswitchinterval(switch_interval)
        if slack is not None:
            _set_timer_slack(libc, slack)
