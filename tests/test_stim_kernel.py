"""The scheduler's kernel: a compiled loop calling ``schedule_step`` on the scheduler's
arrays gives the very commands and counters of ``StimScheduler.step``, and the stride
time is numpy's median to the bit."""

from __future__ import annotations

import math
from collections import deque

import numba
import numpy as np
from helpers.scheduling import CALF, CFG, PREDICTED, samples, walking
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.detect import outbox
from controller.events import DetectedEvent, Event, Phase
from controller.ports import StimCommand, command_of_row
from controller.stim import prediction
from controller.stim.schedule import schedule_step
from controller.stim.scheduler import StimScheduler, fill_outbox
from controller.stim.settings import ChannelConfig, PredictionConfig, StimConfig


@numba.njit
def _compiled_loop(mode, params, state, t_s, phases, outboxes, commands, trace):
    """A compiled loop as the closed-loop simulation will run it, keeping every command."""
    for i in range(t_s.size):
        schedule_step(mode, params, state, t_s[i], phases[i], outboxes[i], commands)
        trace[i] = commands


def test_a_compiled_loop_gives_the_commands_and_counters_of_step():
    """Four channels with every bound at work: an unconfirmed prediction (peroneal, the
    walker stops after four strides), refused triggers (quadriceps, with a 3 s minimum
    off-time), timeouts (a hamstrings
    train started at mid swing and stopped only by the next toe off) and a channel
    stopped at the predicted toe off."""
    config = StimConfig(
        peroneal=PREDICTED.model_copy(update={"confirm_ms": 200.0}),
        channels={
            "calf": CALF,
            "hamstrings": ChannelConfig(channel=2, trigger="mid_swing", stop="toe_off",
                                        timeout_ms=150.0),
            "quadriceps": ChannelConfig(channel=3, trigger="heel_strike", min_off_ms=3000.0,
                                        extension_ms=0.0, stop="mid_swing"),
        },
    )
    inputs = samples(walking([0.5 + 1.1 * i for i in range(4)]), 7.0)
    shell = StimScheduler(config)
    expected = [shell.step(t, phase, events) for t, phase, events in inputs]

    compiled = StimScheduler(config)
    params, state, commands = compiled.kernel_arrays
    outboxes = np.zeros((len(inputs), outbox.SIZE))
    for box, (t, _, events) in zip(outboxes, inputs, strict=True):
        fill_outbox(t, events, box)
    trace = np.zeros((len(inputs), *commands.shape))
    _compiled_loop(
        compiled.mode, params, state, np.array([t for t, _, _ in inputs]),
        np.array([int(phase) for _, phase, _ in inputs]), outboxes, commands, trace,
    )
    got = [[command_of_row(row) for row in rows] for rows in trace]
    assert got == expected
    assert compiled.reports() == shell.reports()
    counts = {r.name: (r.timeouts, r.unconfirmed, r.refused) for r in compiled.reports()}
    assert counts == {
        "peroneal": (0, 1, 0), "calf": (0, 0, 0), "hamstrings": (4, 0, 0),
        "quadriceps": (0, 0, 3),  # the heel strikes 1.1, 2.2 and 3.3 s after its train
    }
    assert compiled.timeouts == shell.timeouts == 4


def test_disabled_stimulation_says_off_on_the_peroneal_output():
    sched = StimScheduler(StimConfig(enabled=False, peroneal=CFG.model_copy(
        update={"channel": 3})))
    assert sched.step(0.0, Phase.PRE_SWING, ()) == [StimCommand.off(3)]
    assert sched.reports() == [] and sched.timeouts == 0


def test_more_events_at_one_sample_than_a_detector_outbox_holds_are_all_seen():
    sched = StimScheduler(StimConfig(peroneal=CFG.model_copy(update={"trigger": "toe_off"})))
    events = (Event.HEEL_STRIKE,) * outbox.MAX_EVENTS + (Event.TOE_OFF,)
    sched.step(0.0, Phase.SWING, events)
    assert sched.step(0.2, Phase.SWING, ())[0].amplitude_ma == 40.0


def test_warm_up_changes_nothing():
    sched = StimScheduler(StimConfig(peroneal=PREDICTED))
    params, state, commands = (a.copy() for a in sched.kernel_arrays)
    sched.warm_up()
    for before, after in zip((params, state, commands), sched.kernel_arrays, strict=True):
        assert np.array_equal(before, after, equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 30.0, allow_subnormal=False), min_size=1, max_size=20))
def test_median_is_numpys_to_the_bit(values):
    scratch = np.empty(len(values))
    assert prediction.median(np.array(values), len(values), scratch) == np.median(values)


@settings(max_examples=40, deadline=None)
@given(
    intervals=st.lists(st.floats(0.2, 3.0), min_size=1, max_size=40),
    history=st.integers(2, 6),
    min_strides=st.integers(1, 2),
)
def test_stride_time_is_the_median_of_the_recent_intervals(intervals, history, min_strides):
    """Toe offs at these intervals: the stride time is np.median of the last ``history``
    intervals since the last pause (an interval over 2.5 s), NaN while fewer than
    ``min_strides`` are known, and the next toe off is the last one plus it."""
    config = StimConfig(prediction=PredictionConfig(history_strides=history,
                                                    min_strides=min_strides))
    sched = StimScheduler(config)
    kept: deque[float] = deque(maxlen=history)
    t = 1.0
    sched.step(t, Phase.SWING, (Event.TOE_OFF,))
    for interval in intervals:
        last, t = t, t + interval
        sched.step(t, Phase.SWING, (DetectedEvent(Event.TOE_OFF, t + 0.1, t),))
        if t - last > 2.5:
            kept.clear()
        else:
            kept.append(t - last)
        state = sched.kernel_arrays[1][0]
        stride = float(np.median(kept)) if len(kept) >= min_strides else math.nan
        predicted = state[[prediction.S_STRIDE_S, prediction.S_NEXT_TOE_OFF_S]]
        assert np.array_equal(predicted, [stride, t + stride], equal_nan=True)
