"""Arrays in shared memory, readable by a process forked after they were made.

The loop records every sample into preallocated arrays; the log writer reads them from a
separate process (``controller.trial.writer``) so that it never competes with the loop
for the interpreter lock. Each array is a ``MAP_SHARED`` mapping of a memory file
(``memfd_create``): a forked child inherits it and it stays shared (what the loop writes,
the writer sees); the file of a ``shared_empty`` array may outlive it, to be mapped
again by a later one of the same length (a sweep's or a benchmark's next trial). Like
``numpy.zeros`` the pages of a new file are zero-filled and committed on first touch, so
an array sized for a long trial costs memory only as the trial fills it, unless
``map_in_background`` maps them all at once (a simulated trial does, for its rows).

``SharedSnapshot`` holds a few numbers that are overwritten rather than appended (the
live trial's link counters, for its status line), published by a sequence counter.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

#: Memory files of ``shared_empty`` arrays that are gone, kept for the next one of the
#: same length (a trial after a trial of the same shape, as in a sweep or a benchmark):
#: length -> descriptors. Their pages stay in memory, so the next trial's loop does not
#: wait for the kernel to allocate and zero them (2-3 us a page on the development
#: machine: some 5 ms of a minute at 1 kHz). Only files of at least
#: ``REUSE_MIN_BYTES``, up to ``REUSE_MAX_BYTES`` and ``REUSE_MAX_FILES`` in all (each
#: keeps a file descriptor open).
_REUSABLE: dict[int, list[int]] = {}
REUSE_MIN_BYTES = 2**20
REUSE_MAX_BYTES = 256 * 2**20
REUSE_MAX_FILES = 8
#: Mappings made with every page mapped already (``MAP_POPULATE`` of a reused file's
#: pages): ``map_in_background`` has nothing to do for them.
_POPULATED: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()


def _forget(fd: int, length: int, reusable: bool) -> None:
    kept = sum(size * len(fds) for size, fds in _REUSABLE.items())
    files = sum(len(fds) for fds in _REUSABLE.values())
    if (reusable and length >= REUSE_MIN_BYTES and kept + length <= REUSE_MAX_BYTES
            and files < REUSE_MAX_FILES):
        _REUSABLE.setdefault(length, []).append(fd)
    else:
        os.close(fd)


def forget_reusable() -> None:
    """Close the memory files kept for reuse (a benchmark's first trial then maps fresh
    pages, as a one-trial command does)."""
    for fds in _REUSABLE.values():
        for fd in fds:
            os.close(fd)
    _REUSABLE.clear()


def shared_zeros(size: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """A writable, zero-filled 1-D array of ``size`` items in shared memory."""
    return _shared(size, dtype, reuse=False)


def shared_empty(size: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """A writable 1-D array of ``size`` items in shared memory that may hold the numbers
    of an earlier one that is gone (zeros if none): for an array whose every item is
    written before anyone reads it (a trial's per-sample rows)."""
    return _shared(size, dtype, reuse=True)


def _shared(size: int, dtype: DTypeLike, reuse: bool) -> np.ndarray:
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    kind = np.dtype(dtype)
    length = max(1, size * kind.itemsize)
    kept = _REUSABLE.get(length, []) if reuse else []
    reused = bool(kept)
    fd = kept.pop() if reused else os.memfd_create("fes-shared", os.MFD_CLOEXEC)
    try:
        if not reused:
            os.ftruncate(fd, length)
        # A reused file's pages are in memory: mapping them all now costs a fraction of
        # a first touch each (8.6 MB: 1.3 ms against 3.6 ms on the development machine;
        # from a thread, ``map_in_background``, it made a later trial's set-up no faster).
        flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if reused else 0)
        buffer = mmap.mmap(fd, length, flags=flags)
    except BaseException:
        os.close(fd)
        raise
    array = np.frombuffer(buffer, dtype=kind, count=size)
    weakref.finalize(buffer, _forget, fd, length, reuse)
    if reused:
        _POPULATED.add(buffer)
    return array


def _mapped_already(array: np.ndarray) -> bool:
    """Whether ``array`` (or the array it is a view of) lies in a mapping whose pages
    were all mapped when it was made."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # ``numpy.frombuffer`` holds its buffer so
        base = base.obj
    return isinstance(base, mmap.mmap) and base in _POPULATED


#: ``madvise`` advice (Linux 5.14 and later): map every page of the range, writable,
#: allocating those the memory file does not hold yet.
_MADV_POPULATE_WRITE = 23


def map_in_background(arrays: Sequence[np.ndarray]) -> Callable[[], None]:
    """Map every page of ``arrays`` (shared arrays) into this process from a thread of
    its own, while the caller goes on; returns a function that waits until it is done.

    A trial's loop otherwise stops at the first touch of each page of its rows for the
    kernel to allocate, zero and map it (2-5 us a page on the development machine, 2,100
    pages for a minute at 1 kHz): mapped while the trial builds its stages, those
    microseconds are spent on another CPU when there is one (the thread waits in one
    system call, the interpreter lock released). Wait before forking: a fork copies the
    calling thread only. A kernel that does not know the advice (before 5.14) refuses
    it: the pages are then mapped on first touch, as without this call. Arrays in a
    reused memory file, mapped whole when they were made (``shared_empty``), are left
    out, and no thread is started if none is left (a later trial of a sweep or a
    benchmark: starting the thread took 0.1-5 ms of the trial's set-up, the more the
    busier the machine, for nothing).
    """
    held = [a for a in arrays if a.nbytes]
    ranges = [(a.__array_interface__["data"][0], a.nbytes) for a in held]
    page = mmap.PAGESIZE
    if any(address % page for address, _ in ranges):
        raise ValueError("map_in_background maps whole arrays of shared memory only")
    held = [a for a in held if not _mapped_already(a)]
    if not held:
        return _nothing_to_wait_for
    ranges = [(a.__array_interface__["data"][0], a.nbytes) for a in held]
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)

    def populate() -> None:
        for address, length in ranges:
            madvise(address, length, _MADV_POPULATE_WRITE)
        held.clear()  # kept until now: nothing unmaps a range while it is mapped in

    thread = threading.Thread(target=populate, name="map shared rows", daemon=True)
    thread.start()
    return thread.join


def _nothing_to_wait_for() -> None:
    """``map_in_background``'s wait when it had nothing to map."""


class SharedSnapshot:
    """A few named numbers that one thread rewrites in place and another process reads.

    For state that is not one row per sample (a link's counters, a cadence), which the
    loop overwrites rather than appends. The writer brackets each update with ``begin``
    and ``end``: a sequence counter is odd while the numbers are being written and is
    raised to the next even value once they are complete, so the writer never waits and
    never allocates. ``read`` copies the numbers and keeps the copy only if the counter
    was even and unchanged around it, so it does not return half of one update and half
    of the next. (x86-64 makes stores visible in program order; a CPU that may not, as
    ARM, could rarely let a read mix two consecutive updates, each number still one that
    was written: fine for a status display, not for anything that acts on it.)
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.values = shared_zeros(len(self.names))
        self._sequence = shared_zeros(1, np.int64)

    def begin(self) -> np.ndarray:
        """Start an update; returns the array to write the numbers into, in ``names``
        order."""
        self._sequence[0] += 1
        return self.values

    def end(self) -> None:
        """The numbers written since ``begin`` are complete."""
        self._sequence[0] += 1

    def read(self, wait_s: float = 0.05) -> dict[str, float] | None:
        """The numbers of the latest complete update by name; None if there has been none
        yet, or if for ``wait_s`` every copy overlapped an update. The writer is a thread
        that the interpreter may switch away from between ``begin`` and ``end`` (for its
        5 ms switch interval, longer on a loaded machine), so a reader that finds an
        update under way waits for it rather than giving up after a few copies."""
        deadline = time.monotonic() + wait_s
        while True:
            before = int(self._sequence[0])
            if before == 0:
                return None
            if before % 2 == 0:
                values = self.values.tolist()
                if int(self._sequence[0]) == before:
                    return dict(zip(self.names, values, strict=True))
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.0002)
            if before % 2 == 0:
                values = self.values.tolist()
                if int(self._sequence[0]) == before:
                    return dict(zip(self.names, values, strict=True))
        return None


def ring_rows(array: np.ndarray, start: int, stop: int, axis: int = 0) -> np.ndarray:
    """Rows ``start`` to ``stop`` (along ``axis``) of rows kept as a ring: row k at
    k modulo the array's rows (a long trial's window, ``controller.trial.window``, and
    its deadline monitor's). A view, unless the rows wrap around the ring's end (then a
    copy); a plain view of an array as long as the trial."""
    size = array.shape[axis]
    first = start if start < size else (start % size if size else 0)
    if first + (stop - start) <= size:
        return array[first : first + stop - start] if axis == 0 else \
            array[:, first : first + stop - start]
    wrapped = first + stop - start - size
    if axis == 0:
        return np.concatenate((array[first:], array[:wrapped]))
    return np.concatenate((array[:, first:], array[:, :wrapped]), axis=1)


def ring_overwritten(first: int, newest: int, size: int, lead: int) -> bool:
    """Whether row ``first`` of a ring of ``size`` rows may have been overwritten by a
    loop that does not wait for its reader: it has published ``newest`` rows and may be
    writing up to ``lead`` more (checked after the reader copied the rows)."""
    return newest + lead > first + size


class RingOverrun(Exception):
    """A reader of a ring fell a whole ring behind the loop that writes it: ``what``
    from ``first`` on (of ``newest`` published) may have been overwritten before they
    were read (``ring_overwritten``)."""

    def __init__(self, what: str, first: int, newest: int, size: int) -> None:
        super().__init__(f"{what} from {first} on overwritten (ring of {size}, {newest} published)")
        self.what, self.first, self.newest, self.size = what, first, newest, size
