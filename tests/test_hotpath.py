"""The hot path: JIT warm-up before the first sample, no GC in the loop, OS settings."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import textwrap
import time

import pytest

from controller import hotpath
from controller.clock import VirtualClock
from controller.config import load_config
from controller.detect.config import build_detector
from controller.detect.detector import GaitDetector
from controller.loop import run_loop
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder
from sim.limb import SimulatedLimb
from sim.patient import load_patient


def parts(duration_s: float = 1.0, rate_hz: float = 500.0):
    config = load_config()
    limb = SimulatedLimb(load_patient("moderate"), rate_hz, duration_s, seed=2)
    n = round(duration_s * rate_hz)
    return (
        limb, build_detector(config.detector, rate_hz), StimScheduler(config.stim),
        Watchdog(limb, config.safety), n,
    )


def test_warm_up_happens_before_the_clock_starts_and_changes_nothing(tmp_path):
    order: list[str] = []

    class NotingDetector(GaitDetector):
        def warm_up(self) -> None:
            order.append("warm_up")
            super().warm_up()

        def process(self, sample):
            order.append("sample")
            return super().process(sample)

    class NotingClock(VirtualClock):
        def start(self) -> None:
            order.append("clock_start")
            super().start()

    limb, _, scheduler, watchdog, n = parts()
    detector = NotingDetector(load_config().detector.setup(), 500.0)
    recorder = TrialRecorder(n)
    outcome = run_loop(limb, detector, scheduler, watchdog, NotingClock(), recorder, n)
    assert order[:3] == ["warm_up", "clock_start", "sample"]
    assert outcome.warm_up_s > 0.0

    # The warmed-up trial is the trial without warm-up, sample for sample.
    limb2, detector2, scheduler2, watchdog2, _ = parts()
    recorder2 = TrialRecorder(n)
    for _ in range(n):
        sample = limb2.read()
        assert sample is not None
        phase, detected = detector2.process(sample)
        delivered = watchdog2.submit(
            sample.t_s, scheduler2.step(sample.t_s, phase, tuple(e.event for e in detected))
        )
        recorder2.record(sample, phase, delivered, detected)
    for name, column in recorder.columns().items():
        assert (column == recorder2.columns()[name]).all(), name
    assert (limb.truth()["ankle_angle_deg"] == limb2.truth()["ankle_angle_deg"]).all()


def test_the_loop_never_compiles_after_warm_up():
    """In a fresh interpreter: the loop calls every kernel with the warmed-up types."""
    script = textwrap.dedent(
        """
        from controller.clock import VirtualClock
        from controller.config import load_config
        from controller.detect.config import build_detector
        from controller.detect.detector import detector_step_for
        from controller.hotpath import warm_up
        from controller.loop import run_loop
        from controller.stim.schedule import schedule_step_for
        from controller.stim.scheduler import StimScheduler
        from controller.trial.recorder import TrialRecorder
        from controller.safety import Watchdog
        from sim.limb import SimulatedLimb, limb_step
        from sim.patient import load_patient

        config = load_config()
        limb = SimulatedLimb(load_patient("moderate"), 1000.0, 0.5, seed=0)
        detector = build_detector(config.detector, 1000.0)
        scheduler = StimScheduler(config.stim)
        warm_up(limb, detector, scheduler)
        kernels = (limb_step, detector_step_for(detector.setup.kind),
                   schedule_step_for(scheduler.mode))
        before = [list(k.signatures) for k in kernels]
        run_loop(limb, detector, scheduler, Watchdog(limb, config.safety),
                 VirtualClock(), TrialRecorder(500), 500)
        after = [list(k.signatures) for k in kernels]
        print(*(len(b) for b in before), before == after)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1", "1", "1", "True"]


def test_the_loop_leaves_no_cyclic_garbage_so_pausing_gc_cannot_leak():
    limb, detector, scheduler, watchdog, n = parts(duration_s=4.0)
    gc.collect()
    run_loop(limb, detector, scheduler, watchdog, VirtualClock(), TrialRecorder(n), n)
    assert gc.isenabled()
    assert gc.collect() == 0


def test_gc_is_off_inside_the_block_and_restored_after():
    assert gc.isenabled()
    with hotpath.gc_paused():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_collector_is_off_inside_the_block_and_as_it_was_after():
    assert gc.isenabled()
    with hotpath.collector_off():
        assert not gc.isenabled()
        with hotpath.collector_off():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves it off: it was off
    assert gc.isenabled()
    with pytest.raises(RuntimeError), hotpath.collector_off():
        raise RuntimeError
    assert gc.isenabled()
    try:
        with hotpath.collector_off(freeze_after=True):
            assert gc.get_freeze_count() == 0
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _recurse(depth: int) -> int:
    return _recurse(depth - 1) if depth else 0


def _minor_faults(function) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    function()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_call_in_one_chunk_does_not_map_frame_stack_chunks_back_and_forth():
    """Recursing back and forth across the end of a 16 kB chunk of CPython's frame stack
    maps a chunk (page faults) each time it crosses; inside ``in_one_chunk`` the frames
    fit in one chunk mapped once."""

    def sweep() -> None:
        for depth in range(400):  # 400 frames: past two chunk ends wherever it starts
            _recurse(depth)

    plain = _minor_faults(sweep)
    inside = _minor_faults(lambda: hotpath.in_one_chunk(sweep))
    assert plain > 200
    assert inside < 50
    assert hotpath.in_one_chunk(lambda: 42) == 42


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_realtime_section_pins_and_restores():
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    with hotpath.realtime_section(cpu_index=cpu) as notes:
        assert os.sched_getaffinity(0) == {cpu}
        assert f"pinned to CPU {cpu}" in notes
    assert os.sched_getaffinity(0) == allowed
    with hotpath.realtime_section(cpu_index=max(allowed) + 1) as notes:
        assert os.sched_getaffinity(0) == allowed
    assert any("not pinned" in note for note in notes)


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="Linux only")
def test_a_refused_realtime_priority_is_explained_and_the_loop_goes_on(monkeypatch):
    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    policy = os.sched_getscheduler(0)
    with hotpath.realtime_section(priority=50) as notes:
        assert os.sched_getscheduler(0) == policy
    (note,) = [n for n in notes if "priority" in n]
    assert "not set (Operation not permitted)" in note
    assert "CAP_SYS_NICE" in note and "normal priority" in note


def test_a_slow_block_is_announced_with_its_time_and_a_quick_one_is_not():
    """A first run compiles for seconds: the user is told, once, instead of silence,
    and then how long it took."""
    import io
    import re

    from controller.hotpath import announced_if_slow

    notes = io.StringIO()
    with announced_if_slow(notes, 0.05, "compiling ...", done="compiled"):
        time.sleep(0.3)
    lines = notes.getvalue().splitlines()
    assert lines[0] == "compiling ..."
    took = re.fullmatch(r"compiled in ([0-9.]+) s", lines[1])
    assert took is not None and len(lines) == 2
    assert float(took.group(1)) >= 0.3
    quick = io.StringIO()
    with announced_if_slow(quick, 0.5, "compiling ..."):
        pass
    time.sleep(0.6)
    assert quick.getvalue() == ""


def test_fes_run_compiles_every_loop_kernel_before_it_connects():
    """In a fresh interpreter: ``controller.trial.live.warm_up`` (called before the
    board's communication timer starts) leaves no kernel of the loop to compile: a
    first run compiling during the session would miss the board's timeout."""
    script = textwrap.dedent(
        """
        from controller.config import load_config
        from controller.detect.detector import GYRO, detector_step_for
        from controller.safety.decide import observe_sample, submit_rows
        from controller.stim.schedule import MODE_WALKING, schedule_step_for
        from controller.trial.live import warm_up

        kernels = (detector_step_for(GYRO), schedule_step_for(MODE_WALKING), observe_sample,
                   submit_rows)
        untouched = [len(k.signatures) for k in kernels]
        warm_up(load_config(overrides={"stim": {"preset": "peroneal_calf"}}))
        print(*untouched, *(len(k.signatures) for k in kernels))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0"] * 4 + ["1"] * 4
