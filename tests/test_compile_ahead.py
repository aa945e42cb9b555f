"""``controller.trial.compile_ahead``: when a first run forks a compile helper, what runs
where and in which order, and that the helper never outlives what it was for. (That the
helper's kernels reach the trial is tests/test_first_run.py; that the trial is
unchanged, tests/test_sim_pinned.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
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


def machine(monkeypatch: pytest.MonkeyPatch, cpus: int, load: float) -> None:
    """This process may use ``cpus`` CPUs; the 1-minute load average is ``load``."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, 2, 0.0)


def compilation(loop: Kernel, helper: Kernel, own: Kernel, later: Kernel | None = None
                ) -> LoopCompilation:
    return LoopCompilation(loop, (), [KernelJob(helper, ())], [KernelJob(own, ())],
                           [] if later is None else [KernelJob(later, (), python=True)])


def test_one_cpu_an_overloaded_machine_or_a_cached_loop_compiles_here_alone(
    monkeypatch, tmp_path
):
    def no_fork() -> int:
        raise AssertionError("forked a helper")

    monkeypatch.setattr(os, "fork", no_fork)
    log = tmp_path / "log"
    own, later = Kernel(log, "own"), Kernel(log, "later")
    for cpus, load in ((1, 0.0), (2, 4.0)):
        machine(monkeypatch, cpus, load)
        alone = compilation(Kernel(log, "loop"), Kernel(log, "helper"), own, later)
        alone.start()
        alone.finish()
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


_KILLED_PARENT = """
import os, sys, time
from controller.trial.compile_ahead import KernelJob, LoopCompilation

class Busy:
    def __init__(self, action):
        self.action = action
    def cached(self, *args):
        return False
    def compile(self, types):
        self.action()

def helper():
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(60)

def own():
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    print("compiling", flush=True)
    time.sleep(60)

os.sched_getaffinity = lambda pid: {0, 1}
os.getloadavg = lambda: (0.0, 0.0, 0.0)
LoopCompilation(Busy(None), (), [KernelJob(Busy(helper), ())], [KernelJob(Busy(own), ())]).start()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_a_killed_first_run_leaves_no_compiler_running(tmp_path):
    """``fes sim`` killed (SIGKILL: no handler runs) while both processes compile: the
    helper dies with it, not some seconds later."""
    pid_file = tmp_path / "helper pid"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT, str(pid_file)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "compiling"
    proc.kill()
    proc.wait(timeout=30)
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 5.0
    while _running(helper):
        assert time.monotonic() < deadline, "the helper outlived its killed parent"
        time.sleep(0.01)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (an orphan's zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_busy_machine_with_two_cpus_still_forks_a_helper(monkeypatch):
    """The helper adds little work: at load 1.9 on two CPUs the two processes get more
    CPU time than one would, so it still runs (not at 4, nor on one CPU: above)."""
    machine(monkeypatch, 2, 1.9)
    assert compile_ahead.spare_cpu()
    machine(monkeypatch, 2, 4.0)
    assert not compile_ahead.spare_cpu()


def test_a_job_names_the_numba_types_of_its_arguments():
    import numpy as np
    from numba import types

    job = compile_ahead.job("kernel", np.zeros(3), 0, 0.0, True)
    assert job.types == (types.float64[::1], types.int64, types.float64, types.boolean)
    assert not job.python and compile_ahead.python_job("kernel", 0.0).python
