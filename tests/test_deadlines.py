"""Deadline accounting and the catch-up policy: missed periods are skipped, never bunched."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import load_config
from controller.deadlines import DeadlineMonitor
from controller.detect.config import build_detector
from controller.loop import run_loop
from controller.ports import Sample, StimCommand
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder
from sim.limb import SimulatedLimb
from sim.patient import load_patient

PERIOD_S = 0.002  # 500 Hz, the default rate
WORK_S = 20e-6


class FakeWallClock:
    """Wall time under the test's control: a wait moves it to the deadline, work adds to it.

    The wait for the deadline at ``stall_at_s`` oversleeps by ``stall_s`` (the OS did not
    wake the loop in time).
    """

    kind = "wall"

    def __init__(self, stall_at_s: float = math.nan, stall_s: float = 0.0) -> None:
        self.now_s = 0.0
        self._stall_at_s = stall_at_s
        self._stall_s = stall_s

    def start(self) -> None:
        self.now_s = 0.0

    def wait_until(self, t_s: float) -> float:
        self.now_s = max(self.now_s, t_s)
        if math.isclose(t_s, self._stall_at_s):
            self.now_s += self._stall_s
        return self.now_s - t_s

    def now(self) -> float:
        return self.now_s


class StallingLimb:
    """The simulated limb, with ``WORK_S`` per read; reading sample ``stall_at`` stalls.

    Also the stimulator: it notes the fake wall time of every command that reaches it.
    """

    def __init__(self, clock: FakeWallClock, stall_at: int, stall_s: float) -> None:
        self._limb = SimulatedLimb(load_patient("moderate"), 1.0 / PERIOD_S, 4.0, seed=1)
        self._clock = clock
        self._stall_at = stall_at
        self._stall_s = stall_s
        self._reads = 0
        self.applied_at: list[float] = []
        self.delivering: list[bool] = []
        self.stops = 0

    sample_period_s = PERIOD_S
    channels = 2

    def read(self) -> Sample | None:
        if self._reads == self._stall_at:
            self._clock.now_s += self._stall_s
        self._reads += 1
        self._clock.now_s += WORK_S
        return self._limb.read()

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self.applied_at.append(self._clock.now_s)
        self.delivering.append(any(c.delivers for c in commands))
        self._limb.apply(t_s, commands)

    def stop_all(self) -> None:
        self.stops += 1
        self._limb.stop_all()

    def close(self) -> None:
        self._limb.close()


def stalled_trial(
    sleep_stall_s: float = 0.0, read_stall_s: float = 0.0, samples: int = 1500
):
    """1500 samples; the stall hits sample 1000 (in the wait for it, or in its read). The
    gyroscope's mounting check is off, so that stimulation runs before the stall."""
    config = load_config(
        overrides={"detector": {"gyro": {"shank": {"mount_check_strides": 0}}}}
    )
    clock = FakeWallClock(stall_at_s=1000 * PERIOD_S, stall_s=sleep_stall_s)
    limb = StallingLimb(clock, stall_at=1000, stall_s=read_stall_s)
    watchdog = Watchdog(limb, config.safety)
    deadlines = DeadlineMonitor(samples, PERIOD_S, max_overrun_s=0.05)
    run_loop(
        limb, build_detector(config.detector, 1.0 / PERIOD_S), StimScheduler(config.stim),
        watchdog, clock, TrialRecorder(samples), samples, deadlines,
    )
    return limb, watchdog, deadlines


def test_a_late_wake_up_skips_the_missed_periods_and_never_bunches_commands():
    limb, watchdog, deadlines = stalled_trial(sleep_stall_s=7.5 * PERIOD_S)
    assert deadlines.misses == 7
    timing = deadlines.rows(0, deadlines.count)
    late = timing["lateness_us"]
    assert late[1000] == pytest.approx(7.5 * PERIOD_S * 1e6)  # from the deadline it owed
    assert timing["skipped_periods"][1000] == 7
    assert late[1001] == pytest.approx(0.0, abs=1e-6)  # back on the grid at once
    # The late sample goes out at once, the next one on the grid: the seven missed
    # periods are not served back to back.
    gaps = [b - a for a, b in zip(limb.applied_at, limb.applied_at[1:], strict=False)]
    assert gaps[999] == pytest.approx(8.5 * PERIOD_S)
    assert gaps[1000] == pytest.approx(0.5 * PERIOD_S)
    assert sum(g < PERIOD_S - 1e-9 for g in gaps) == 1
    assert watchdog.faults == 0


def test_a_slow_sample_makes_an_overrun_and_the_next_one_late():
    _, watchdog, deadlines = stalled_trial(read_stall_s=7.5 * PERIOD_S)
    timing = deadlines.rows(0, deadlines.count)
    assert timing["latency_us"][1000] == pytest.approx((7.5 * PERIOD_S + WORK_S) * 1e6)
    assert deadlines.overruns == 1
    assert timing["skipped_periods"][1001] == 6  # 6.5 periods late when it could start
    assert deadlines.misses == 6
    assert watchdog.faults == 0


@pytest.mark.parametrize("stall", ["sleep_stall_s", "read_stall_s"])
def test_commands_later_than_the_bound_fault_the_watchdog_and_go_out_off(stall):
    limb, watchdog, _ = stalled_trial(**{stall: 0.08})  # bound 50 ms
    assert watchdog.faults == 1
    assert watchdog.fault is not None and watchdog.fault.rule == "loop_overrun"
    assert watchdog.fault.t_s == pytest.approx(1000 * PERIOD_S)
    assert any(limb.delivering[:1000])
    assert not any(limb.delivering[1000:])  # the stale sample's commands and all after: off


def test_virtual_clock_figures_are_exact_zeros():
    config = load_config(overrides={"loop": {"duration_s": 1.0}})
    limb = SimulatedLimb(load_patient("moderate"), 500.0, 1.0, seed=0)
    deadlines = DeadlineMonitor(500, PERIOD_S)
    from controller.clock import VirtualClock

    run_loop(
        limb, build_detector(config.detector, 500.0), StimScheduler(config.stim),
        Watchdog(limb, config.safety), VirtualClock(), TrialRecorder(500), 500, deadlines,
    )
    figures = deadlines.figures("virtual", warm_up_s=0.0)
    assert figures["samples"] == 500 and figures["misses"] == 0 and figures["overruns"] == 0
    zero = {"median": 0.0, "p90": 0.0, "p99": 0.0, "p99_9": 0.0, "max": 0.0}
    assert figures["lateness_us"] == zero and figures["latency_us"] == zero


@settings(deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=200))
def test_the_next_deadline_is_always_ahead_and_every_period_is_served_or_missed(lates):
    monitor = DeadlineMonitor(len(lates), PERIOD_S, max_overrun_s=5 * PERIOD_S)
    for periods_late in lates:
        due = monitor.due_s
        lateness = periods_late * PERIOD_S
        monitor.woke(lateness)
        if abs(lateness - 5 * PERIOD_S) > 1e-9:  # not at the bound, where rounding decides
            assert (monitor.stale(due + lateness) is not None) == (lateness > 5 * PERIOD_S)
        assert monitor.due_s > due + lateness - 1e-12  # never a deadline long past: no burst
        assert monitor.due_s <= due + lateness + PERIOD_S + 1e-12
        monitor.delivered(due + lateness)
    assert math.isclose(monitor.due_s, (monitor.count + monitor.misses) * PERIOD_S)
    assert monitor.misses == sum(monitor.rows(0, monitor.count)["skipped_periods"])


def test_work_that_runs_into_the_next_period_is_an_overrun():
    monitor = DeadlineMonitor(3, PERIOD_S)
    monitor.woke(0.0)
    monitor.delivered(0.5 * PERIOD_S)
    monitor.woke(0.0)
    monitor.delivered(2.2 * PERIOD_S)  # this sample's work ends after the next deadline
    assert monitor.overruns == 1
    assert monitor.rows(0, 2)["latency_us"][1] == pytest.approx(1.2 * PERIOD_S * 1e6)


def test_a_clock_that_cannot_tell_lateness_leaves_it_null_not_zero():
    """A loop paced by its source (the board's stream, a replay) is told NaN by its clock:
    a sample is due when it arrives. Its lateness rows are NaN, nothing is skipped, and
    the summary's lateness and missed periods are null with the clock's reason; the
    latency and overruns, measured from the arrival, stay."""
    from controller.trial.summary import render_timing

    monitor = DeadlineMonitor(3, PERIOD_S)
    for delivered_after_s in (0.3 * PERIOD_S, 1.5 * PERIOD_S, 0.2 * PERIOD_S):
        due = monitor.due_s
        monitor.woke(math.nan)
        assert monitor.stale(due + delivered_after_s) is None
        monitor.delivered(due + delivered_after_s)
    assert not monitor.lateness_measured and monitor.misses == 0
    rows = monitor.rows(0, 3)
    assert np.isnan(rows["lateness_us"]).all() and not rows["skipped_periods"].any()
    assert rows["latency_us"] == pytest.approx(np.array([0.3, 1.5, 0.2]) * PERIOD_S * 1e6)
    figures = monitor.figures("board", 0.001, "the board's stream paces the loop")
    assert set(figures["lateness_us"].values()) == {None}
    assert figures["first_sample"] == {"lateness_us": None, "latency_us": pytest.approx(600.0)}
    assert figures["misses"] is None and figures["missed_percent"] is None
    assert figures["overruns"] == 1 and figures["latency_us"]["max"] == pytest.approx(3000.0)
    assert figures["not_measured"] == "the board's stream paces the loop"
    line = render_timing(figures)
    assert line.startswith("timing: 2 ms period, board clock; lateness and missed periods "
                           "not measured: the board's stream paces the loop; 1 overruns; "
                           "sensor to command median 600 us, p99 ")
    assert "lateness median" not in line and "missed periods (" not in line


def test_a_clock_that_measures_lateness_says_nothing_is_unmeasured():
    monitor = DeadlineMonitor(1, PERIOD_S)
    monitor.woke(10e-6)
    monitor.delivered(50e-6)
    figures = monitor.figures("wall", 0.0, None)
    assert monitor.lateness_measured and figures["not_measured"] is None
    assert figures["misses"] == 0 and figures["lateness_us"]["max"] == pytest.approx(10.0)
