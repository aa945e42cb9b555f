"""Compiling a first trial's kernels in two processes at once.

numba compiles one function at a time, in the process that calls it: the first
``fes sim`` after an install spent 10-13 s compiling on one core of this machine's two
while the other idled. The compiled loop's stages are separate trees of kernels (the
limb, the detector, the scheduler and the watchdog call few kernels in common), and
before numba compiles a kernel that a caller needs it looks in its on-disk cache. So on
a first run (the loop not in the cache yet), when a CPU would otherwise idle,
``compile_stages`` forks a helper process that compiles some stages' kernels into the
cache, with the argument types the loop calls them with, while this process compiles
the others; it then waits for the helper, and compiling the loop itself finds every
stage compiled. The machine code is the same whichever process compiled it (same
source, types and options), so the trial is the same bit for bit
(``tests/test_sim_pinned.py``). The wall time of a first run drops; the CPU time rises
a little (each process compiles the few helpers two stages share, and the detector and
the scheduler once more as kernels of their own), which is why a busy machine, whose
CPUs have no time to spare, compiles in one process as before.

The two processes write numba's cache at once. numba writes each file whole (a
temporary file renamed over it) and rereads a kernel's index before adding to it; the
kernels both compile get the same entry from either. Whatever the helper has not cached
(it failed, or was killed), this process compiles as it always did.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba


class KernelJob(NamedTuple):
    """One kernel to compile, for calls from other kernels with these argument types."""

    kernel: Any
    types: tuple[Any, ...]


def job(kernel: Any, *values: Any) -> KernelJob:
    """The job of compiling ``kernel`` for arguments like ``values`` (arrays, tuples of
    arrays, and Python ints, floats and bools for the scalars: int64, float64,
    boolean)."""
    return KernelJob(kernel, tuple(numba.typeof(value) for value in values))


def compile_jobs(jobs: Sequence[KernelJob]) -> None:
    """Compile each job's kernel for its types, for calls from other kernels (what the
    compiled loop looks for in the cache); each stays compiled in this process."""
    for one in jobs:
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


def compile_stages(
    loop: Any, loop_args: Sequence[Any], helper: Sequence[KernelJob], own: Sequence[KernelJob]
) -> None:
    """Before ``loop(*loop_args)`` compiles, on a first run with a CPU to spare:
    ``helper``'s kernels in a forked helper process and ``own``'s here, at the same
    time; returns once both are done. Does nothing when the loop is in numba's cache,
    numba is switched off, or no CPU is spare (then the loop compiles everything here,
    as it always did)."""
    if numba.config.DISABLE_JIT or not hasattr(os, "fork") or not spare_cpu():  # type: ignore[attr-defined]
        return
    if loop.cached(*loop_args):
        return
    pid = os.fork()
    if pid == 0:  # the helper: same modules, nothing of this process's run touched
        code = 1
        try:
            compile_jobs(helper)
            code = 0
        finally:  # no exit handlers, no buffers flushed: those are the parent's
            os._exit(code)
    try:
        compile_jobs(own)
        os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:  # Ctrl-C or an error here: the helper's work is no longer wanted
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
