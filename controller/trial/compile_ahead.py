"""Compiling a first trial's kernels in two processes at once.

numba compiles one function at a time, in the process that calls it: the first
``fes sim`` after an install spent 10-13 s compiling on one core of this machine's two
while the other idled. The compiled loop's stages are separate trees of kernels (the
limb, the detector, the scheduler and the watchdog call few kernels in common), and
before numba compiles a kernel that a caller needs it looks in its on-disk cache. So on
a first run (the loop not in the cache yet) ``compile_stages`` starts a helper process
that compiles some stages' kernels into the cache, with the argument types the loop
calls them with, while this process compiles the others; it then waits for the helper,
and compiling the loop itself finds every stage compiled. The machine code is the same
whichever process compiled it (same source, types and options), so the trial is the same
bit for bit (``tests/test_sim_pinned.py``); the wall time of a first run drops, its CPU
time does not (``python -m controller.bench.startup --cold N`` prints both).

The two processes write numba's cache at once. numba writes each file whole (a
temporary file renamed over it) and rereads a kernel's index before adding to it; the
kernels both compile (the few helpers two stages share) get the same entry from either.
A helper that fails or is slow costs nothing but its CPU: what it has not cached, this
process compiles as it always did.
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numba


class KernelJob(NamedTuple):
    """One kernel to compile, by where it is defined, for some argument types: a kernel
    ``module.name``, or with ``choices`` the one ``module.name(*choices)`` makes (a
    ``controller.kernels.specialised`` factory)."""

    module: str
    name: str
    choices: tuple[int, ...] | None
    types: tuple[Any, ...]


def job(target: Any, *values: Any, choices: tuple[int, ...] | None = None) -> KernelJob:
    """The job of compiling ``target`` (a kernel, or a ``specialised`` factory with
    ``choices``) for arguments like ``values`` (arrays, tuples of arrays, and Python
    ints, floats and bools for the scalars: int64, float64, boolean)."""
    return KernelJob(target.__module__, target.__qualname__, choices,
                     tuple(numba.typeof(value) for value in values))


def compile_jobs(jobs: Sequence[KernelJob]) -> None:
    """Compile each job's kernel for its types, for calls from other kernels (what the
    compiled loop will look for in the cache); each stays compiled in this process."""
    for one in jobs:
        target = getattr(importlib.import_module(one.module), one.name)
        kernel = target if one.choices is None else target(*one.choices)
        kernel.compile(one.types)


def compile_stages(
    loop: Any, loop_args: Sequence[Any], helper: Sequence[KernelJob], own: Sequence[KernelJob]
) -> None:
    """Before ``loop(*loop_args)`` compiles, on a first run: ``helper``'s kernels in a
    helper process and ``own``'s here, at the same time; returns once both are done.
    Does nothing when the loop is in numba's cache (or numba is switched off)."""
    if numba.config.DISABLE_JIT or loop.cached(*loop_args):  # type: ignore[attr-defined]
        return
    try:
        child: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    except OSError:  # no process to spare: compile everything here
        child = None
    try:
        if child is not None and child.stdin is not None:
            try:
                with child.stdin:
                    pickle.dump(list(helper), child.stdin)
            except BrokenPipeError:  # the helper died at once: its part is compiled here
                pass
        compile_jobs(own)
        if child is not None:
            child.wait()
    finally:
        if child is not None and child.poll() is None:  # Ctrl-C, or an error here
            child.kill()
            child.wait()


def main() -> int:
    """The helper process: compile the jobs pickled on standard input."""
    compile_jobs(pickle.load(sys.stdin.buffer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
