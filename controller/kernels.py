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
  simulated limb: 530 ns of 620 ns per sample, measured with ``perf``; the detectors:
  about 100 ns per sample, twenty times the detection work). They never allocate: state,
  parameters, logs and outputs are arrays the Python object that calls them created and
  keeps alive, so they need no runtime, and a kernel that tried to allocate would fail
  to compile, loudly.

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
or a CI job (``python -m controller.bench.startup --cold N``). Three rules keep it short:

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

import llvmlite.binding as ll
import numba
import numpy as np
from numba.core import compiler, sigutils, types
from numba.core.caching import CompileResultCacheImpl, FunctionCache
from numba.core.codegen import JITCodeLibrary
from numba.core.errors import NumbaNotImplementedError
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys
from numba.np import numpy_support
from numpy.typing import NDArray

from controller.interrupts import interrupts_deferred

F = TypeVar("F", bound=Callable[..., Any])

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


#: Added to the key of every cache entry: numba keys an entry by the types and the
#: source of the function alone, not by its options, so code cached before an option
#: changed (a kernel compiled before ``forceinline``, which callers could not inline)
#: would otherwise be loaded as if it were current.
CACHE_TAG = "forceinline, link only"


class _LinkOnlyLibrary(JITCodeLibrary):
    """numba's library of a kernel compiled for other kernels only (no Python wrapper),
    made without machine code of its own.

    numba links the (optimised) module of every kernel a function calls into the
    function's own module, so a caller's machine code holds its callees' whole: a kernel
    without a Python wrapper, which nothing calls except kernels (no ``cfunc`` either),
    never runs its own machine code. numba emitted it all the same, for every kernel of
    the tree the loop inlines (1.5 s of CPU of a first ``fes sim`` in one process, 141
    libraries). This library is finalised like numba's (callees linked, then LLVM's
    module passes: ``_optimize_final_module``) but never handed to the JIT engine: no
    machine code, no symbols; numba's entry point of the compiled version is then the
    null function pointer it already was without a wrapper, and there is no
    environment in the engine to set.

    In numba's cache it is stored as the module a caller links (``KIND``), and loaded
    as such (``_KernelCacheImpl``): loading it emits no machine code either."""

    KIND = "link only"

    @property
    def codegen(self) -> Any:
        """numba's codegen, through which numba sets the library's environment (this
        library has none in the JIT engine: ``_NoEnvironment``)."""
        return _NoEnvironment(self._codegen)

    def _optimize_final_module(self) -> None:
        """The first of numba's two runs of LLVM's module passes (the one it runs
        before pruning the runtime's reference counts, which a kernel of this library
        does without, with loops rotated for vectorising), not both: a library with
        machine code (the loop, a version Python calls) runs both over all it links.
        One run instead of two saves 1.4 s of CPU on a first ``fes sim`` for 0.1 s
        more in the loop's own passes; the loop's machine code is as large (77.2 kB
        of text against 77.4 kB) and its results the same bit for bit."""
        passes, builder = self._codegen._module_pass_manager(
            loop_vectorize=self._codegen._loopvect, slp_vectorize=False,
            opt=self._codegen._opt_level, cost="cheap",
        )
        passes.run(self._final_module, builder)

    def _finalize_final_module(self) -> None:
        """numba's last step of ``finalize``, less handing the module to the engine."""
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True

    def serialize_using_object_code(self) -> tuple[str, str, bytes]:
        """The cached form: the module that callers link (there is no object code)."""
        return (self.name, self.KIND, self._get_module_for_linking().as_bitcode())

    @classmethod
    def from_cache(cls, codegen: Any, name: str, bitcode: bytes) -> _LinkOnlyLibrary:
        """The library ``serialize_using_object_code`` stored, ready to be linked."""
        library = cls(codegen, name)
        library._final_module = library._shared_module = ll.parse_bitcode(bitcode)
        library._finalize_final_module()
        return library


class _NoEnvironment:
    """A codegen whose ``set_env`` does nothing (the library has no environment in the
    engine to write to: numba would write the pointer at address 0), else numba's."""

    def __init__(self, codegen: Any) -> None:
        self._codegen = codegen

    def set_env(self, env_name: str, env: Any) -> None:
        """Nothing: no machine code reads this library's environment."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codegen, name)


class _KernelCompiler(compiler.Compiler):
    """numba's compiler, building a version without a Python wrapper in a
    ``_LinkOnlyLibrary``."""

    def compile_extra(self, func: Any) -> Any:
        if self.state.library is None and self.state.flags.no_cpython_wrapper:
            self.state.library = _LinkOnlyLibrary(self.state.targetctx.codegen(),
                                                  func.__qualname__)
        return super().compile_extra(func)


class _KernelCacheImpl(CompileResultCacheImpl):
    """numba's (un)pickling of a compiled version, which also loads a
    ``_LinkOnlyLibrary`` (numba's loader knows only object code and bitcode to be made
    into machine code)."""

    def rebuild(self, target_context: Any, payload: Any) -> Any:
        """The compiled version ``payload`` holds (``CompileResult._rebuild``)."""
        (libdata, fndesc, env, signature, objectmode, lifted, typeann, reload_init,
         referenced_envs) = payload
        name, kind, data = libdata
        if kind != _LinkOnlyLibrary.KIND:
            return super().rebuild(target_context, payload)
        for function in reload_init:
            function()
        library = _LinkOnlyLibrary.from_cache(target_context.codegen(), name, data)
        result: Any = compiler.CompileResult  # a namedtuple to mypy, fields unknown
        return result(
            target_context=target_context, typing_context=target_context.typing_context,
            library=library, environment=env,
            entry_point=target_context.get_executable(library, fndesc, env),
            fndesc=fndesc, type_annotation=typeann, signature=signature,
            objectmode=objectmode, lifted=lifted, typing_error=None, call_helper=None,
            metadata=None, reload_init=reload_init, referenced_envs=referenced_envs,
        )


class _KernelCache(FunctionCache):
    """numba's on-disk cache of a kernel, under keys that also carry ``CACHE_TAG``.

    A load is never interrupted halfway: Ctrl-C and SIGTERM are held back while one runs
    (``interrupts_deferred``, a few milliseconds) and delivered after it. LLVM fetches
    the cached machine code through a Python callback; an interrupt raised in it is
    lost (Python reports it as unraisable), LLVM goes on without the code, and numba
    then wrote a kernel's environment to address 0: `fes sim` killed by SIGSEGV, 1 in
    60 SIGTERMs sent as its loop kernel loaded (tests/test_interrupts_exit.py)."""

    _impl_class = _KernelCacheImpl

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        return (*super()._index_key(sig, codegen), CACHE_TAG)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        """The cached version for ``sig`` (None: not cached), loaded whole."""
        with interrupts_deferred():
            return self._load_whole(sig, target_context)

    def _load_whole(self, sig: Any, target_context: Any) -> Any:
        return super().load_overload(sig, target_context)


class _PythonEntryCache(_KernelCache):
    """The cache of a kernel's versions with a Python wrapper: their entries sit beside
    the kernel-only versions of the same function under their own keys (numba's key is
    the types and the source, not how the function was wrapped).

    Loading an entry skips numba's refresh of its CPU target. Before every load numba
    refreshes the whole target (imports some forty typing and lowering modules, NumPy's
    linear algebra and random generators among them, and registers every
    implementation): 0.12 s of the 0.45 s that any command running one cached kernel
    took (``python -m controller.bench.startup``, floor row). Only a compilation needs
    those registries, and numba's compiler refreshes the target itself before it
    compiles anything; machine code loaded from the cache needs only the runtime's
    symbols (memory management), and only an allocating kernel refers to them:
    ``rtsys.initialize`` registers them (once per process, 17 ms) before loading one.
    """

    def __init__(self, py_func: Callable[..., Any], runtime: bool) -> None:
        super().__init__(py_func)
        self._runtime = runtime

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        return (*super()._index_key(sig, codegen), "python entry")

    def _load_whole(self, sig: Any, target_context: Any) -> Any:
        """The cached version for ``sig`` (None: not cached), without the refresh."""
        if self._runtime:
            rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


class _PlainArrayTyping(CPUDispatcher):
    """numba's CPU dispatcher, typing a plain ``np.ndarray`` argument without numba's
    test that it is no masked array: ``np.ma`` is loaded on first use, and that test
    imported it in every command that calls a kernel (8 ms of CPU, a sixtieth of a warm
    ``fes detect``). An exact ``np.ndarray`` never is one. The type is the one numba
    gives it (``numba.core.typing.typeof._typeof_ndarray``;
    ``tests/test_kernel_dispatcher.py`` compares the two over dtypes, layouts and
    read-only arrays); anything else is typed by numba."""

    def typeof_pyval(self, val: Any) -> Any:
        """The numba type of the argument ``val`` of a call from Python."""
        if type(val) is not np.ndarray:
            return super().typeof_pyval(val)
        try:
            dtype = numpy_support.from_dtype(val.dtype)
        except NumbaNotImplementedError:
            return super().typeof_pyval(val)  # numba's own answer for a dtype it lacks
        found = types.Array(dtype, val.ndim, numpy_support.map_layout(val),
                            readonly=not val.flags.writeable)
        self._types_active_call.add(found)  # type: ignore[attr-defined]  # numba untyped
        return found


class KernelDispatcher(_PlainArrayTyping):
    """numba's dispatcher for the CPU, with the two rules of this module's docstring:

    * a call from another kernel is typed on its argument types, never on the values of
      constants: one compiled version per types;
    * compiled for other kernels, a kernel has no Python wrapper (``no_cpython_wrapper``)
      and is kept out of the table Python calls go through (numba would call the missing
      wrapper and crash). A call from Python compiles, or loads from its own cache
      entries, the version with the wrapper on a twin dispatcher of the same function,
      and puts it in this dispatcher's table for the next calls with those types.
    """

    _python: Any = None  # the twin with the Python wrapper, made at the first Python call

    def get_call_template(self, args: Any, kws: Any) -> Any:
        """numba's template for a call from compiled code, on unliteral types."""
        return super().get_call_template(
            tuple(types.unliteral(a) for a in args),
            {name: types.unliteral(a) for name, a in kws.items()},
        )

    def compile(self, sig: Any) -> Any:
        """The version for calls from kernels with the argument types ``sig``: compiled,
        loaded from the cache, or the version with a Python wrapper that a set-up call
        from Python already made for them (the same function; callers inline it and
        drop the wrapper), which saves compiling it twice on a first run."""
        args, _ = sigutils.normalize_signature(sig)
        made = None if self._python is None else self._python.overloads.get(tuple(args))
        if made is not None and tuple(args) not in self.overloads:
            self.add_overload(made)
        return super().compile(sig)

    def add_overload(self, cres: Any) -> None:
        """Record a version compiled for kernels (no Python wrapper: its entry point
        would call nothing), out of the table Python calls go through."""
        self.overloads[tuple(cres.signature.args)] = cres

    def _compile_for_args(self, *args: Any, **kws: Any) -> Any:
        """A call from Python whose types this dispatcher's table lacks.

        A version in the cache is loaded by ``compile``, without the set-up numba's
        ``_compile_for_args`` makes for a compilation first: it registers numba's
        extensions by reading the entry points of every installed distribution, 5-9 ms
        of a warm ``fes detect`` for machine code that needs none of them (the project
        uses no numba extension). Anything else is numba's way, extensions included."""
        twin = self._python_entry()
        if not kws and self.cached(*args):
            entry = twin.compile(tuple(twin.typeof_pyval(arg) for arg in args))
        else:
            entry = twin._compile_for_args(*args, **kws)
        table: Any = self  # numba's C-level table of this dispatcher
        for sig, cres in twin.overloads.items():
            if cres.entry_point is entry:
                table._insert([t._code for t in sig], entry, cres.objectmode)
        return entry

    def compile_for_python(self, sig: tuple[Any, ...]) -> None:
        """Compile (or load) the version Python calls for the argument types ``sig``,
        into numba's cache, ahead of the call: a later call from Python, in this process
        or another, loads it (``controller.trial.compile_ahead``)."""
        self._python_entry().compile(sig)

    def _python_entry(self) -> Any:
        if self._python is None:
            options = dict(self.targetoptions)
            options.pop("no_cpython_wrapper")
            twin: Any = _PlainArrayTyping(py_func=self.py_func, locals=self.locals,
                                          targetoptions=options)
            if isinstance(getattr(self, "_cache", None), FunctionCache):
                twin._cache = _PythonEntryCache(self.py_func, options.get("_nrt", True))
            self._python = twin
        return self._python

    def cached(self, *args: Any) -> bool:
        """Whether numba's cache holds this kernel's version with a Python wrapper for
        arguments like ``args``: a call then loads it instead of compiling."""
        twin = self._python_entry()
        cache = getattr(twin, "_cache", None)
        if not isinstance(cache, FunctionCache):
            return False
        sig = tuple(twin.typeof_pyval(arg) for arg in args)
        key = cache._index_key(sig, twin.targetctx.codegen())
        return key in cache._cache_file._load_index()

    @property
    def signatures(self) -> list[Any]:
        """The argument types of every compiled version, for kernels or for Python."""
        twin = [] if self._python is None else list(self._python.overloads)
        return list(dict.fromkeys([*self.overloads, *twin]))


def _registered(function: Callable[..., Any], options: dict[str, Any]) -> Any:
    """``numba.njit(**options)(function)`` made with ``KernelDispatcher``, registered."""
    compiled: Any = function  # NUMBA_DISABLE_JIT=1: the plain Python function
    if not numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
        targetoptions = {name: value for name, value in options.items() if name != "cache"}
        compiled = KernelDispatcher(
            py_func=function, locals={}, targetoptions={"nopython": True, **targetoptions},
            pipeline_class=_KernelCompiler,
        )
        if options["cache"]:
            compiled._cache = _KernelCache(function)
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
    ``pulse_math.first_pulse_breach`` calls five), so nothing of it is compiled. The
    arithmetic is the same IEEE double arithmetic either way (numba compiles without
    fast-math; ``tests/test_in_python.py`` compares the two bit for bit over every
    valid config and the simulated ankle's set-up)."""
    python: Any = getattr(compiled, "py_func", compiled)  # NUMBA_DISABLE_JIT: already it
    scope = python.__globals__
    callees = {
        name: in_python(scope[name])
        for name in python.__code__.co_names
        if isinstance(scope.get(name), KernelDispatcher)
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
