"""Arrays in anonymous shared memory, readable by a process forked after they were made.

The loop records every sample into preallocated arrays; the log writer reads them from a
separate process (``controller.trial.writer``) so that it never competes with the loop
for the interpreter lock. An anonymous ``MAP_SHARED`` mapping is inherited by a forked
child and stays shared: what the loop writes, the writer sees. Like ``numpy.zeros`` the
pages are zero-filled and committed on first touch, so an array sized for a long trial
costs memory only as the trial fills it.

``SharedSnapshot`` holds a few numbers that are overwritten rather than appended (the
live trial's link counters, for its status line), published by a sequence counter.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike


def shared_zeros(size: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """A writable, zero-filled 1-D array of ``size`` items in shared memory."""
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    kind = np.dtype(dtype)
    buffer = mmap.mmap(-1, max(1, size * kind.itemsize))
    return np.frombuffer(buffer, dtype=kind, count=size)


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
