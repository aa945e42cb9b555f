"""The stimulation scheduler on scripted detector output: envelope, bounds, prediction,
several channels and the three modes."""

from __future__ import annotations

import math

import pytest
from helpers.scheduling import CALF, CFG, DT, PREDICTED, Script, samples, walking
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.events import Event, Phase
from controller.ports import StimCommand
from controller.stim.scheduler import ChannelConfig, StimConfig, StimScheduler
from controller.stim.settings import BurstConfig, TrainingConfig


def one_channel(cfg: ChannelConfig) -> StimScheduler:
    """A walking-mode scheduler with ``cfg`` as its only (peroneal) channel."""
    return StimScheduler(StimConfig(peroneal=cfg))


def drive_all(sched: StimScheduler, script: Script, end_s: float):
    """Step the scheduler through ``samples(script, end_s)``; ``(t, commands)`` at every
    step."""
    return [(t, sched.step(t, phase, events)) for t, phase, events in samples(script, end_s)]


def drive(sched: StimScheduler, script: Script, end_s: float):
    """``drive_all`` for the first channel: ``(t, command)`` at every step."""
    return [(t, commands[0]) for t, commands in drive_all(sched, script, end_s)]


def at(trace, t_s: float) -> StimCommand:
    return min(trace, key=lambda row: abs(row[0] - t_s))[1]


def amplitude_at(trace, t_s: float) -> float:
    return at(trace, t_s).amplitude_ma


def onsets(trace) -> list[float]:
    """Times at which the command switches from off to on.

    A train that starts at t (level 0, "off") delivers from the next sample: ``t + DT``.
    """
    times, was_on = [], False
    for t, command in trace:
        if command.on and not was_on:
            times.append(t)
        was_on = command.on
    return times




# --- envelope --------------------------------------------------------------------------


def test_ramp_reaches_set_level_at_ramp_time_and_holds_until_heel_strike():
    trace = drive(
        one_channel(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, (Event.TOE_OFF,)),
         (0.6, Phase.LOADING, (Event.HEEL_STRIKE,))],
        1.2,
    )
    assert amplitude_at(trace, 0.098) == 0.0
    assert amplitude_at(trace, 0.1) == pytest.approx(0.0, abs=1e-9)
    assert amplitude_at(trace, 0.124) == pytest.approx(40.0 * 24 / 50)
    assert amplitude_at(trace, 0.148) < 40.0
    assert amplitude_at(trace, 0.15) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.59) == pytest.approx(40.0)


@pytest.mark.parametrize("ramp_up_ms", [0.0, 10.0, 200.0, 500.0])
def test_ramp_reaches_the_set_level_exactly_at_the_set_time(ramp_up_ms):
    cfg = CFG.model_copy(update={"ramp_up_ms": ramp_up_ms})
    trace = drive(one_channel(cfg), [(0.1, Phase.PRE_SWING, ())], 1.0)
    end = 0.1 + ramp_up_ms / 1000.0
    assert amplitude_at(trace, end) == pytest.approx(40.0)
    if ramp_up_ms:
        assert amplitude_at(trace, end - DT) == pytest.approx(40.0 * (1 - DT * 1000 / ramp_up_ms))


def test_pulse_width_ramp_keeps_the_amplitude_and_grades_the_width():
    cfg = CFG.model_copy(update={"ramp_parameter": "pulse_width", "pulse_width_us": 300.0})
    trace = drive(one_channel(cfg), [(0.1, Phase.PRE_SWING, ())], 0.3)
    mid = at(trace, 0.124)
    assert mid.amplitude_ma == 40.0 and mid.pulse_width_us == pytest.approx(300.0 * 24 / 50)
    assert at(trace, 0.15).pulse_width_us == pytest.approx(300.0)


def test_commands_carry_the_pulse_shape():
    cfg = CFG.model_copy(update={"interphase_gap_us": 60.0, "anodic_width_ratio": 4.0})
    command = at(drive(one_channel(cfg), [(0.1, Phase.PRE_SWING, ())], 0.3), 0.2)
    assert (command.interphase_gap_us, command.anodic_width_ratio) == (60.0, 4.0)


def test_extension_holds_after_heel_strike_for_its_set_time_then_ramps_down():
    trace = drive(
        one_channel(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, (Event.TOE_OFF,)),
         (0.6, Phase.LOADING, (Event.HEEL_STRIKE,))],
        1.2,
    )
    assert amplitude_at(trace, 0.6 + 0.118) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.72) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.72 + DT) < 40.0
    assert amplitude_at(trace, 0.72 + 0.05) == pytest.approx(20.0, abs=0.01)
    assert amplitude_at(trace, 0.72 + 0.1) == 0.0
    assert not trace[-1][1].on


def test_timeout_ends_train_when_no_heel_strike_comes():
    cfg = CFG.model_copy(update={"timeout_ms": 800.0})
    sched = one_channel(cfg)
    trace = drive(sched, [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, ())], 3.0)
    assert amplitude_at(trace, 0.898) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.9 + 0.1) == 0.0
    assert sched.timeouts == 1
    on_s = sum(DT for _, c in trace if c.on)
    assert on_s <= 0.8 + 0.1 + DT


def test_timeout_fires_in_every_stride_once_heel_strikes_stop_coming():
    """Strides 4 and on lose their heel strike (a detector that misses it): each of
    those trains is cut by the timeout, the earlier ones end at heel strike."""
    cfg = CFG.model_copy(update={"timeout_ms": 700.0})
    script = [
        row for row in walking([0.5 + 1.1 * i for i in range(6)])
        if not (row[0] > 3.5 and any(getattr(e, "event", e) == Event.HEEL_STRIKE
                                     for e in row[2]))
    ]
    sched = one_channel(cfg)
    trace = drive(sched, script, 7.0)
    assert sched.timeouts == 3
    assert len(onsets(trace)) == 6
    for start in onsets(trace)[3:]:
        assert amplitude_at(trace, start + 0.698) == pytest.approx(40.0)
        assert amplitude_at(trace, start + 0.7 + 0.1) == 0.0


def test_unknown_phase_ramps_down_at_once():
    trace = drive(
        one_channel(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.4, Phase.UNKNOWN, ())],
        1.0,
    )
    assert amplitude_at(trace, 0.45) == pytest.approx(20.0, abs=0.01)
    assert amplitude_at(trace, 0.5) == 0.0


def test_toe_off_trigger_waits_for_the_event():
    cfg = CFG.model_copy(update={"trigger": "toe_off"})
    trace = drive(
        one_channel(cfg),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, (Event.TOE_OFF,))],
        0.5,
    )
    assert amplitude_at(trace, 0.19) == 0.0
    assert amplitude_at(trace, 0.25) == pytest.approx(40.0)


def test_heel_off_trigger_starts_on_a_detected_heel_off():
    cfg = CFG.model_copy(update={"trigger": "heel_off"})
    trace = drive(
        one_channel(cfg),
        [(0.1, Phase.PRE_SWING, ()), (0.3, Phase.STANCE, (Event.HEEL_OFF,))],
        0.5,
    )
    assert onsets(trace) == [pytest.approx(0.3 + DT)]


def test_trigger_too_soon_after_a_train_is_refused():
    """The train ends at 0.34 s (heel strike 0.2 + extension 0.04 + ramp 0.1); a pre-swing
    40 ms later is refused with a 100 ms minimum off-time, one 150 ms later is not."""
    cfg = CFG.model_copy(update={"extension_ms": 40.0, "min_off_ms": 100.0})
    script: Script = [
        (0.0, Phase.PRE_SWING, ()), (0.2, Phase.LOADING, (Event.HEEL_STRIKE,)),
        (0.3, Phase.STANCE, ()), (0.38, Phase.PRE_SWING, ()),
        (0.45, Phase.LOADING, (Event.HEEL_STRIKE,)), (0.46, Phase.STANCE, ()),
        (0.49, Phase.PRE_SWING, ()),
    ]
    sched = one_channel(cfg)
    trace = drive(sched, script, 0.8)
    assert onsets(trace) == [pytest.approx(0.0 + DT), pytest.approx(0.49 + DT)]
    assert amplitude_at(trace, 0.42) == 0.0
    assert sched.reports()[0].refused == 1


def test_without_min_off_time_a_trigger_in_the_ramp_down_ramps_up_again():
    cfg = CFG.model_copy(update={"extension_ms": 0.0, "min_off_ms": 0.0})
    script: Script = [
        (0.0, Phase.PRE_SWING, ()), (0.2, Phase.LOADING, (Event.HEEL_STRIKE,)),
        (0.22, Phase.STANCE, ()), (0.25, Phase.PRE_SWING, ()),
    ]
    trace = drive(one_channel(cfg), script, 0.4)
    assert amplitude_at(trace, 0.248) == pytest.approx(40.0 * (1 - 48 / 100))
    assert amplitude_at(trace, 0.26) > amplitude_at(trace, 0.248)
    assert amplitude_at(trace, 0.30) == pytest.approx(40.0)


def test_triggers_in_every_ramp_down_cannot_stretch_a_train_past_its_timeout():
    """Trigger = stop = heel strike, no minimum off-time, and a heel strike every other
    sample (a chattering detector): the train still ends by timeout + ramp down."""
    cfg = CFG.model_copy(update={"trigger": "heel_strike", "min_off_ms": 0.0,
                                 "timeout_ms": 400.0})
    script: Script = [(k * 2 * DT, Phase.STANCE, (Event.HEEL_STRIKE,)) for k in range(500)]
    trace = drive(one_channel(cfg), script, 2.0)
    first_off = next(t for t, c in trace if t > 0 and not c.on)
    assert first_off <= 0.4 + 0.1 + DT


# --- latency compensation ----------------------------------------------------------------


def test_prediction_starts_the_train_its_lead_before_the_predicted_toe_off():
    """Strides of exactly 1.1 s: once two stride times are known (three toe offs
    detected) each train starts 120 ms before the next toe off, dated from the estimated
    times, also the one predicted after the last stride (7.1 s)."""
    toe_offs = [0.5 + 1.1 * i for i in range(6)]
    trace = drive(one_channel(PREDICTED), walking(toe_offs), 7.0)
    predicted = [*toe_offs[3:], 7.1]
    assert onsets(trace) == [pytest.approx(to - 0.12 + DT, abs=1e-9) for to in predicted]


def test_prediction_uses_when_toe_off_happened_not_when_it_was_confirmed():
    """Detection latency varies from stride to stride; the prediction does not."""
    toe_offs = [0.5 + 1.1 * i for i in range(6)]
    script: Script = []
    for i, to in enumerate(toe_offs):
        script += walking([to], latency_s=0.06 + 0.03 * (i % 3))
    trace = drive(one_channel(PREDICTED), script, 6.5)
    assert onsets(trace) == [pytest.approx(to - 0.12 + DT, abs=1e-9) for to in toe_offs[3:]]


def test_fallback_starts_the_trains_before_a_prediction_exists():
    cfg = PREDICTED.model_copy(update={"fallback_trigger": "pre_swing"})
    toe_offs = [0.5 + 1.1 * i for i in range(5)]
    trace = drive(one_channel(cfg), walking(toe_offs), 5.0)
    expected = [to - 0.05 for to in toe_offs[:3]] + [to - 0.12 for to in toe_offs[3:]]
    assert onsets(trace) == [pytest.approx(t + DT, abs=1e-9) for t in expected]


def test_unconfirmed_prediction_ramps_down_when_the_walker_stops():
    """After four strides the walker stands still: the predicted fifth toe off never
    comes, and the train ends at the predicted time + confirm_ms instead of the timeout."""
    toe_offs = [0.5 + 1.1 * i for i in range(4)]
    sched = one_channel(PREDICTED.model_copy(update={"confirm_ms": 200.0}))
    trace = drive(sched, walking(toe_offs), 7.0)
    predicted = 0.5 + 1.1 * 4
    assert onsets(trace)[-1] == pytest.approx(predicted - 0.12 + DT)
    assert amplitude_at(trace, predicted + 0.198) == pytest.approx(40.0)
    assert amplitude_at(trace, predicted + 0.2 + 0.1) == 0.0
    report = sched.reports()[0]
    assert (report.unconfirmed, report.timeouts) == (1, 0)
    # One prediction, one train: nothing more while the walker stands.
    assert len(onsets(trace)) == 2


def test_a_pause_restarts_the_stride_history():
    toe_offs = [0.5 + 1.1 * i for i in range(4)] + [8.0 + 1.1 * i for i in range(4)]
    trace = drive(one_channel(PREDICTED), walking(toe_offs), 13.0)
    # Each walk: predictions once two stride times are known; the one after its last
    # stride goes unconfirmed. The 4.2 s gap (> 2.5 s) between walks is no stride.
    assert onsets(trace) == [pytest.approx(t - 0.12 + DT) for t in (3.8, 4.9, 11.3, 12.4)]


# --- several channels --------------------------------------------------------------------


def test_each_channel_follows_its_own_window():
    toe_offs = [0.5 + 1.1 * i for i in range(6)]
    peroneal = CFG.model_copy(update={"min_off_ms": 0.0})
    sched = StimScheduler(StimConfig(peroneal=peroneal, channels={"calf": CALF}))
    steps = drive_all(sched, walking(toe_offs), 7.0)
    per = [(t, cmds[0]) for t, cmds in steps]
    calf = [(t, cmds[1]) for t, cmds in steps]
    assert {c.channel for _, cmds in steps for c in cmds} == {0, 1}
    assert onsets(per) == [pytest.approx(to - 0.05 + DT) for to in toe_offs]
    assert onsets(calf) == [pytest.approx(to - 0.25 + DT) for to in [*toe_offs[3:], 7.1]]
    for to in toe_offs[3:]:
        assert at(calf, to - 0.002).amplitude_ma == pytest.approx(30.0)
        assert at(calf, to + 0.015).amplitude_ma == pytest.approx(15.0, abs=1.5)
        assert not at(calf, to + 0.03).on  # silent in swing
        assert at(per, to + 0.2).amplitude_ma == pytest.approx(40.0)


def test_disabled_stimulation_only_says_off():
    sched = StimScheduler(StimConfig(enabled=False))
    for k in range(100):
        phase = Phase.PRE_SWING if k % 20 == 0 else Phase.SWING
        assert [c.on for c in sched.step(k * DT, phase, (Event.TOE_OFF,))] == [False]


# --- training and test modes -------------------------------------------------------------


def test_training_cycles_on_and_off_whatever_the_gait():
    training = TrainingConfig(on_ms=1000.0, off_ms=2000.0, start_ms=500.0)
    sched = StimScheduler(StimConfig(mode="training", peroneal=CFG, training=training))
    trace = drive(sched, walking([0.5 + 1.1 * i for i in range(8)]), 10.0)
    cycle = 0.05 + 1.0 + 0.1 + 2.0
    assert onsets(trace) == [pytest.approx(0.5 + i * cycle + DT) for i in range(4)]
    for first_on in onsets(trace)[:3]:  # the fourth is cut by the end of the trace
        start = first_on - DT
        assert amplitude_at(trace, start + 0.04) == pytest.approx(32.0, abs=0.8)
        assert amplitude_at(trace, start + 0.06) == pytest.approx(40.0)
        assert amplitude_at(trace, start + 1.04) == pytest.approx(40.0)
        assert amplitude_at(trace, start + 1.1) == pytest.approx(20.0, abs=0.8)
        assert not at(trace, start + 1.16).on
    assert sched.timeouts == 0


def test_test_mode_bursts_once_on_the_named_channel_only():
    test = BurstConfig(channel_name="calf", on_ms=400.0, start_ms=200.0)
    sched = StimScheduler(
        StimConfig(mode="test", peroneal=CFG, channels={"calf": CALF}, test=test)
    )
    steps = drive_all(sched, walking([0.5 + 1.1 * i for i in range(4)]), 5.0)
    assert {c.channel for _, cmds in steps for c in cmds} == {1}
    burst = [(t, cmds[0]) for t, cmds in steps]
    assert onsets(burst) == [pytest.approx(0.2 + DT)]
    on_s = sum(DT for _, c in burst if c.on)
    assert on_s == pytest.approx(0.05 + 0.4 + 0.03, abs=2 * DT)


def test_reports_name_what_each_channel_is_scored_against():
    sched = StimScheduler(StimConfig(peroneal=PREDICTED, channels={"calf": CALF}))
    peroneal, calf = sched.reports()
    assert (peroneal.name, peroneal.onset_reference, peroneal.offset_reference) == (
        "peroneal", Event.TOE_OFF, Event.HEEL_STRIKE)
    assert peroneal.onset_lead_s == pytest.approx(0.12)
    assert peroneal.offset_delay_s == pytest.approx(0.22)
    assert (calf.onset_reference, calf.offset_reference) == (Event.TOE_OFF, Event.TOE_OFF)
    training = StimScheduler(StimConfig(mode="training", peroneal=CFG)).reports()[0]
    assert training.onset_reference is None and training.trigger == "training"
    assert math.isfinite(training.offset_delay_s)


# --- properties --------------------------------------------------------------------------


_PHASES = st.sampled_from(list(Phase))
_EVENTS = st.lists(st.sampled_from([e for e in Event if e is not Event.NONE]), max_size=2)


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(st.tuples(st.integers(1, 400), _PHASES, _EVENTS), min_size=1,
                    max_size=60),
    trigger=st.sampled_from(["pre_swing", "toe_off", "predicted_toe_off", "heel_strike"]),
    min_off_ms=st.sampled_from([0.0, 100.0]),
    ramp=st.sampled_from(["amplitude", "pulse_width"]),
)
def test_whatever_the_detector_says_trains_stay_bounded(script, trigger, min_off_ms, ramp):
    """Any sequence of phases and events (with toe offs dated at their sample): the set
    pulse is never exceeded, no train outlasts timeout + ramp down, and UNKNOWN never
    starts a train or lets a level rise."""
    cfg = CFG.model_copy(update={
        "trigger": trigger, "min_off_ms": min_off_ms, "ramp_parameter": ramp,
        "timeout_ms": 400.0, "lead_ms": 80.0,
    })
    sched = one_channel(cfg)
    k, run_s, previous = 0, 0.0, 0.0
    for gap, phase, events in script:
        for step in range(gap):
            t = k * DT
            command = sched.step(t, phase, tuple(events) if step == 0 else ())[0]
            k += 1
            assert command.amplitude_ma <= 40.0 + 1e-9
            assert command.pulse_width_us <= 300.0 + 1e-9
            run_s = run_s + DT if command.on else 0.0
            assert run_s <= 0.4 + 0.1 + 2 * DT
            level = command.amplitude_ma * command.pulse_width_us if command.on else 0.0
            if phase == Phase.UNKNOWN:
                assert level <= previous + 1e-9
            previous = level


def test_pre_swing_taken_back_without_a_swing_ramps_down_at_once():
    """Clonus onset opens a pre-swing that returns to stance: no 1.5 s train follows."""
    sched = one_channel(CFG)
    trace = drive(sched, [(0.1, Phase.PRE_SWING, ()), (0.3, Phase.STANCE, ())], 2.0)
    assert amplitude_at(trace, 0.29) == pytest.approx(40.0)
    assert amplitude_at(trace, 0.35) == pytest.approx(20.0, abs=0.01)
    assert all(not c.on for t, c in trace if t >= 0.4)
    assert sched.reports()[0].unconfirmed == 1


def test_pre_swing_followed_by_swing_holds_until_heel_strike():
    trace = drive(
        one_channel(CFG),
        [(0.1, Phase.PRE_SWING, ()), (0.2, Phase.SWING, ()), (0.6, Phase.STANCE, ())],
        1.0,
    )
    assert amplitude_at(trace, 0.7) == pytest.approx(40.0)
