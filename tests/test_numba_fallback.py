"""Where numba lacks the private parts the kernels use, they compile numba's way.

``controller.numba_hooks.fits`` checks once that this numba has every private name the
kernels' dispatcher, cache and link-only path rely on; a numba that fails the check gets
numba's own pipeline (``controller.kernels.numba_api``). The first run after an install
(the session's ``first_run`` fixture, ``tests/helpers/first_run.py``: a fresh
interpreter, an empty cache, a 3 s default trial) is the link-only one: this numba
passes the check. Each fallback below then forces one answer of the check in a fresh
interpreter (before any kernel is made) and runs the same trial with a copy of that
first run's cache, in this order: the link-only entries must not be loaded by the runs
after it (numba's loader does not know them), and each fallback must compile and run
every kernel the trial needs and write the same ``samples.csv``, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.first_run import FirstRun

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from controller import numba_hooks

    numba_hooks.fits = lambda: sys.argv[1]  # the check's answer, forced
    os.getloadavg = lambda: (0.0, 0.0, 0.0)  # a quiet machine: a helper where it can
    from controller.cli import main
    from controller.kernels import KERNELS, numba_api

    code = main(["sim", "--duration-s", "3", "--out", sys.argv[2]])
    step = KERNELS["controller.detect.gyro.gyro_step"]
    libraries = {type(made.library).__name__ for made in step.overloads.values()}
    print(json.dumps({"code": code, "api": numba_api(), "dispatcher": type(step).__name__,
                      "libraries": sorted(libraries)}))
    """
)


def _trial(mode: str, folder: Path, cache: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode, str(folder)], capture_output=True,
        text=True, timeout=900, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_numba_s_own_pipeline_runs_the_same_trial_bit_for_bit(tmp_path, first_run: FirstRun):
    link_only = {key: first_run.report[key] for key in ("code", "api", "dispatcher",
                                                         "libraries")}
    assert link_only == {"code": 0, "api": "link only", "dispatcher": "KernelDispatcher",
                         "libraries": ["_LinkOnlyLibrary"]}
    cache = shutil.copytree(first_run.cache, tmp_path / "numba-cache")
    hooks = _trial("hooks", tmp_path / "hooks", cache)
    assert hooks == {"code": 0, "api": "hooks", "dispatcher": "KernelDispatcher",
                     "libraries": ["JITCodeLibrary"]}
    public = _trial("", tmp_path / "public", cache)
    assert public["code"] == 0 and public["api"] == ""
    assert public["dispatcher"] == "CPUDispatcher"  # numba.njit's own
    samples = (first_run.trial / "samples.csv").read_bytes()
    assert len(samples.splitlines()) > 1000
    assert (tmp_path / "hooks" / "samples.csv").read_bytes() == samples
    assert (tmp_path / "public" / "samples.csv").read_bytes() == samples
