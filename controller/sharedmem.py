"""Arrays in shared memory, readable by a process forked after they were made or handed
their file descriptors.

The loop records every sample into preallocated arrays; the log writer reads them from a
separate process (``controller.trial.writer``) so that it never competes with the loop
for the interpreter lock. Each array is a ``MAP_SHARED`` mapping of a memory file
(``memfd_create``): a forked child inherits it and it stays shared (what the loop writes,
the writer sees), and a process started earlier can be handed it (``dumps_passing``
pickles an object with its shared arrays as references to their memory files, and
``PassedFd`` marks a file descriptor to hand over; ``loads_passed`` maps them in the
receiving process). Like ``numpy.zeros`` the pages are zero-filled and committed on
first touch, so an array sized for a long trial costs memory only as the trial fills it.

``SharedSnapshot`` holds a few numbers that are overwritten rather than appended (the
live trial's link counters, for its status line), published by a sequence counter.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

#: Memory files of this process's shared mappings: id of the mapping -> (file
#: descriptor, address of its first byte, length). An entry goes when its mapping does.
_FILES: dict[int, tuple[int, int, int]] = {}


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


def _forget(key: int, fd: int, length: int, reusable: bool) -> None:
    _FILES.pop(key, None)
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
        # a first touch each (8.6 MB: 1.3 ms against 3.6 ms on the development machine).
        flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if reused else 0)
        buffer = mmap.mmap(fd, length, flags=flags)
    except BaseException:
        os.close(fd)
        raise
    array = np.frombuffer(buffer, dtype=kind, count=size)
    _FILES[id(buffer)] = (fd, array.__array_interface__["data"][0], length)
    weakref.finalize(buffer, _forget, id(buffer), fd, length, reuse)
    return array


def _memory_file(array: np.ndarray) -> tuple[int, int, int] | None:
    """(file descriptor, byte offset, length of the file) of an array that views a
    ``shared_zeros`` mapping of this process; None for any other array."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    found = _FILES.get(id(base)) if isinstance(base, mmap.mmap) else None
    if found is None:
        return None
    fd, address, length = found
    return fd, array.__array_interface__["data"][0] - address, length


class PassedFd(int):
    """A file descriptor that ``dumps_passing`` hands over: it is unpickled as the
    receiving process's number (a plain ``int``) for the same open file."""


class _PassingPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.fds: list[int] = []

    def _index(self, fd: int) -> int:
        if fd not in self.fds:
            self.fds.append(fd)
        return self.fds.index(fd)

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, PassedFd):
            return ("fd", self._index(int(obj)))
        if isinstance(obj, np.ndarray):
            found = _memory_file(obj)
            if found is not None:
                fd, offset, length = found
                return ("shared", self._index(fd), length, offset, obj.shape, obj.strides,
                        obj.dtype.str)
        return None


class _PassedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, fds: Sequence[int]) -> None:
        super().__init__(io.BytesIO(data))
        self._fds = fds
        self._maps: dict[int, mmap.mmap] = {}

    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "fd":
            return self._fds[pid[1]]
        _, index, length, offset, shape, strides, dtype = pid
        if index not in self._maps:
            self._maps[index] = mmap.mmap(self._fds[index], length)
        return np.ndarray(shape, np.dtype(dtype), self._maps[index], offset, strides)


def dumps_passing(obj: Any) -> tuple[bytes, list[int]]:
    """``obj`` pickled, with its ``shared_zeros`` arrays (and views of them) and its
    ``PassedFd`` as references to the file descriptors returned beside it."""
    data = io.BytesIO()
    pickler = _PassingPickler(data)
    pickler.dump(obj)
    return data.getvalue(), pickler.fds


def loads_passed(data: bytes, fds: Sequence[int]) -> Any:
    """The object of ``dumps_passing`` in a process that received its file descriptors
    (in the same order): its shared arrays map the same memory, its ``PassedFd`` are
    ``fds``' numbers."""
    return _PassedUnpickler(data, fds).load()


#: Bytes of a memory page (the unit the kernel maps on first touch).
PAGE_BYTES = mmap.PAGESIZE


def prefault(arrays: Iterable[np.ndarray]) -> None:
    """Touch every page of ``arrays`` now (before a paced loop writes them): the loop
    never waits for the kernel to map one (a first touch costs microseconds, on a
    virtual machine tens)."""
    for array in arrays:
        array.fill(0)


def map_ahead(arrays: Iterable[np.ndarray]) -> threading.Thread:
    """Map the pages of ``arrays`` into this process from a thread of its own, while
    this thread goes on (its loop then finds most pages mapped: a first write to one
    costs 2-3 us on the development machine, 2,100 of them for a minute at 1 kHz).

    The thread reads one number per page: a read maps a writable page of a shared
    memory file (one that needs no tracking of dirty pages, as ``shared_zeros``'), and it
    never writes, so it cannot race with the loop's writes; numpy reads the strided view
    without the interpreter lock. Join it before forking this process."""
    views = [a.reshape(-1)[:: max(1, PAGE_BYTES // a.itemsize)] for a in arrays if a.size]

    def touch() -> None:
        for view in views:
            np.add.reduce(view)

    thread = threading.Thread(target=touch, name="map-ahead", daemon=True)
    thread.start()
    return thread


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
