"""How every numba kernel of the project is compiled, the list of them, and how their
parameter arrays are packed.

Two decorators, one set of options each, for the detector, the scheduler, the watchdog,
the simulated patient and the trial files alike (and, for choosing between kernels,
``@dispatch_kernel`` and ``@specialised``, below):

* ``@kernel``: ``numba.njit(cache=True)`` compiled without numba's runtime (NRT, numba's
  ``_nrt`` option). The runtime reference-counts arrays: every array a compiled function
  receives, slices or hands on is paired with an atomic increment and decrement. The
  per-sample kernels pass half a dozen arrays through a dozen small functions per
  sample, so with the runtime on most of their time went into those atomics (the
  simulated limb: 227-256 ns of 355-373 ns per sample, ``python -m
  controller.bench.simulator --nrt``; the detectors: 52-181 ns per sample on kernels of
  15-81 ns, ``python -m controller.bench.detector --nrt``; 7 Dec 2026). They never
  allocate: state, parameters, logs and outputs are arrays the Python object that calls
  them created and keeps alive, so they need no runtime, and a kernel that tried to
  allocate would fail to compile, loudly.

  They are also compiled ``forceinline`` (LLVM's ``alwaysinline``). numba compiles each
  function on its own and links it into its callers, and there LLVM's inliner found the
  per-sample kernels too large to inline (an array argument is seven machine words; the
  limb's sample takes twenty arrays): every stage of every sample was an out-of-line
  call that copied array descriptors onto the stack, and nothing could be hoisted or
  kept in registers across it. Inlined, the compiled closed loop of a 60 s trial at
  1 kHz went from 32 ms to 14 ms of CPU (``python -m controller.bench.simulator``; how
  it was found: docs/simulator.md). Inlining changes no result: without ``fastmath``
  LLVM keeps IEEE semantics whatever it inlines (``tests/test_sim_pinned.py``).
* ``@allocating_kernel``: plain ``numba.njit(cache=True)``, for the few functions that
  build a result array (a whole recording's pulse times, the cells of a CSV file, an
  isometric force trace) and so need the runtime.

All register the compiled function in ``KERNELS`` under its module and name, so that
the project's kernels can be listed, compiled ahead or checked
(``tests/test_kernels.py``: every kernel compiles and is cached); ``kernels(prefix)``
selects those of one part, for a command that needs only its own.

Compiling only what a trial uses: the first run after an install compiles every kernel
a trial reaches, so what is compiled, and how often, is the start-up time of a new user
or a CI job (``python -m controller.bench.startup --cold N``). Four rules keep it short:

* **One version per argument types.** numba types a constant as a literal (``25``, not
  ``int64``), and a kernel called with constants would be compiled once for every value
  passed (a fault code, a column index): the watchdog's helpers were compiled up to six
  times each. ``KernelDispatcher`` types every call between kernels on the argument
  types alone; the machine code is the same, since a callee is inlined into its caller
  and the constants propagate there.
* **Wrappers only where they are used.** numba wraps every compiled function twice: for
  use as a C function pointer (``cfunc``), which nothing here does
  (``no_cfunc_wrapper``), and for calls from Python, which most kernels never get: they
  are compiled without it (``no_cpython_wrapper``), and ``KernelDispatcher`` makes the
  version with the wrapper, on a twin dispatcher with cache entries of its own, the
  first time Python calls a kernel with new types.
* **No machine code that nothing runs.** A version without a Python wrapper is only
  ever linked into the kernels that call it (their machine code holds it): it is built
  without machine code of its own and with one run of LLVM's module passes instead of
  numba's two (``_LinkOnlyLibrary``: 2.9 s less CPU on a first ``fes sim``).
* **Choices made before compiling.** A trial runs one detector and one stimulation
  mode. A ``@dispatch_kernel`` (``detector_step``, ``schedule_step``) chooses from its
  first argument and is inlined into its callers; a ``@specialised`` factory makes a
  kernel with that choice fixed as a closure constant, so numba drops the branches not
  taken before it types them, and their kernels are neither compiled nor loaded (the
  shank gyroscope in walking mode compiles no heel, fused or timed kernel:
  ``tests/test_first_run.py``).

The first three go through numba's private API (``controller.numba_hooks``: the
dispatcher, the cache, the link-only library). numba promises nothing there, so that
module checks once that this numba has every name they rely on (``numba_api``); where
it does not, the kernels are compiled by numba's own pipeline (without the link-only
path, or with the public ``numba.njit``): the same results, a slower first run.

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

import functools
import mmap
from collections.abc import Callable, Mapping, Sequence
from types import FunctionType
from typing import Any, TypeVar

import numba
import numpy as np
from numba.extending import is_jitted
from numpy.typing import NDArray

from controller.kernel_sources import invalidate_if_changed

F = TypeVar("F", bound=Callable[..., Any])

# Before any kernel is loaded: numba's cache knows a kernel's own file only, not the
# kernels compiled into it (controller.kernel_sources).
invalidate_if_changed()

#: The arrays the kernels work on (parameters, state, logs, command rows).
Floats = NDArray[np.float64]

#: Options of ``@kernel``. ``_nrt`` is not in numba's typed signature of ``njit`` (it is
#: an option of its compiler flags, used by numba's own tests), hence the dictionary.
OPTIONS: dict[str, Any] = {
    "cache": True, "_nrt": False, "no_cfunc_wrapper": True, "no_cpython_wrapper": True,
    "forceinline": True,
}
#: Options of ``@allocating_kernel``.
ALLOCATING_OPTIONS: dict[str, Any] = {
    "cache": True, "no_cfunc_wrapper": True, "no_cpython_wrapper": True,
}
#: Options of ``@dispatch_kernel``: those of ``@kernel``, inlined into every caller.
DISPATCH_OPTIONS: dict[str, Any] = {**OPTIONS, "inline": "always"}

#: Every compiled function made by the decorators, by ``module.qualified_name`` (a
#: ``@specialised`` one by its factory's name and its choices), in the order they were
#: made.
KERNELS: dict[str, Any] = {}

#: The options of numba's public ``numba.njit`` that ``@kernel`` and the others keep
#: where this numba lacks the private parts they need (``numba_api``): kernels then
#: compile with numba's runtime and both wrappers, like any numba function.
PUBLIC_OPTIONS = ("cache", "inline")


@functools.cache
def numba_api() -> str:
    """How much of numba's private API the kernels use with the installed numba
    (``controller.numba_hooks``): ``LINK_ONLY``, ``HOOKS`` or "" (``numba.njit``
    only), checked once, before the first kernel is made."""
    try:
        from controller import numba_hooks
    except (ImportError, AttributeError):  # a class moved or renamed
        return ""
    return numba_hooks.fits()


def _registered(function: Callable[..., Any], options: dict[str, Any]) -> Any:
    """``function`` compiled with numba's ``options`` by ``numba_hooks.KernelDispatcher``
    (or ``numba.njit`` with the public ones: ``numba_api``), registered."""
    compiled: Any = function  # NUMBA_DISABLE_JIT=1: the plain Python function
    if not numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
        api = numba_api()
        if api:
            from controller import numba_hooks

            compiled = numba_hooks.kernel_dispatcher(
                function, options, link_only=api == numba_hooks.LINK_ONLY)
        else:
            public = {name: options[name] for name in PUBLIC_OPTIONS if name in options}
            compiled = numba.njit(**public)(function)
    if "<locals>" not in function.__qualname__:  # a specialisation registers itself
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


def dispatch_kernel(function: F) -> F:
    """Compile ``function``, a kernel that chooses which kernel runs from its first
    argument, to be inlined into each kernel that calls it: where the caller passes a
    constant (the choice of a ``@specialised`` kernel), only the branch taken is typed
    and compiled. Called from Python, it compiles every branch."""
    compiled: F = _registered(function, DISPATCH_OPTIONS)
    return compiled


def specialised(factory: Callable[..., F]) -> Callable[..., F]:
    """Memoise ``factory(*choices)``, which defines and returns a ``@kernel`` that reads
    its ``choices`` (ints: a detector kind, a stimulation mode) as closure constants and
    passes them to ``@dispatch_kernel``s, so that it compiles only what they choose.

    Each choice is made once per process and, like any kernel, cached on disk: numba
    keys the cache of a closure by the values it closes over, so they must be plain
    ints (a kernel there would be pickled differently by every process and never found
    in the cache again). Registered in ``KERNELS`` as ``module.factory(0, 1)``.
    """

    @functools.cache
    def make(*choices: int) -> F:
        if not all(type(choice) is int for choice in choices):
            raise TypeError(f"{factory.__qualname__}: choices must be ints, got {choices}")
        compiled = factory(*choices)
        named = ", ".join(str(choice) for choice in choices)
        KERNELS[f"{factory.__module__}.{factory.__qualname__}({named})"] = compiled
        return compiled

    return functools.update_wrapper(make, factory)


@functools.cache
def in_python(compiled: F) -> F:
    """The plain Python function of a kernel, for a set-up call from Python: called
    compiled, a kernel compiles a second version with a Python wrapper (a tenth of a
    second or more on a first run, beside the version the loop's kernels use) to save
    microseconds once per trial or per config check. The kernels it calls by their
    global names run as their plain Python functions too (the config check's
    ``pulse_math.first_pulse_breach`` calls several), so nothing of it is compiled. The
    arithmetic is the same IEEE double arithmetic either way (numba compiles without
    fast-math; ``tests/test_in_python.py`` compares the two bit for bit over every
    valid config and the simulated ankle's set-up)."""
    python: Any = getattr(compiled, "py_func", compiled)  # NUMBA_DISABLE_JIT: already it
    scope = python.__globals__
    callees = {
        name: in_python(scope[name])
        for name in python.__code__.co_names
        if is_jitted(scope.get(name))
    }
    if callees:
        python = functools.update_wrapper(
            FunctionType(python.__code__, {**scope, **callees}, python.__name__,
                         python.__defaults__, python.__closure__),
            python,
        )
    found: F = python
    return found


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


#: From this size on ``fresh_zeros`` maps pages of their own (below it, ``numpy.zeros``).
FRESH_ZEROS_MIN_BYTES = 2**16


def fresh_zeros(shape: int | tuple[int, ...]) -> Floats:
    """``numpy.zeros(shape)``, a large one in fresh pages of its own (an anonymous
    mapping, unmapped with the array): a page costs nothing until it is written.

    For a large array of which little is written, as the watchdog's interventions log
    sized for a record per sample of a compiled block (2 MB, a handful of rows written):
    ``numpy.zeros`` of a block the allocator had freed clears every page of it, and a
    page the heap gave back is faulted in to be cleared (0.5-0.6 ms a simulated trial).
    """
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    count = int(np.prod(dims, dtype=np.int64))
    if count * 8 < FRESH_ZEROS_MIN_BYTES:
        return np.zeros(dims)
    pages = mmap.mmap(-1, count * 8)  # private, anonymous: zero-filled by the kernel
    zeros: Floats = np.frombuffer(pages, dtype=np.float64, count=count).reshape(dims)
    return zeros
