"""The watchdog passes safe commands unchanged and latches off on every breach."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.ports import StimCommand
from controller.watchdog import SafetyLimits, Watchdog

LIMITS = SafetyLimits(
    max_amplitude_ma=50.0, max_pulse_width_us=400.0, max_frequency_hz=50.0,
    max_continuous_on_ms=1000.0,
)


class RecordingStimulator:
    """A Stimulator that remembers what reached it."""

    channels = 2

    def __init__(self) -> None:
        self.applied: list[tuple[float, list[StimCommand]]] = []
        self.stops = 0

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self.applied.append((t_s, list(commands)))

    def stop_all(self) -> None:
        self.stops += 1


def on(amplitude=30.0, width=300.0, freq=40.0, channel=0) -> StimCommand:
    return StimCommand(channel, True, amplitude, width, freq)


def test_safe_commands_pass_unchanged():
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    assert dog.submit(0.0, [on()]) == [on()]
    assert out.applied == [(0.0, [on()])]
    assert dog.faults == 0 and dog.clamped_commands == 0


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (on(amplitude=50.5), "max_amplitude_ma"),
        (on(width=401.0), "max_pulse_width_us"),
        (on(freq=51.0), "max_frequency_hz"),
        (on(amplitude=math.nan), "non_finite_value"),
        (on(width=math.inf), "non_finite_value"),
        (on(amplitude=-1.0), "negative_value"),
        (on(channel=5), "unknown_channel"),
    ],
)
def test_breach_turns_output_off_and_latches(command, rule):
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    dog.submit(0.0, [on()])
    delivered = dog.submit(0.002, [command])
    assert not delivered[0].on
    assert dog.fault is not None and dog.fault.rule == rule
    assert out.stops >= 1
    # Latched: a perfectly safe command afterwards is still refused.
    assert not dog.submit(0.004, [on()])[0].on
    assert len(out.applied) == 1
    dog.reset()
    assert dog.submit(0.006, [on()])[0].on


def test_continuous_on_time_limit_latches():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(501):
        assert dog.submit(k * 0.002, [on()])[0].on
    assert not dog.submit(1.004, [on()])[0].on
    assert dog.fault is not None and dog.fault.rule == "max_continuous_on_ms"


def test_off_command_restarts_the_on_time_count():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(2000):
        t = k * 0.002
        command = on() if (k // 200) % 2 == 0 else StimCommand.off(0)
        dog.submit(t, [command])
    assert dog.faults == 0


def test_time_running_backwards_is_a_fault():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    dog.submit(1.0, [on()])
    assert not dog.submit(0.5, [on()])[0].on
    assert dog.fault is not None and dog.fault.rule == "time_not_increasing"


def test_limits_cannot_be_raised_above_absolute_maxima():
    with pytest.raises(ValidationError, match="max_amplitude_ma"):
        SafetyLimits(max_amplitude_ma=150.0)


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1.0, max_value=10.0) | floats,
            st.integers(min_value=-1, max_value=3),
            st.booleans(), floats, floats, floats,
        ),
        max_size=60,
    )
)
def test_delivered_output_never_exceeds_a_limit(raw):
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    for t, channel, is_on, amp, width, freq in raw:
        dog.submit(t, [StimCommand(channel, is_on, amp, width, freq)])
    for _, commands in out.applied:
        for c in commands:
            if c.on:
                assert 0.0 <= c.amplitude_ma <= LIMITS.max_amplitude_ma
                assert 0.0 <= c.pulse_width_us <= LIMITS.max_pulse_width_us
                assert 0.0 <= c.frequency_hz <= LIMITS.max_frequency_hz
                assert 0 <= c.channel < out.channels
    times = [t for t, _ in out.applied]
    assert times == sorted(set(times))


def test_a_loop_overrun_latches_off_until_reset():
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    dog.submit(0.0, [on()])
    dog.loop_overrun(0.1, 0.08)
    dog.loop_overrun(0.2, 0.09)  # already latched: one fault
    assert dog.faults == 1 and out.stops == 1
    assert dog.fault is not None and dog.fault.rule == "loop_overrun"
    assert dog.fault.channel == -1 and dog.fault.requested == "sample 80 ms late"
    assert dog.submit(0.3, [on()]) == [StimCommand.off(0)]
    dog.reset()
    assert dog.submit(0.4, [on()]) == [on()]
