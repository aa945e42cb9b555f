"""The first ``fes sim`` after an install compiles only the kernels its trial runs.

A fresh interpreter with an empty numba cache of its own (``NUMBA_CACHE_DIR``) runs the
README's first command (a default trial: shank gyroscope, walking mode), then lists
every kernel that got a compiled version (the session's ``first_run`` fixture,
``tests/helpers/first_run.py``, whose cold cache tests/test_numba_fallback.py reuses).
The default trial must compile no heel or fused detector and no timed train, one
version per kernel (no copies for the values of constants), and say how long compiling
took. The same process then runs the fused detector over a few samples, which must
compile its kernels: the probe sees what runs. The time itself is a benchmark's
(``python -m controller.bench.startup --cold N``).
"""

from __future__ import annotations

import pytest

from controller.cgroup import usable_cpus

#: A helper process compiles only where this process may use two CPUs or more
#: (``compile_ahead.spare_cpu``): confined to one (``taskset -c 0``, a one-CPU CI pod),
#: the trial compiles everything itself, and the tests of the helper have nothing to see.
needs_two_cpus = pytest.mark.skipif(
    usable_cpus() < 2, reason="one usable CPU: a first trial compiles without a helper "
    "process by design (compile_ahead.spare_cpu)")

UNUSED_BY_DEFAULT = ("controller.detect.heel.", "controller.detect.fused.",
                     "controller.stim.timed.")


def test_a_default_trial_compiles_no_other_detector_or_mode(first_run):
    compiled = first_run.report["trial"]
    assert any(name.startswith("controller.detect.gyro.") for name in compiled)
    assert any(name.startswith("controller.stim.walking.") for name in compiled)
    assert "controller.trial.compiled_loop._block_for(0, 1)" in compiled
    unused = sorted(n for n in compiled if n.startswith(UNUSED_BY_DEFAULT))
    assert unused == []


def test_every_kernel_is_compiled_once_for_its_argument_types(first_run):
    compiled = first_run.report["trial"]
    assert len(compiled) > 50
    several = {name: sigs for name, sigs in compiled.items() if len(sigs) > 1}
    assert several == {}
    assert not [name for name, sigs in compiled.items() if "Literal" in sigs[0]]


@needs_two_cpus
def test_a_helper_process_compiles_the_limb_and_the_scheduler_meanwhile(first_run):
    """controller.trial.compile_ahead: the limb's and the scheduler's kernels reach the
    trial from the cache a helper process filled, while this process compiled the
    detector and the watchdog; the helper then compiled the loop itself, while this
    process opened the files and compiled the scoring's kernel."""
    trial, here = first_run.report["trial"], set(first_run.report["here"])
    helped = ["sim.limb.limb_step", "controller.stim.walking.walking_step",
              "controller.trial.compiled_loop._block_for(0, 1)"]
    assert all(name in trial for name in helped)
    assert not [name for name in helped if name in here]
    assert "controller.detect.gyro.gyro_step" in here
    assert "controller.safety.decide.watchdog_submit" in here
    assert {"controller.pulses._pulse_times", "controller.trial.csvtext.render"} <= here


@needs_two_cpus
def test_the_loop_and_its_stages_compile_without_the_cycle_collector(first_run):
    """hotpath.collector_off: numba's compiler keeps Python's cycle collector busy for a
    tenth of the compile time; it is off while the stages and the loop compile, in the
    helper too (the trial's CSV kernels compile as its files open, outside)."""
    collected = first_run.report["collected"]
    helper = {name: on for name, on in collected.items() if name.endswith(" helper")}
    assert "controller.trial.compiled_loop._block_for(0, 1) helper" in helper
    assert not any(helper.values())
    assert collected["controller.detect.gyro.gyro_step here"] is False
    assert collected["controller.safety.decide.watchdog_submit here"] is False


def test_the_first_run_says_how_long_compiling_took(first_run):
    lines = first_run.stderr.splitlines()
    assert any(line.startswith("compiling the simulation") for line in lines)
    assert any(line.startswith("compiled in ") and line.endswith(" s") for line in lines)


def test_the_probe_sees_a_detector_that_runs(first_run):
    after = first_run.report["after_fused"]
    assert any(name.startswith("controller.detect.fused.") for name in after)
    assert "controller.detect.detector._batch_for(2)" in after
