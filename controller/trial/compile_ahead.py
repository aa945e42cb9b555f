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
helpers two stages share), which is why a busy machine, whose CPUs have no time to
spare, compiles in one process as before (and a one-CPU machine always does).

The two processes write numba's cache at once. numba writes each file whole (a
temporary file renamed over it) and rereads a kernel's index before adding to it; the
kernels both compile get the same entry from either. Whatever the helper has not cached
(it failed, or was killed), this process compiles as it always did. The helper never
outlives its use: this process kills it when it stops waiting for it (an error, Ctrl-C),
and the helper ends if this process goes away first (its end of the pipe closes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba


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
    """Whether a CPU this process may use would otherwise idle: the 1-minute load
    average is below their number less a half. On a busy machine a helper only adds
    its own work (a tenth more CPU in all) and finishes no sooner."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this OS
        cpus = os.cpu_count() or 1
    return os.getloadavg()[0] < cpus - 0.5


class LoopCompilation:
    """The compilation of a first trial's loop ``loop(*loop_args)`` in two processes,
    started (``start``) before the trial's files open and finished (``finish``) before
    its loop runs: ``helper``'s jobs and then the loop in a forked helper process,
    ``own``'s here meanwhile, then ``later``'s here while the helper compiles the loop.

    Does nothing when the loop is in numba's cache, numba is switched off, or no CPU is
    spare: then the loop's first call compiles everything here, as it always did (and
    the kernels of ``later`` when the trial calls them)."""

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
        if self._loop.kernel.cached(*self._loop_args):
            return
        go_on, told = os.pipe()
        pid = os.fork()
        if pid == 0:  # the helper: same modules, nothing of this process's run touched
            code = 1
            try:
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
