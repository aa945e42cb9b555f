"""``fes --help`` and every ``fes <command> --help`` import nothing heavy.

Start-up time of the command line is what its imports cost: numpy, numba (with
llvmlite) and pydantic take most of a second together, while argparse and the
project's parsers take a few milliseconds. Each case runs the real ``fes`` entry point
in a fresh interpreter and lists which of those modules it left in ``sys.modules``: a
structural check, not a timed one (the times are printed by ``python -m
controller.bench.startup``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from controller.cli import command_names

#: What only a running command may import: the numerics, the compiler, the models,
#: the optional back ends and plotting, and the project's parts that pull them in.
HEAVY = (
    "numpy", "numba", "llvmlite", "pydantic", "serial", "matplotlib", "dask", "tqdm", "pyarrow",
    "controller.config", "controller.kernels", "controller.validation", "controller.detect",
    "controller.safety", "controller.stim", "controller.trial.simulated", "sim", "hw",
)

_PROBE = """
import json, sys
from controller.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = %r
print(json.dumps(sorted({m for m in sys.modules for h in heavy
                         if m == h or m.startswith(h + ".")})))
"""


def heavy_modules_after(*argv: str, probe: tuple[str, ...] = HEAVY) -> list[str]:
    """The heavy modules (or those of ``probe``) a fresh ``fes argv...`` has imported
    when it returns."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (probe,), *argv],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_every_command_is_probed():
    assert len(command_names()) >= 8


def test_fes_help_imports_nothing_heavy():
    assert heavy_modules_after("--help") == []


@pytest.mark.parametrize("command", command_names())
def test_command_help_imports_nothing_heavy(command):
    assert heavy_modules_after(command, "--help") == []


def test_the_probe_sees_what_a_running_command_imports(tmp_path):
    """Guards the checks above: a command that builds a config does import pydantic."""
    config = tmp_path / "trial.toml"
    config.write_text("[loop]\nduration_s = 5.0\n")
    found = heavy_modules_after("check-config", str(config))
    assert "pydantic" in found and "controller.config" in found


def test_fes_detect_loads_its_cached_kernel_without_numbas_compiler_or_the_trial_config(
    tmp_path,
):
    """A warm ``fes detect`` loads machine code from numba's cache and validates only
    the detector's config: numba's compiler registries (its linear algebra, random
    generators, typed containers), numpy's masked arrays and the trial config with the
    watchdog's kernels stay unloaded (each costs start-up time). The first run may
    compile."""
    samples = tmp_path / "samples.csv"
    t = [i / 500.0 for i in range(2000)]
    samples.write_text("time_s,gyro_rad_s\n" + "".join(
        f"{x:.3f},{2.0 * math.sin(2 * math.pi * x):.4f}\n" for x in t))
    argv = ("detect", "--input", str(samples), "--output", str(tmp_path / "events.csv"))
    heavy_modules_after(*argv)  # compiles on a cold cache
    found = set(heavy_modules_after(*argv, probe=("numba.np.linalg", "numba.typed.typeddict",
                                                  "numpy.ma", "controller.config",
                                                  "controller.safety")))
    assert "numba.np.linalg" not in found and "numba.typed.typeddict" not in found
    assert "numpy.ma" not in found  # np.median's and numba's typeof's first call import it
    assert "controller.config" not in found and "controller.safety" not in found
    assert (tmp_path / "events.csv").read_text().startswith("time_s,event")
