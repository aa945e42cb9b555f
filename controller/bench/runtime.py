"""A benchmark's measurement repeated with numba's runtime (NRT) on, for comparison.

``@kernel`` compiles without numba's runtime (``controller/kernels.py``): the runtime
reference-counts every array a compiled function receives, slices or hands on, and the
per-sample kernels pass many. What that saves is measured by running the same
measurement in a child interpreter whose kernels are made with ``_nrt`` on before any is
compiled, with a numba cache of its own (numba's cache index does not tell the two
builds apart). ``python -m controller.bench.detector --nrt`` and ``python -m
controller.bench.simulator --nrt`` use it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

#: The child: argv 1 the module, 2 its function, 3 the arguments as a JSON list; prints
#: the function's result as JSON.
_CHILD = """
import importlib, json, sys
from controller import kernels
if kernels.KERNELS:
    raise RuntimeError("a kernel was made before numba's runtime was switched on")
kernels.OPTIONS["_nrt"] = kernels.DISPATCH_OPTIONS["_nrt"] = True
measure = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
print(json.dumps(measure(*json.loads(sys.argv[3]))))
"""


def with_runtime(module: str, function: str, *args: object) -> Any:
    """``module.function(*args)`` (arguments and result JSON) called in a child process
    whose kernels are compiled with numba's runtime on. ``subprocess.CalledProcessError``
    (with the child's error output) if it fails."""
    with tempfile.TemporaryDirectory(prefix="fes-bench-nrt-") as cache:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, module, function, json.dumps(args)],
            env=dict(os.environ, NUMBA_CACHE_DIR=cache), capture_output=True, text=True,
            check=True,
        )
    return json.loads(done.stdout)
