"""The decorator of the simulator's numba kernels, and why it turns the runtime off.

Numba's runtime (NRT) reference-counts arrays: every array that a compiled function
receives, slices or hands on is paired with an atomic increment and decrement. The
limb's kernels pass half a dozen arrays through a dozen small functions per sample, so
with the runtime on, 65-80 % of their time went into those atomic operations (measured
with ``perf``: two ``lock incq``/``lock decq`` helpers; 530 ns of 620 ns per sample).
They never allocate: every array they use is created, and kept alive, by the Python
object that calls them. So they are compiled with the runtime off (numba's ``_nrt``
option), which drops the reference counting and leaves the arithmetic: about 120 ns
per sample. A kernel that must allocate (a result array) uses plain ``numba.njit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: ``_nrt`` is not in numba's typed signature of ``njit`` (it is an option of its
#: compiler flags), hence the dictionary.
_OPTIONS: dict[str, Any] = {"cache": True, "_nrt": False}


def kernel(function: F) -> F:
    """Compile ``function`` with numba, cached, without the runtime (no allocation)."""
    compiled: F = numba.njit(**_OPTIONS)(function)
    return compiled
