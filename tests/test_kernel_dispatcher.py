"""``controller.kernels.KernelDispatcher``: kernels compiled for kernels only, called from
Python all the same.

A kernel compiled as the callee of another has no Python wrapper; numba would call the
missing wrapper and crash the interpreter if Python then called it. These tests run in
fresh interpreters (a crash fails them instead of the test run) on a module of their
own, twice: the first process compiles, the second must find everything in the cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

MODULE = textwrap.dedent(
    """
    from controller.kernels import kernel

    SCALE = 3  # a constant passed to the callee: typed int64, not Literal[int](3)

    @kernel
    def inner(x, scale):
        return x * scale + 1.0

    @kernel
    def outer(x):
        return inner(x, SCALE) + inner(x, 2)
    """
)

SCRIPT = textwrap.dedent(
    """
    import json
    import probe_kernels as m

    first = m.outer(2.0)  # outer for Python, inner for outer (no Python wrapper)
    second = m.inner(2.0, 5)  # Python calls inner: its version with the wrapper
    third = m.inner(4.0, 5)  # now straight from the dispatcher's table
    print(json.dumps({
        "values": [first, second, third],
        "inner_for_kernels": [str(s) for s in m.inner.overloads],
        "inner_signatures": [str(s) for s in m.inner.signatures],
        "misses": sum(sum(d.stats.cache_misses.values())
                      for d in (m.outer, m.outer._python, m.inner, m.inner._python)),
    }))
    """
)


def _run(folder: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=folder, capture_output=True, text=True,
        timeout=300, env={"PYTHONPATH": str(folder), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_a_kernel_compiled_for_kernels_can_be_called_from_python(tmp_path):
    (tmp_path / "probe_kernels.py").write_text(MODULE)
    first = _run(tmp_path)
    assert first["values"] == [2.0 * 3 + 1 + 2.0 * 2 + 1, 11.0, 21.0]
    assert first["inner_for_kernels"] == ["(float64, int64)"]  # one version, no literals
    assert first["inner_signatures"] == ["(float64, int64)"]
    assert first["misses"] == 3  # outer for Python, inner for outer and for Python
    again = _run(tmp_path)
    assert again["values"] == first["values"]
    assert again["misses"] == 0  # both versions of inner were cached, each under its key


SETUP_FIRST = textwrap.dedent(
    """
    import json
    import probe_kernels as m

    first = m.inner(2.0, 5)  # a set-up call from Python: the version with the wrapper
    second = m.outer(2.0)  # outer's calls of inner use that version
    print(json.dumps({
        "values": [first, second],
        "misses": {name: sum(d.stats.cache_misses.values()) for name, d in (
            ("outer", m.outer._python), ("inner for kernels", m.inner),
            ("inner for Python", m.inner._python))},
    }))
    """
)


def test_a_kernel_python_called_first_is_not_compiled_again_for_kernels(tmp_path):
    """A set-up call from Python compiles a leaf kernel with its wrapper; a kernel that
    then calls it inlines that version instead of compiling the leaf a second time (a
    first run's watchdog did so for its pulse arithmetic)."""
    (tmp_path / "probe_kernels.py").write_text(MODULE)
    for misses in (1, 0):  # compiled, then all from the cache
        result = subprocess.run(
            [sys.executable, "-c", SETUP_FIRST], cwd=tmp_path, capture_output=True,
            text=True, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        found = json.loads(result.stdout.splitlines()[-1])
        assert found["values"] == [11.0, 2.0 * 3 + 1 + 2.0 * 2 + 1]
        assert found["misses"] == {"outer": misses, "inner for kernels": 0,
                                   "inner for Python": misses}


def _arrays() -> list[object]:
    """Arguments of every kind a plain array can be: dtypes, dimensions, layouts,
    read-only; a subclass; and things that are not arrays."""
    import numpy as np

    base = np.arange(24.0).reshape(2, 3, 4)
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    return [
        np.zeros(3), np.zeros(3, dtype=np.int8), np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.bool_), np.zeros(3, dtype=np.complex128), np.zeros(()),
        base, np.asfortranarray(base), base[:, ::2], base[..., 1], frozen,
        np.zeros(2, dtype=[("a", np.float64), ("b", np.int32)]),
        np.zeros(2, dtype="U3"), np.zeros(2, dtype=object),
        np.ma.masked_array([1.0, 2.0]), np.arange(3.0).view(type("Sub", (np.ndarray,), {})),
        1.5, 3, (1.0, 2.0),
    ]


def test_a_plain_array_is_typed_as_numba_types_it_and_anything_else_by_numba():
    """KernelDispatcher types a plain ``np.ndarray`` itself (numba's way would import
    ``numpy.ma``): the type must be the one numba's dispatcher gives, for every dtype,
    layout and flag, and for what is not a plain array."""
    from numba.core.registry import CPUDispatcher

    from controller.kernels import kernel

    @kernel
    def identity(x):
        return x

    def typed(typeof, value):
        try:
            return typeof(value)
        except Exception as exc:  # numba refuses a masked array with an error
            return type(exc)

    for value in _arrays():
        expected = typed(lambda v: CPUDispatcher.typeof_pyval(identity, v), value)
        assert typed(identity.typeof_pyval, value) == expected, value


LINK_ONLY = textwrap.dedent(
    """
    import json, sys
    import numba
    import probe_kernels as m

    if sys.argv[1] == "kernels only":  # outer's callee alone, as a first run's helper does
        sig = (numba.float64, numba.int64)
        m.inner.compile(sig)
        made = m.inner.overloads[sig]
        engine = made.library._codegen._engine
        print(json.dumps({
            "library": type(made.library).__name__,
            "machine code": engine.is_symbol_defined(made.fndesc.mangled_name),
            "misses": sum(m.inner.stats.cache_misses.values()),
        }))
    else:  # another process: outer links inner from the cache
        print(json.dumps({
            "value": m.outer(2.0),
            "misses": {name: sum(d.stats.cache_misses.values()) for name, d in (
                ("outer", m.outer._python), ("inner for kernels", m.inner))},
            "library": type(m.inner.overloads[(numba.float64, numba.int64)].library).__name__,
        }))
    """
)


def test_a_kernel_compiled_for_kernels_only_has_no_machine_code_and_links_from_the_cache(
    tmp_path,
):
    """A kernel's version without a Python wrapper is only ever linked into its callers
    (whose machine code holds it): numba emits none for it (``_LinkOnlyLibrary``), it is
    cached as the module a caller links, and a caller compiled in another process (a
    first run's helper compiling the loop) links it from the cache, with the same
    result."""
    (tmp_path / "probe_kernels.py").write_text(MODULE)

    def run(step: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", LINK_ONLY, step], cwd=tmp_path, capture_output=True,
            text=True, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return dict(json.loads(result.stdout.splitlines()[-1]))

    assert run("kernels only") == {"library": "_LinkOnlyLibrary", "machine code": False,
                                   "misses": 1}
    linked = run("caller")
    assert linked["value"] == 2.0 * 3 + 1 + 2.0 * 2 + 1
    assert linked["misses"] == {"outer": 1, "inner for kernels": 0}
    assert linked["library"] == "_LinkOnlyLibrary"
