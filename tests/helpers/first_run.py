"""The first ``fes sim`` after an install, run once per session (``conftest.first_run``).

A fresh interpreter with an empty numba cache of its own (``NUMBA_CACHE_DIR``) runs the
README's first command (a default trial: shank gyroscope, walking mode, 3 s), logging
every kernel compiled by any process (a forked compiling helper inherits the listener);
then runs the fused detector over a few samples, and reports what it saw as JSON on its
last line. Two modules read it: ``tests/test_first_run.py`` (what a first run compiles,
and where) and ``tests/test_numba_fallback.py`` (its link-only kernels, its cache and
its ``samples.csv`` are the reference the fallbacks must not load and must equal). One
cold compile serves both: it was two, each 13-20 s on one CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import gc, json, os, sys
    import numpy as np
    from numba.core import event
    from controller.cli import main
    from controller.kernels import KERNELS, numba_api

    def compiled():
        return {name: [str(s) for s in k.signatures]
                for name, k in KERNELS.items() if k.signatures}

    log = sys.argv[2]  # every compilation, by any process (a forked helper inherits this)

    class Compiled(event.Listener):
        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            names = [n for n, k in KERNELS.items() if getattr(k, "py_func", k) is function]
            if names:  # a kernel of the project's, not one of numba's own overloads
                with open(log, "a") as out:
                    out.write(json.dumps([os.getpid(), names[0], str(ev.data["args"]),
                                          gc.isenabled()]))
                    out.write("\\n")

        def on_end(self, ev):
            pass

    event.register("numba:compile", Compiled())
    os.getloadavg = lambda: (0.0, 0.0, 0.0)  # a quiet machine: compile in two processes
    code = main(["sim", "--duration-s", "3", "--out", sys.argv[1]])
    step = KERNELS["controller.detect.gyro.gyro_step"]
    libraries = sorted({type(made.library).__name__ for made in step.overloads.values()})
    trial = {}
    here = set()  # kernels this process compiled (not loaded from the cache)
    collected = {}  # whether the cycle collector was on, by kernel and process
    for line in open(log):
        pid, name, args, enabled = json.loads(line)
        trial.setdefault(name, set()).add(args)
        if pid == os.getpid():
            here.add(name)
        collected[f"{name} {'here' if pid == os.getpid() else 'helper'}"] = enabled
    trial = {name: sorted(sigs) for name, sigs in trial.items()}
    from controller.detect.config import DetectorConfig
    from controller.detect.detector import detect_batch
    t = np.arange(200) / 500.0
    detect_batch(DetectorConfig(sensor="fused").setup(), t, np.sin(t), np.ones(200))
    print(json.dumps({"code": code, "api": numba_api(), "dispatcher": type(step).__name__,
                      "libraries": libraries, "trial": trial, "here": sorted(here),
                      "after_fused": compiled(), "collected": collected}))
    """
)


@dataclass(frozen=True)
class FirstRun:
    """What the first run reported (``SCRIPT``'s last line), what it wrote to stderr,
    the numba cache it filled and its trial's folder."""

    report: dict
    stderr: str
    cache: Path
    trial: Path


def first_run(folder: Path) -> FirstRun:
    """Run ``SCRIPT`` in a fresh interpreter with an empty numba cache under ``folder``."""
    cache, trial = folder / "numba-cache", folder / "trial"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(trial), str(folder / "log")],
        capture_output=True, text=True, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return FirstRun(json.loads(result.stdout.splitlines()[-1]), result.stderr, cache, trial)
