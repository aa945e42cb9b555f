"""How every numba kernel of the project is compiled, the list of them, and how their
parameter arrays are packed.

Two decorators, one set of options each, for the detector, the scheduler, the watchdog,
the simulated patient and the trial files alike:

* ``@kernel``: ``numba.njit(cache=True)`` compiled without numba's runtime (NRT, numba's
  ``_nrt`` option). The runtime reference-counts arrays: every array a compiled function
  receives, slices or hands on is paired with an atomic increment and decrement. The
  per-sample kernels pass half a dozen arrays through a dozen small functions per
  sample, so with the runtime on most of their time went into those atomics (the
  simulated limb: 530 ns of 620 ns per sample, measured with ``perf``; the detectors:
  about 100 ns per sample, twenty times the detection work). They never allocate: state,
  parameters, logs and outputs are arrays the Python object that calls them created and
  keeps alive, so they need no runtime, and a kernel that tried to allocate would fail
  to compile, loudly.
* ``@allocating_kernel``: plain ``numba.njit(cache=True)``, for the few functions that
  build a result array (a whole recording's pulse times, the cells of a CSV file, an
  isometric force trace) and so need the runtime.

Both register the compiled function in ``KERNELS`` under its module and name, so that
the project's kernels can be listed, compiled ahead or checked
(``tests/test_kernels.py``: every kernel compiles and is cached); ``kernels(prefix)``
selects those of one part, for a command that needs only its own.

Packed arrays: a kernel's parameters and state are float64 arrays whose slots are declared
once, as a tuple of names unpacked from ``range`` (the idiom of ``controller.ports``):

    PARAM_NAMES = ("threshold_rad_s", "debounce_s")
    (P_THRESHOLD_RAD_S, P_DEBOUNCE_S) = range(len(PARAM_NAMES))

and a parameter array is built by ``pack`` from a table of each name and its value
(converted to SI), started from NaN: a slot the table forgets, or a name it misspells,
is refused at once (``tests/test_kernels.py`` builds every layout and checks that no
slot is left unfilled).

After a kernel module moves or a kernel that others call changes, numba's cache of the
callers may still hold the old code: clear it with
``find . -name '*.nbi' -delete -o -name '*.nbc' -delete``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numba
import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

#: The arrays the kernels work on (parameters, state, logs, command rows).
Floats = NDArray[np.float64]

#: Options of ``@kernel``. ``_nrt`` is not in numba's typed signature of ``njit`` (it is
#: an option of its compiler flags, used by numba's own tests), hence the dictionary.
OPTIONS: dict[str, Any] = {"cache": True, "_nrt": False}
#: Options of ``@allocating_kernel``.
ALLOCATING_OPTIONS: dict[str, Any] = {"cache": True}

#: Every compiled function made by the two decorators, by ``module.qualified_name``, in
#: the order the modules defined them.
KERNELS: dict[str, Any] = {}


def _registered(function: Callable[..., Any], options: dict[str, Any]) -> Any:
    compiled = numba.njit(**options)(function)
    KERNELS[f"{function.__module__}.{function.__qualname__}"] = compiled
    return compiled


def kernel(function: F) -> F:
    """Compile ``function`` with numba, cached, without the runtime (no allocation)."""
    compiled: F = _registered(function, OPTIONS)
    return compiled


def allocating_kernel(function: F) -> F:
    """Compile ``function`` with numba, cached, with the runtime (it may allocate)."""
    compiled: F = _registered(function, ALLOCATING_OPTIONS)
    return compiled


def kernels(prefix: str = "") -> dict[str, Any]:
    """The registered kernels whose module is ``prefix`` or inside it (all by default)."""
    return {
        name: compiled
        for name, compiled in KERNELS.items()
        if not prefix or name == prefix or name.startswith(prefix + ".")
    }


def pack(names: Sequence[str], values: Mapping[str, float]) -> Floats:
    """The parameter array laid out as ``names``: slot ``i`` holds ``values[names[i]]``.

    The array starts as NaN; ``ValueError`` names any slot ``values`` leaves unfilled
    and any value that has no slot, so a layout and its table cannot drift apart.
    """
    missing = [name for name in names if name not in values]
    unknown = [name for name in values if name not in names]
    if missing or unknown:
        raise ValueError(f"packed array: no value for {missing}, no slot for {unknown}")
    packed = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        packed[i] = values[name]
    return packed
