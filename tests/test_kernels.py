"""Every numba kernel is made by ``controller.kernels``, compiles, and is cached.

``controller.kernels`` is the one place that says how kernels are compiled (``@kernel``
without numba's runtime, ``@allocating_kernel`` with it, both cached; ``@dispatch_kernel``
inlined into its callers) and lists them (``KERNELS``). These tests import every module
of the project, check that no kernel is compiled any other way, then run the work that
reaches every kernel (simulated trials with each detector and each stimulation mode, the
patient alone, the detectors over a recording, the benchmarks' own loops) and check that
numba's cache holds a compiled version of every kernel (but the inlined ones, compiled
inside their callers) for its current source. A kernel that nothing reaches, that
fails to compile, or that is not cached fails here; so does a stale cache (a caller
loaded from the cache while a kernel it calls has changed since, which
``controller.kernel_sources`` should have prevented: tests/test_numba_cache_stale.py).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import controller
import hw
import sim
from controller.config import load_config
from controller.kernels import (
    ALLOCATING_OPTIONS,
    DISPATCH_OPTIONS,
    KERNELS,
    OPTIONS,
    kernels,
)
from controller.numba_hooks import KernelDispatcher

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (controller, sim, hw)
CLEAR_CACHES = "find . -name '*.nbi' -delete -o -name '*.nbc' -delete"

#: Simulated trials that between them reach every stage's kernels: each detector (and
#: heel input) and each stimulation mode, one and two channels (compiled loop).
TRIALS: dict[str, dict[str, Any]] = {
    "gyro_walking": {},
    "heel_switch": {"stim": {"preset": "walkaide"}, "detector": {"sensor": "heel"}},
    "fused_force": {"detector": {"sensor": "fused", "heel_input": "force"}},
    "training": {"stim": {"mode": "training"}},
    "two_channels_predicted": {"stim": {"preset": "peroneal_calf"}},
}


def _all_modules() -> list[Any]:
    modules = []
    for package in PACKAGES:
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                modules.append(importlib.import_module(info.name))
    return modules


def _defined_dispatchers() -> dict[str, CPUDispatcher]:
    """Every numba function a module of the project defines, by ``module.name``."""
    found = {}
    for module in _all_modules():
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.__name__:
                found[f"{module.__name__}.{value.py_func.__qualname__}"] = value
    return found


def _exercise_every_kernel(out: Path) -> None:
    from controller.bench.scheduler import main as scheduler_bench
    from controller.bench.watchdog import kernel_us_per_sample
    from controller.detect.config import DetectorConfig
    from controller.detect.detector import detect_batch
    from controller.trial.simulated import run_simulated_trial
    from sim.ankle import stretch_test
    from sim.limb import SimulatedLimb
    from sim.muscle import IsometricMuscle
    from sim.openloop import Stimulation, stride_commands
    from sim.patient import load_patient

    for name, overrides in TRIALS.items():
        layers = {**overrides, "loop": {"duration_s": 2.0}}
        run_simulated_trial(load_config(overrides=layers), out / name)
    # The loop a live trial runs, which warms every stage's kernels up first.
    python_loop = load_config(overrides={"loop": {"duration_s": 1.0}})
    run_simulated_trial(python_loop, out / "python_loop", compiled=False)
    profile = load_patient("moderate")
    limb = SimulatedLimb(profile, 1000.0, 2.0, seed=1)
    limb.run(stride_commands(limb.schedule, 1000.0, 2000, Stimulation()))
    IsometricMuscle(profile).train(40.0, 0.2, 0.05)
    stretch_test(profile, 2.0, 10.0, 0.2)
    t = np.arange(2000) / 1000.0
    detect_batch(DetectorConfig().setup(), t, np.sin(2 * np.pi * t))
    kernel_us_per_sample(100)
    scheduler_bench(["--seconds", "1", "--repeat", "1"])


def _cached_versions(dispatcher: CPUDispatcher) -> int:
    """How many compiled versions numba's cache holds for the dispatcher's current
    source (numba drops an index whose source file changed since it was written)."""
    return len(dispatcher._cache._cache_file._load_index())


def test_every_kernel_is_made_by_controller_kernels():
    defined = _defined_dispatchers()
    assert len(defined) > 100
    assert sorted(set(defined) - set(KERNELS)) == []
    assert all(defined[name] is KERNELS[name] for name in defined)


def test_no_module_compiles_with_numba_directly():
    """One place for the options: ``numba.njit``/``numba.jit`` appear nowhere else."""
    offenders = []
    for package in ("controller", "sim", "hw"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "controller" / "kernels.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in ("njit", "jit"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.ImportFrom) and node.module == "numba":
                    offenders += [f"{path.relative_to(ROOT)}:{node.lineno}"
                                  for alias in node.names if alias.name in ("njit", "jit")]
    assert offenders == []


def test_kernels_have_one_of_the_option_sets():
    _all_modules()
    option_sets = [OPTIONS, ALLOCATING_OPTIONS, DISPATCH_OPTIONS]
    for name, dispatcher in KERNELS.items():
        assert isinstance(dispatcher, KernelDispatcher), name
        assert dispatcher._cache.__class__.__name__ == "_KernelCache", name
        options = {"cache": True, **dispatcher.targetoptions}
        options.pop("nopython")
        assert options in option_sets, name
    assert OPTIONS["_nrt"] is False and "_nrt" not in ALLOCATING_OPTIONS
    assert all(options["no_cfunc_wrapper"] and options["no_cpython_wrapper"]
               for options in option_sets)


def _inlined(dispatcher: CPUDispatcher) -> bool:
    """A ``@dispatch_kernel``: compiled into its callers, alone only if Python calls it."""
    return dispatcher.targetoptions.get("inline") == "always"


def test_kernels_of_one_part_can_be_listed():
    _all_modules()
    detect = kernels("controller.detect")
    assert "controller.detect.gyro.gyro_step" in detect
    assert not any(name.startswith("sim.") for name in detect)
    assert set(kernels()) == set(KERNELS)


@pytest.fixture(scope="module")
def exercised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CPUDispatcher]:
    defined = _defined_dispatchers()
    _exercise_every_kernel(tmp_path_factory.mktemp("kernels"))
    return defined


def test_every_kernel_compiles_and_is_cached(exercised, capsys):
    capsys.readouterr()
    missing = sorted(
        name for name, kernel in exercised.items()
        if not _inlined(kernel) and _cached_versions(kernel) == 0
    )
    assert missing == [], (
        f"not compiled, or not cached for its current source: {missing}; if a kernel "
        f"changed, clear numba's caches ({CLEAR_CACHES}) and run again"
    )


def test_an_allocating_kernel_loaded_from_the_cache_runs_in_a_fresh_interpreter():
    """Cached kernels load without numba's refresh of its CPU target
    (``_PythonEntryCache``); one that allocates its result still gets numba's runtime:
    its array comes back right, in a process that compiled nothing."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys, numpy as np\n"
        "from controller.trial.csvtext import hard_cells\n"
        "found = hard_cells(np.array([[1.0, np.inf, 2.0], [np.nan, 3.0, 1e300]]),"
        " np.zeros(2, dtype=np.int64))\n"
        "print(json.dumps([found.tolist(), 'numba.np.linalg' in sys.modules]))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=300, check=True) for _ in range(2)]
    found, refreshed = json.loads(runs[1].stdout.splitlines()[-1])
    assert not refreshed  # loaded from the cache the first run filled, not compiled
    assert found == json.loads(runs[0].stdout.splitlines()[-1])[0]
    assert found == [2, 5]  # row-major cells of the infinity and of 1e300
