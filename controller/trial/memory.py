"""What a trial keeps in memory, said before it starts.

A trial streams its files while it runs, and keeps its samples in memory as well: the
summary scores the whole trial (every stimulation train, every swing) at its end. That
is 8 bytes per number per sample: about 200 bytes a sample for a simulated trial (its
recorded columns, the limb's truth, the deadline accounting), so a minute at 1 kHz
takes some 12 MB and a day at 500 Hz some 9 GB. A long trial (over two windows of
``controller.trial.window``: ``fes sim``, a sweep's, ``fes sim --realtime``, ``fes run``)
keeps a window of rows instead, scored as they pass: its check is for the window's
rows. ``check_fits`` compares that with what this process may still use (its
address-space limit, ``ulimit -v``; its cgroup's memory limit, v2 ``memory.max`` or v1
``memory.limit_in_bytes``; the memory the system has available) and refuses a trial
that would not fit, naming ``loop.duration_s`` and the longest duration that would
(or, for a window, that it does not fit), instead of failing with an allocation error
part way.
"""

from __future__ import annotations

import math
import resource
from pathlib import Path

from controller.cgroup import memory_room
from controller.sizes import size_text
from controller.validation import ConfigError

#: Room kept for everything else the process allocates after the check (the log writer's
#: fork, numba compiling on a first run, the files, scoring). Measured as the growth of
#: ``VmSize`` from the check to the end of ``fes sim`` on 6 Dec 2026: 140 MB (20 s, warm
#: cache), 193 MB (3,000 s, windowed), 207 MB (a first run, compiling), 140 MB
#: (``--realtime``); under ``ulimit -v`` the process gets by with less (glibc maps fewer
#: arenas): a warm 20 s trial ran under a limit of 340,000 kB. It was 512 MiB, which
#: refused trials that fit: ``fes sim --duration-s 20`` under ``ulimit -v 800000``
#: ("keeps 3 MB ... may use 0.5 GB more ...: at most 0 s fit").
RESERVE_BYTES = 256 * 2**20
#: Scoring makes temporary per-sample arrays besides the columns it scores (the pulse
#: times and their samples take up to about four numbers per stimulated sample).
SCORING_NUMBERS_PER_SAMPLE = 12


def trial_bytes(n_samples: int, numbers_per_sample: int) -> int:
    """Bytes of the per-sample arrays of a trial, with its scoring."""
    return 8 * n_samples * (numbers_per_sample + SCORING_NUMBERS_PER_SAMPLE)


def _proc_kib(path: str, field: str) -> int | None:
    """The kB figure of ``field`` in a ``/proc`` file of ``name: value kB`` lines
    (``/proc/self/status``' ``VmSize``, ``/proc/meminfo``'s ``MemAvailable``)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


#: ``VmSize`` at this process's first check (kB): the trials a process runs one after
#: another (``fes sweep --workers 1``, a worker's) leave its address space grown by what
#: they mapped and freed (158 MB after two 20 s trials, then flat over ten more), room the
#: next trial reuses; a check against the grown size refused every trial after the
#: first under ``ulimit -v 700000`` (exit 4).
_first_size_kib: int | None = None


def _counted_size_kib() -> int | None:
    """This process's address space as a check counts it: its size now, but what it
    grew since its first check only beyond ``RESERVE_BYTES`` (up to that, the room an
    earlier trial used and freed, which the reserve stands for)."""
    global _first_size_kib
    size_kib = _proc_kib("/proc/self/status", "VmSize")
    if size_kib is None:
        return None
    if _first_size_kib is None:
        _first_size_kib = size_kib
    return max(min(size_kib, _first_size_kib), size_kib - RESERVE_BYTES // 1024)


def room_bytes() -> tuple[int, str] | None:
    """The most this process may still allocate, and which limit says so (None if no
    limit is known)."""
    rooms: list[tuple[int, str]] = []
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    size_kib = _counted_size_kib()
    if soft != resource.RLIM_INFINITY and size_kib is not None:
        rooms.append((soft - size_kib * 1024, "its address-space limit (ulimit -v)"))
    cgroup = memory_room()
    if cgroup is not None:
        rooms.append((cgroup, "its cgroup's memory limit"))
    available = _proc_kib("/proc/meminfo", "MemAvailable")
    if available is not None:
        rooms.append((available * 1024, "the memory the system has available"))
    return min(rooms) if rooms else None


def check_fits(n_samples: int, numbers_per_sample: int, rate_hz: float,
               windowed: bool = False) -> None:
    """``ConfigError`` on ``loop.duration_s`` if the trial's arrays would not fit
    (``n_samples`` rows; with ``windowed``, the rows of a long trial's window)."""
    room = room_bytes()
    if room is None:
        return
    free, limit = room
    need = trial_bytes(n_samples, numbers_per_sample)
    if need + RESERVE_BYTES <= free:
        return
    if windowed:
        raise ConfigError("loop.duration_s", [
            f"a trial over {2 * n_samples / rate_hz:g} s at {rate_hz:g} Hz keeps a window "
            f"of {n_samples} samples ({size_text(need)}) in memory, but this process may "
            f"use {size_text(max(free, 0))} more ({limit}), with {size_text(RESERVE_BYTES)} "
            "for the rest of the program: give it more memory"
        ])
    per_second = trial_bytes(round(rate_hz), numbers_per_sample)
    longest_s = max(0, math.floor((free - RESERVE_BYTES) / per_second))
    short = f"{n_samples} samples" if n_samples < rate_hz else f"{n_samples / rate_hz:g} s"
    fits = (f"at most {longest_s} s fit; the files are streamed, so split the session "
            "into shorter trials, or give it" if longest_s >= 1 else "no trial fits: give it")
    raise ConfigError("loop.duration_s", [
        f"a trial of {short} at {rate_hz:g} Hz keeps {size_text(need)} of samples in memory "
        f"(every sample is scored at its end) and the rest of the program needs some "
        f"{size_text(RESERVE_BYTES)} more, but this process may use {size_text(max(free, 0))} more "
        f"({limit}): {fits} {size_text(need + RESERVE_BYTES - free)} more"
    ])
