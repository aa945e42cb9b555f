"""The parts of numba's private API the kernels use (``controller.kernels``), and the
check that this numba has them.

numba's public decorator compiles every function with two wrappers and its own machine
code, and every version Python calls refreshes numba's whole CPU target first. The
project's kernels do better through numba's internals (``controller.kernels``' module
docstring has the rules; each class below says what it saves):

* the **hooks** (the dispatcher, the cache and the typing of arrays): one version per
  argument types, no Python wrapper where no Python calls, cached loads without the
  refresh, Ctrl-C held back while a kernel loads;
* the **link-only** path (``_LinkOnlyLibrary``, ``_KernelCompiler``,
  ``_KernelCacheImpl``): no machine code for a kernel that only other kernels call.

numba promises nothing about these names, and the project asks for ``numba>=0.59``:
``fits()`` checks once, before the first kernel is made, that every private name these
classes rely on is there with the parameters and the attributes they use, and says
how much of them the kernels may use (``LINK_ONLY``, ``HOOKS``, or none). Where the
check fails ``controller.kernels`` falls back on numba's own pipeline: without the
link-only path numba's compiler and cache format (each kernel with its machine code,
under cache keys of their own); without the hooks numba's public ``numba.njit``
(``controller.kernels.PUBLIC_OPTIONS``), and a first run compiles in one process. Either
way the trial is the same bit for bit, only slower (a first run much so)
(``tests/test_numba_fallback.py`` forces both). A numba that moved one of these classes
to another module makes this module fail to import: ``controller.kernels`` then falls
back on ``numba.njit`` too.

Tried: numba 0.68.1 (llvmlite 0.50.0) passes all. numba 0.59.1 (llvmlite 0.42.0), the
oldest ``pyproject.toml`` allows, passes neither: its dispatcher notes the argument
types of a call in a list, not a set (the hooks), and its LLVM passes run under the
legacy pass manager (the link-only path); with ``numba.njit`` it compiles a first
``fes sim`` in 29.6 s (one process) and writes the same ``samples.csv`` as 0.68.1's
link-only kernels, byte for byte (3 s trial, 6 Dec 2026).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import llvmlite.binding as ll
import numpy as np
from numba.core import compiler, sigutils, types
from numba.core.caching import CompileResultCacheImpl, FunctionCache, IndexDataCacheFile
from numba.core.codegen import CPUCodeLibrary, JITCodeLibrary, JITCPUCodegen
from numba.core.cpu import CPUContext, CPUTargetOptions
from numba.core.errors import NumbaNotImplementedError
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys
from numba.np import numpy_support

from controller.interrupts import interrupts_deferred
from controller.kernel_sources import fingerprint

#: What ``fits()`` answers: every private part may be used, or all but the link-only
#: path; or "" (none: ``numba.njit``).
LINK_ONLY = "link only"
HOOKS = "hooks"


def fits() -> str:
    """How much of numba's private API the kernels may use with this numba:
    ``LINK_ONLY``, ``HOOKS`` or "" (module docstring). Cheap (about 0.2 ms): names,
    parameter lists, and the attribute names numba's own methods use (``co_names``),
    which is where the classes below read or replace them."""
    if not _passes(_hooks_fit):
        return ""
    return LINK_ONLY if _passes(_link_only_fits) else HOOKS


def _passes(check: Callable[[], bool]) -> bool:
    """``check()``, false where a name it looks up is missing altogether."""
    try:
        return check()
    except (AttributeError, TypeError, ValueError):
        return False


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def _uses(function: Any, *names: str) -> bool:
    """Whether ``function``'s code names every one of ``names`` (attributes it reads or
    sets, methods it calls)."""
    return set(names) <= set(function.__code__.co_names)


def _hooks_fit() -> bool:
    return all((
        # _KernelCache, _PythonEntryCache, KernelDispatcher.cached
        _params(FunctionCache._index_key) == ["self", "sig", "codegen"],
        _params(FunctionCache.load_overload) == ["self", "sig", "target_context"],
        _params(FunctionCache._load_overload) == ["self", "sig", "target_context"],
        _uses(FunctionCache.__init__, "_impl_class", "_cache_file"),
        hasattr(FunctionCache, "_guard_against_spurious_io_errors"),
        hasattr(IndexDataCacheFile, "_load_index"),
        _params(rtsys.initialize) == ["ctx"],
        # _PlainArrayTyping: numba's own typing of an argument, its bookkeeping included
        _params(CPUDispatcher.typeof_pyval) == ["self", "val"],
        _uses(CPUDispatcher.typeof_pyval, "_types_active_call", "add"),  # 0.59: a list
        callable(getattr(numpy_support, "from_dtype", None)),
        callable(getattr(numpy_support, "map_layout", None)),
        # KernelDispatcher and its construction (controller.kernels.OPTIONS)
        _params(CPUDispatcher.__init__) == ["self", "py_func", "locals", "targetoptions",
                                            "pipeline_class"],
        _params(CPUDispatcher.get_call_template) == ["self", "args", "kws"],
        _params(CPUDispatcher.compile) == ["self", "sig"],
        _params(CPUDispatcher.add_overload) == ["self", "cres"],
        _params(CPUDispatcher._compile_for_args) == ["self", "args", "kws"],  # type: ignore[attr-defined]
        hasattr(CPUDispatcher, "_insert"),
        _uses(CPUDispatcher.__init__, "targetoptions", "locals"),
        all(hasattr(CPUTargetOptions, name) for name in (
            "_nrt", "no_cfunc_wrapper", "no_cpython_wrapper", "forceinline", "inline")),
    ))


def _link_only_fits() -> bool:
    return all((
        # _LinkOnlyLibrary: numba's finalisation, less the engine; one run of passes
        all(hasattr(JITCodeLibrary, name) for name in (
            "_finalize_dynamic_globals", "_verify_declare_only_symbols",
            "_get_module_for_linking", "_finalized", "codegen")),
        _uses(CPUCodeLibrary.__init__, "_codegen", "_final_module", "_shared_module"),
        _uses(CPUCodeLibrary._optimize_final_module, "_module_pass_manager", "_loopvect",
              "_opt_level"),
        _uses(JITCPUCodegen._module_pass_manager, "getModulePassManager"),  # new PM
        _uses(CPUCodeLibrary._finalize_final_module, "_finalize_dynamic_globals",
              "_verify_declare_only_symbols", "_add_module", "_finalized"),
        _uses(compiler.CompileResult._reduce, "serialize_using_object_code"),
        _params(JITCPUCodegen.set_env) == ["self", "env_name", "env"],
        callable(getattr(ll, "parse_bitcode", None)),
        # _KernelCompiler
        _params(compiler.Compiler.compile_extra) == ["self", "func"],
        "library" in _params(compiler.CompilerBase.__init__),
        hasattr(compiler.Flags, "no_cpython_wrapper"),
        # _KernelCacheImpl: the payload of a cached version, as numba rebuilds it
        _params(CompileResultCacheImpl.rebuild) == ["self", "target_context", "payload"],
        _params(compiler.CompileResult._rebuild) == [
            "target_context", "libdata", "fndesc", "env", "signature", "objectmode",
            "lifted", "typeann", "reload_init", "referenced_envs"],
        _params(CPUContext.get_executable) == ["self", "library", "fndesc", "env"],
    ))


def kernel_dispatcher(function: Callable[..., Any], options: dict[str, Any],
                      link_only: bool) -> KernelDispatcher:
    """``function`` compiled by a ``KernelDispatcher`` with numba's ``options``
    (``cache`` among them), kernels for kernels only made ``link_only`` or not."""
    targetoptions = {name: value for name, value in options.items() if name != "cache"}
    compiled: Any = KernelDispatcher(
        py_func=function, locals={}, targetoptions={"nopython": True, **targetoptions},
        pipeline_class=_KernelCompiler if link_only else compiler.Compiler,
    )
    if options["cache"]:
        compiled._cache = _KernelCache(function, link_only)
    return compiled


#: Added to the key of every cache entry: numba keys an entry by the types and the
#: source of the function alone, not by its options, so code cached before an option
#: changed (a kernel compiled before ``forceinline``, which callers could not inline)
#: would otherwise be loaded as if it were current. The link-only path adds its own
#: (its entries are in a form numba's loader does not know). Every key also carries the
#: fingerprint of the package's sources (``controller.kernel_sources.fingerprint``).
CACHE_TAG = "forceinline"


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
    """numba's on-disk cache of a kernel, under keys that also carry ``CACHE_TAG`` (and
    ``LINK_ONLY`` on the link-only path).

    A load is never interrupted halfway: Ctrl-C and SIGTERM are held back while one runs
    (``interrupts_deferred``, a few milliseconds) and delivered after it. LLVM fetches
    the cached machine code through a Python callback; an interrupt raised in it is
    lost (Python reports it as unraisable), LLVM goes on without the code, and numba
    then wrote a kernel's environment to address 0: `fes sim` killed by SIGSEGV, 1 in
    60 SIGTERMs sent as its loop kernel loaded (tests/test_interrupts_exit.py)."""

    def __init__(self, py_func: Callable[..., Any], link_only: bool) -> None:
        if link_only:  # read by numba's __init__: its loader, or this one
            self._impl_class = _KernelCacheImpl
        super().__init__(py_func)
        self.link_only = link_only

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        tag = f"{CACHE_TAG}, {LINK_ONLY}" if self.link_only else CACHE_TAG
        return (*super()._index_key(sig, codegen), tag, fingerprint())

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

    def __init__(self, py_func: Callable[..., Any], runtime: bool, link_only: bool) -> None:
        super().__init__(py_func, link_only)
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
            cache = getattr(self, "_cache", None)
            if isinstance(cache, _KernelCache):
                twin._cache = _PythonEntryCache(self.py_func, options.get("_nrt", True),
                                                cache.link_only)
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
