"""``controller.trial.compile_ahead``: when a first run forks a compile helper, and that
the helper never outlives what it was for. (That the helper's kernels reach the trial
is tests/test_first_run.py; that the trial is unchanged, tests/test_sim_pinned.py.)"""

from __future__ import annotations

import os
import time

import pytest

from controller.trial import compile_ahead
from controller.trial.compile_ahead import KernelJob, compile_stages


class Loop:
    """A compiled loop as ``compile_stages`` sees it: in the cache, or not."""

    def __init__(self, cached: bool) -> None:
        self._cached = cached

    def cached(self, *args: object) -> bool:
        return self._cached


class Kernel:
    """Records where it was compiled; ``action`` runs in its place."""

    def __init__(self, action=None) -> None:
        self.compiled_in: list[int] = []
        self.action = action

    def compile(self, types: tuple[object, ...]) -> None:
        self.compiled_in.append(os.getpid())
        if self.action is not None:
            self.action()


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


def test_a_busy_machine_or_a_cached_loop_compiles_here_alone(monkeypatch):
    def no_fork() -> int:
        raise AssertionError("forked a helper")

    monkeypatch.setattr(os, "fork", no_fork)
    own = Kernel()
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    compile_stages(Loop(cached=False), (), [KernelJob(Kernel(), ())], [KernelJob(own, ())])
    quiet(monkeypatch)
    compile_stages(Loop(cached=True), (), [KernelJob(Kernel(), ())], [KernelJob(own, ())])
    assert own.compiled_in == []  # the loop's own call compiles everything, as before


def test_a_helper_that_fails_leaves_its_part_to_this_process(monkeypatch, tmp_path):
    quiet(monkeypatch)
    marker = tmp_path / "helper ran"

    def fail() -> None:
        marker.write_text(str(os.getpid()))
        raise RuntimeError("helper failed")

    own = Kernel()
    compile_stages(Loop(cached=False), (), [KernelJob(Kernel(fail), ())], [KernelJob(own, ())])
    assert own.compiled_in == [os.getpid()]
    assert int(marker.read_text()) != os.getpid()  # it ran, in another process


def test_an_interrupted_first_run_ends_its_helper_at_once(monkeypatch, tmp_path):
    """Ctrl-C while this process compiles: the helper (still busy) is killed and reaped
    before the interrupt goes on, so no compiler is left running."""
    quiet(monkeypatch)
    pid_file = tmp_path / "helper pid"

    def busy() -> None:
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)

    def interrupted() -> None:
        while not pid_file.exists():
            time.sleep(0.01)
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        compile_stages(Loop(cached=False), (), [KernelJob(Kernel(busy), ())],
                       [KernelJob(Kernel(interrupted), ())])
    assert time.monotonic() - start < 30
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_job_names_the_numba_types_of_its_arguments():
    import numpy as np
    from numba import types

    job = compile_ahead.job("kernel", np.zeros(3), 0, 0.0, True)
    assert job.types == (types.float64[::1], types.int64, types.float64, types.boolean)
