"""A simulated board's waits for a CPU, logged by its own process where they happen.

``hw.runqueue.WaitWatch`` samples another process's schedstat from a thread of the
caller's; on a loaded core that thread is itself kept off the CPU, a sample then spans
tens of ms, and ``hw.runqueue.waited_within`` (which never overstates) credits a wait
that truly fell inside a short window as almost nothing. A program that sleeps in
``ppoll()`` between short steps of work (openEMSstim's firmware harness: at most
0.25 ms per sleep) can instead count its own waits: ``ppoll_waits.c``, preloaded
(``LD_PRELOAD``), reads the thread's schedstat at every ``ppoll`` return and logs each
wait of at least ``LOG_WAIT_S`` as a ``paused`` event spanning one sleep plus the work
since the previous one. It is built here, at run time, with the machine's C compiler
(never shipped as a binary); without one, ``build`` says why and callers fall back to
``WaitWatch``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from hw.runqueue import LOG_WAIT_S

SOURCE = Path(__file__).with_name("ppoll_waits.c")
#: The environment variable naming the log the preloaded wrapper appends to.
LOG_VARIABLE = "PPOLL_WAITS_LOG"


class ShimUnavailable(RuntimeError):
    """The wrapper cannot be built here; the message says why."""


def c_compiler() -> str | None:
    """The machine's C compiler (``gcc``, else ``cc``), or None."""
    return shutil.which("gcc") or shutil.which("cc")


def build(build_dir: Path, min_wait_s: float = LOG_WAIT_S) -> Path:
    """``ppoll_waits.c`` compiled into ``build_dir`` (a shared object, rebuilt when the
    source is newer; written under another name and renamed, so two callers at once
    never run a half-written one), logging waits from ``min_wait_s`` on (the tests log
    every wait, each at its own sleep, as the truth a sampler is checked against); its
    path. Raises ``ShimUnavailable`` without a C compiler or when the compile fails."""
    compiler = c_compiler()
    if compiler is None:
        raise ShimUnavailable("no C compiler (gcc or cc) to build the ppoll wrapper")
    min_wait_ns = max(1, round(min_wait_s * 1e9))
    library = build_dir / ("ppoll_waits.so" if min_wait_s == LOG_WAIT_S
                           else f"ppoll_waits_{min_wait_ns}ns.so")
    if library.is_file() and library.stat().st_mtime >= SOURCE.stat().st_mtime:
        return library
    build_dir.mkdir(parents=True, exist_ok=True)
    partial = build_dir / f"ppoll_waits.{os.getpid()}.{threading.get_ident()}.so"
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-Werror", "-shared", "-fPIC",
         f"-DPPOLL_WAITS_MIN_NS={min_wait_ns}", "-o", str(partial), str(SOURCE),
         "-ldl"],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ShimUnavailable(f"building the ppoll wrapper failed: {done.stderr[-400:]}")
    os.replace(partial, library)
    return library


def build_for(program: Path, build_dir: Path) -> Path:
    """``build``, for ``program``: raises ``ShimUnavailable`` too when the program does
    not call ``ppoll`` through the dynamic linker (``nm -D``: a static or inlined call
    never reaches a preloaded wrapper, and nothing would be logged)."""
    if problem := _no_dynamic_ppoll(program, program.stat().st_mtime_ns):
        raise ShimUnavailable(problem)
    return build(build_dir)


@functools.cache
def _no_dynamic_ppoll(program: Path, mtime_ns: int) -> str:
    """Why the preloaded wrapper would not see ``program``'s ``ppoll`` (empty: it would),
    read once per build of the program (``mtime_ns``): every firmware started in a test
    session asked ``nm`` again, about 20 ms each."""
    nm = shutil.which("nm")
    if nm is None:
        return "no nm (binutils) to check that the program calls ppoll"
    symbols = subprocess.run([nm, "-D", "--undefined-only", str(program)],
                             capture_output=True, text=True, check=False).stdout
    if not any(line.split()[-1].split("@")[0] == "ppoll"
               for line in symbols.splitlines() if line.strip()):
        return f"{program.name} does not call ppoll through the dynamic linker"
    return ""


def environment(library: Path, log: Path) -> dict[str, str]:
    """The variables that preload ``library`` into a program and log its waits to
    ``log`` (to add to its environment)."""
    return {"LD_PRELOAD": str(library), LOG_VARIABLE: str(log)}


def read_events(log: Path) -> list[dict]:
    """The ``paused`` events logged so far (a line still being written is left out)."""
    if not log.is_file():
        return []
    with log.open(encoding="ascii") as handle:
        lines = handle.read().split("\n")
    return [json.loads(line) for line in lines[:-1] if line]
