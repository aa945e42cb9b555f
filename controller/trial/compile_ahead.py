"""Compiling a first trial's kernels in two processes at once.

numba compiles one function at a time, in the process that calls it: the first
``fes sim`` after an install spent 10-13 s compiling on one core of this machine's two
while the other idled. The compiled loop's stages are separate trees of kernels (the
limb, the detector, the scheduler and the watchdog call few kernels in common), and
before numba compiles a kernel that a caller needs it looks in its on-disk cache. So on
a first run (the loop not in the cache yet), when a CPU would otherwise idle,
``LoopCompilation`` forks a helper process as soon as the trial's parts exist, before
the trial's files open:

1. the helper compiles some stages' kernels into the cache (with the argument types the
   loop calls them with) while this process compiles the others;
2. once this process's stages are in the cache it tells the helper, which then compiles
   the loop itself (finding every stage in the cache), while this process goes on with
   the trial's start: it opens the files (compiling their CSV kernels), compiles the
   ``later`` jobs (kernels the trial calls after its loop), then waits for the helper
   and loads the loop from the cache.

The machine code is the same whichever process compiled it (same source, types and
options), so the trial is the same bit for bit (``tests/test_sim_pinned.py``). The wall
time of a first run drops; the CPU time rises a little (each process compiles the few
helpers two stages share), which is why an overloaded machine compiles in one process
as before (and a one-CPU machine always does: ``spare_cpu``).

The two processes write numba's cache at once. numba writes each file whole (a
temporary file renamed over it) and rereads a kernel's index before adding to it; the
kernels both compile get the same entry from either. Whatever the helper has not cached
(it failed, or was killed), this process compiles as it always did. The helper never
outlives its use: this process kills it when it stops waiting for it (an error, Ctrl-C),
and on Linux the kernel kills it if this process dies first (SIGKILL: a killed
``fes sim`` leaves no compiler running; elsewhere it ends once its jobs are done and it
finds the pipe from this process closed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba

from controller.cgroup import usable_cpus
from controller.kernels import numba_api


class KernelJob(NamedTuple):
    """One kernel to compile for these argument types: for calls from other kernels, or
    (``python``) the version a call from Python runs."""

    kernel: Any
    types: tuple[Any, ...]
    python: bool = False


def job(kernel: Any, *values: Any) -> KernelJob:
    """The job of compiling ``kernel`` for calls from other kernels with arguments like
    ``values`` (arrays, tuples of arrays, and Python ints, floats and bools for the
    scalars: int64, float64, boolean)."""
    return KernelJob(kernel, _types(values))


def python_job(kernel: Any, *values: Any) -> KernelJob:
    """The job of compiling the version of ``kernel`` that Python calls with arguments
    like ``values`` (``KernelDispatcher.compile_for_python``)."""
    return KernelJob(kernel, _types(values), python=True)


def _types(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(numba.typeof(value) for value in values)


def compile_jobs(jobs: Sequence[KernelJob]) -> None:
    """Compile each job's kernel for its types (or load it from numba's cache); each
    stays compiled in this process."""
    for one in jobs:
        if one.python:
            one.kernel.compile_for_python(one.types)
        else:
            one.kernel.compile(one.types)


def spare_cpu() -> bool:
    """Whether a helper would finish the compilation sooner: this process may use two
    CPUs or more, and the machine is not overloaded (1-minute load average below twice
    their number). The helper adds little work (the few kernels two stages share, about
    0.5 s of CPU in 16 s), so it helps even on a busy machine, whose scheduler then gives
    the two processes more CPU time than it gives one (at load 1.6-2.2 on this 2-CPU
    machine: 10.7-15.9 s against 16.4-17.1 s for the whole first ``fes sim``); on an
    overloaded one it would only add its work to the queue, and on one CPU always (its
    affinity's CPUs bounded by its control group's quota: a CI pod limited to one CPU of
    a bigger machine, ``controller.cgroup``)."""
    try:
        cpus = usable_cpus()
    except AttributeError:  # no affinity on this OS
        cpus = os.cpu_count() or 1
    return cpus >= 2 and os.getloadavg()[0] < 2 * cpus


class LoopCompilation:
    """The compilation of a first trial's loop ``loop(*loop_args)`` in two processes,
    started (``start``) before the trial's files open and finished (``finish``) before
    its loop runs: ``helper``'s jobs and then the loop in a forked helper process,
    ``own``'s here meanwhile, then ``later``'s here while the helper compiles the loop.

    Does nothing when the loop is in numba's cache, numba is switched off, the kernels
    are numba's public ones (``controller.kernels.numba_api``), or a helper would not
    help (``spare_cpu``): then the loop's first call compiles everything here,
    as it always did (and the kernels of ``later`` when the trial calls them)."""

    def __init__(
        self,
        loop: Any,
        loop_args: Sequence[Any],
        helper: Sequence[KernelJob],
        own: Sequence[KernelJob],
        later: Sequence[KernelJob] = (),
    ) -> None:
        self._loop = KernelJob(loop, _types(loop_args), python=True)
        self._loop_args = loop_args
        self._helper, self._own, self._later = helper, own, later
        self._pid = 0  # the helper's, while it may run

    def start(self) -> None:
        """Fork the helper and compile ``own`` here (when worth it); returns once they
        are in numba's cache, the helper now compiling the loop."""
        if numba.config.DISABLE_JIT or not hasattr(os, "fork") or not spare_cpu():  # type: ignore[attr-defined]
            return
        if not numba_api():  # numba.njit's kernels: no compile_for_python, no cached
            return
        if self._loop.kernel.cached(*self._loop_args):
            return
        go_on, told = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the helper: same modules, nothing of this process's run touched
            code = 1
            try:
                _end_with(parent)
                os.close(told)
                compile_jobs(self._helper)
                if os.read(go_on, 1):  # empty: this process went away or gave up
                    compile_jobs([self._loop])
                    code = 0
            finally:  # no exit handlers, no buffers flushed: those are the parent's
                os._exit(code)
        self._pid = pid
        os.close(go_on)
        try:
            compile_jobs(self._own)
            os.write(told, b"1")
        except BaseException:
            self.abandon()
            raise
        finally:
            os.close(told)

    def finish(self) -> None:
        """Compile ``later`` here, then wait for the helper: the loop is then in numba's
        cache (unless the helper failed: the loop's call then compiles it here)."""
        if not self._pid:
            return
        try:
            compile_jobs(self._later)
            os.waitpid(self._pid, 0)
            self._pid = 0
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Kill and reap the helper if it still runs (Ctrl-C or an error here: its work
        is no longer wanted)."""
        if self._pid:
            pid, self._pid = self._pid, 0
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


#: ``prctl`` option: a signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _end_with(parent: int) -> None:
    """Have this (forked) process killed when ``parent`` dies (Linux; elsewhere nothing),
    and end now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
