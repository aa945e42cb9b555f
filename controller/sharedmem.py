"""Arrays in anonymous shared memory, readable by a process forked after they were made.

The loop records every sample into preallocated arrays; the log writer reads them from a
separate process (``controller.trial.writer``) so that it never competes with the loop
for the interpreter lock. An anonymous ``MAP_SHARED`` mapping is inherited by a forked
child and stays shared: what the loop writes, the writer sees. Like ``numpy.zeros`` the
pages are zero-filled and committed on first touch, so an array sized for a long trial
costs memory only as the trial fills it.
"""

from __future__ import annotations

import mmap

import numpy as np
from numpy.typing import DTypeLike


def shared_zeros(size: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """A writable, zero-filled 1-D array of ``size`` items in shared memory."""
    if size < 0:
        raise ValueError(f"size must be non-negative, got {size}")
    kind = np.dtype(dtype)
    buffer = mmap.mmap(-1, max(1, size * kind.itemsize))
    return np.frombuffer(buffer, dtype=kind, count=size)
