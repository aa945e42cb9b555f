"""``controller.trial.compile_ahead``: when a first run forks a compile helper, what runs
where and in which order, and that the helper never outlives what it was for. (That the
helper's kernels reach the trial is tests/test_first_run.py; that the trial is
unchanged, tests/test_sim_pinned.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from controller.trial import compile_ahead
from controller.trial.compile_ahead import KernelJob, LoopCompilation


class Kernel:
    """Records in a file where each version of it was compiled (a forked helper's
    records reach the test that way); ``action`` runs in its place."""

    def __init__(self, log: Path, name: str, action=None, cached: bool = False) -> None:
        self.log, self.name, self.action, self._cached = log, name, action, cached

    def cached(self, *args: object) -> bool:
        return self._cached

    def compile(self, types: tuple[object, ...]) -> None:
        self._record("kernels")

    def compile_for_python(self, types: tuple[object, ...]) -> None:
        self._record("python")

    def _record(self, version: str) -> None:
        if self.action is not None:
            self.action()
        with self.log.open("a") as log:
            log.write(f"{self.name} {version} {os.getpid()}\n")

    def compiled(self) -> list[tuple[str, int]]:
        """(version, pid) of every compilation of this kernel, in order."""
        if not self.log.exists():
            return []
        lines = [line.split() for line in self.log.read_text().splitlines()]
        return [(version, int(pid)) for name, version, pid in lines if name == self.name]


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


def compilation(loop: Kernel, helper: Kernel, own: Kernel, later: Kernel | None = None
                ) -> LoopCompilation:
    return LoopCompilation(loop, (), [KernelJob(helper, ())], [KernelJob(own, ())],
                           [] if later is None else [KernelJob(later, (), python=True)])


def test_a_busy_machine_or_a_cached_loop_compiles_here_alone(monkeypatch, tmp_path):
    def no_fork() -> int:
        raise AssertionError("forked a helper")

    monkeypatch.setattr(os, "fork", no_fork)
    log = tmp_path / "log"
    own, later = Kernel(log, "own"), Kernel(log, "later")
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    busy = compilation(Kernel(log, "loop"), Kernel(log, "helper"), own, later)
    busy.start()
    busy.finish()
    quiet(monkeypatch)
    cached = compilation(Kernel(log, "loop", cached=True), Kernel(log, "helper"), own, later)
    cached.start()
    cached.finish()
    assert not log.exists()  # the loop's own call compiles everything, as before


def test_the_helper_compiles_the_loop_once_this_process_has_its_stages(monkeypatch, tmp_path):
    """The helper compiles its stages, waits for this process's, then compiles the loop
    (finding both in the cache) while this process compiles the later kernels."""
    quiet(monkeypatch)
    log = tmp_path / "log"
    own = Kernel(log, "own", action=lambda: time.sleep(0.5))  # the helper's part is quicker
    loop, helper, later = Kernel(log, "loop"), Kernel(log, "helper"), Kernel(log, "later")
    compiling = compilation(loop, helper, own, later)
    compiling.start()
    compiling.finish()
    here = os.getpid()
    assert own.compiled() == [("kernels", here)]
    assert later.compiled() == [("python", here)]
    (version, helper_pid), = helper.compiled()
    assert version == "kernels" and helper_pid != here
    assert loop.compiled() == [("python", helper_pid)]  # the version Python calls
    order = [line.split()[0] for line in log.read_text().splitlines()]
    assert order.index("loop") > order.index("own")


def test_a_helper_that_fails_leaves_its_part_to_this_process(monkeypatch, tmp_path):
    quiet(monkeypatch)
    log = tmp_path / "log"

    def fail() -> None:
        raise RuntimeError("helper failed")

    loop, own = Kernel(log, "loop"), Kernel(log, "own")
    compiling = compilation(loop, Kernel(log, "helper", action=fail), own)
    compiling.start()
    compiling.finish()
    assert own.compiled() == [("kernels", os.getpid())]
    assert loop.compiled() == []  # not in the cache: the loop's first call compiles it here


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

    log = tmp_path / "log"
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        compilation(Kernel(log, "loop"), Kernel(log, "helper", action=busy),
                    Kernel(log, "own", action=interrupted)).start()
    assert time.monotonic() - start < 30
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_trial_that_stops_before_its_loop_ends_the_helper(monkeypatch, tmp_path):
    """Started, then abandoned (the trial's files could not open, Ctrl-C before the
    loop): the helper, compiling the loop by then, is killed and reaped."""
    quiet(monkeypatch)
    pid_file = tmp_path / "helper pid"

    def busy() -> None:
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)

    log = tmp_path / "log"
    compiling = compilation(Kernel(log, "loop", action=busy), Kernel(log, "helper"),
                            Kernel(log, "own"))
    compiling.start()
    while not pid_file.exists():
        time.sleep(0.01)
    compiling.abandon()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_job_names_the_numba_types_of_its_arguments():
    import numpy as np
    from numba import types

    job = compile_ahead.job("kernel", np.zeros(3), 0, 0.0, True)
    assert job.types == (types.float64[::1], types.int64, types.float64, types.boolean)
    assert not job.python and compile_ahead.python_job("kernel", 0.0).python
