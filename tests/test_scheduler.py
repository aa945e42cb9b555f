"""The peroneal envelope: trigger, ramp, hold, extension, ramp down, timeout."""

from __future__ import annotations

import pytest

from controller.detect.events import Event, Phase
from controller.stim.scheduler import ChannelConfig, ChannelScheduler, StimConfig, StimScheduler

DT = 0.002


Script = list[tuple[float, Phase, tuple[Event, ...]]]


def drive(sched: ChannelScheduler, script: Script, end_s: float):
    """Step the scheduler every DT; ``script`` sets phase/events from given times on."""
    out = []
    phase, k = Phase.STANCE, 0
    pending = sorted(script, key=lambda s: s[0])
    while k * DT < end_s:
        t = k * DT
        events: tuple[Event, ...] = ()
        while pending and pending[0][0] <= t + 1e-9:
            _, phase, events = pending.pop(0)
        out.append((t, sched.step(t, phase, events)))
        k += 1
    return out


def amplitude_at(trace, t_s: float) -> float:
    return min(trace, key=lambda row: abs(row[0] - t_s))[1].amplitude_ma


CFG = ChannelConfig(amplitude_ma=40.0, ramp_up_ms=50.0, ramp_down_ms=100.0, extension_ms=120.0)


def test_ramp_reaches_set_level_at_ramp_time_and_holds_until_heel_strike():
    trace = drive(
        ChannelScheduler(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, (Event.TOE_OFF,)),
         (0.6, Phase.LOADING, (Event.HEEL_STRIKE,))],
        1.2,
    )
    assert amplitude_at(trace, 0.098) == 0.0
    assert amplitude_at(trace, 0.1) == pytest.approx(0.0, abs=1e-9)
    assert amplitude_at(trace, 0.124) == pytest.approx(40.0 * 24 / 50)
    assert amplitude_at(trace, 0.15) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.59) == pytest.approx(40.0)


def test_extension_holds_after_heel_strike_then_ramps_down():
    trace = drive(
        ChannelScheduler(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.6, Phase.LOADING, (Event.HEEL_STRIKE,))],
        1.2,
    )
    assert amplitude_at(trace, 0.6 + 0.118) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.72 + 0.05) == pytest.approx(20.0, abs=0.01)
    assert amplitude_at(trace, 0.72 + 0.1) == 0.0
    assert not trace[-1][1].on


def test_timeout_ends_train_when_no_heel_strike_comes():
    cfg = CFG.model_copy(update={"timeout_ms": 800.0})
    sched = ChannelScheduler(cfg)
    trace = drive(sched, [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, ())], 3.0)
    assert amplitude_at(trace, 0.88) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.9 + 0.1) == 0.0
    assert sched.timeouts == 1
    on_s = sum(DT for _, c in trace if c.on)
    assert on_s <= 0.8 + 0.1 + DT


def test_unknown_phase_ramps_down_at_once():
    trace = drive(
        ChannelScheduler(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.4, Phase.UNKNOWN, ())],
        1.0,
    )
    assert amplitude_at(trace, 0.45) == pytest.approx(20.0, abs=0.01)
    assert amplitude_at(trace, 0.5) == 0.0


def test_toe_off_trigger_waits_for_the_event():
    cfg = CFG.model_copy(update={"trigger": "toe_off"})
    trace = drive(
        ChannelScheduler(cfg),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, (Event.TOE_OFF,))],
        0.5,
    )
    assert amplitude_at(trace, 0.19) == 0.0
    assert amplitude_at(trace, 0.25) == pytest.approx(40.0)


def test_disabled_stimulation_only_says_off():
    sched = StimScheduler(StimConfig(enabled=False))
    for k in range(100):
        phase = Phase.PRE_SWING if k % 20 == 0 else Phase.SWING
        assert [c.on for c in sched.step(k * DT, phase, (Event.TOE_OFF,))] == [False]
