"""What the watchdog hands the stimulator is what it checked: a command rebuilt from the
numbers it read once, never the caller's object (issue 13 item 3)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from helpers.watchdog_sequences import held_charge_changed
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ports import StimCommand
from controller.safety import SafetyLimits, Watchdog
from controller.safety.limits import RISE_WINDOW_S, pulse_breaches, pulse_of
from hw import protocol as p


class RecordingStimulator:
    """A Stimulator that reads every command it is given, as a driver would."""

    channels = 1

    def __init__(self) -> None:
        self.amplitudes_ma: list[float] = []
        self.types: list[type] = []

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        for command in commands:
            self.types.append(type(command))
            self.amplitudes_ma.append(command.amplitude_ma)

    def stop_all(self) -> None:
        pass


@dataclass(frozen=True)
class ShiftyCommand:
    """Every field a ``StimCommand`` has, but an amplitude that reads 1 mA the first
    time and 99 mA from then on (a caller's object that changes under the watchdog)."""

    channel: int
    on: bool
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float = 0.0
    anodic_width_ratio: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", 0)  # not a field: the watchdog knows every field

    @property
    def amplitude_ma(self) -> float:
        object.__setattr__(self, "reads", self.reads + 1)  # type: ignore[attr-defined]
        return 1.0 if self.reads == 1 else 99.0  # type: ignore[attr-defined]


def test_an_object_that_changes_between_reads_is_delivered_as_checked():
    stimulator = RecordingStimulator()
    dog = Watchdog(stimulator, SafetyLimits())
    command = ShiftyCommand(0, True, 300.0, 40.0)
    delivered = dog.submit(0.0, [command])  # type: ignore[list-item]

    assert stimulator.amplitudes_ma == [1.0]  # what the watchdog checked, not 99 mA
    assert stimulator.types == [StimCommand]
    assert delivered == [StimCommand(0, True, 1.0, 300.0, 40.0)]
    assert not dog.latched



def _exactly(commands: Sequence[StimCommand]) -> list[tuple[object, ...]]:
    """Every field of ``commands``, floats with their sign (0.0 is not -0.0 here)."""
    return [tuple((f, math.copysign(1.0, f)) if isinstance(f, float) else f
                  for f in dataclasses.astuple(c)) for c in commands]


def test_a_repeated_submit_delivers_what_a_fresh_watchdog_builds():
    """Rows bit for bit the last submit's get the commands built then (a held output
    builds no new objects); each delivery equals, field by field and sign of zero, what
    a fresh watchdog delivers for the same request, and is never the caller's object."""
    asks = [
        lambda: StimCommand(0, False, 0.0, 0.0, 0.0),
        lambda: StimCommand(0, False, 0.0, 0.0, 0.0),
        lambda: StimCommand(0, True, -0.0, 300.0, 40.0),
        lambda: StimCommand(0, True, 0.0, 300.0, 40.0),
        lambda: ShiftyCommand(0, True, 300.0, 40.0),  # checked at 1 mA each time
        lambda: ShiftyCommand(0, True, 300.0, 40.0),
        lambda: StimCommand(0, True, 1.0, 300.0, 40.0),
    ]
    stimulator = RecordingStimulator()
    dog = Watchdog(stimulator, SafetyLimits())
    for k, ask in enumerate(asks):
        t = k * 0.001
        request = ask()
        got = dog.submit(t, [request])  # type: ignore[list-item]
        fresh = Watchdog(RecordingStimulator(), SafetyLimits()).submit(t, [ask()])  # type: ignore[list-item]
        assert _exactly(got) == _exactly(fresh), k
        assert got[0] is not request and type(got[0]) is StimCommand
    assert stimulator.amplitudes_ma == [0.0, 0.0, -0.0, 0.0, 1.0, 1.0, 1.0]
    assert not dog.latched

# ---- quantisation: what is checked is what goes on the wire (issue 13 item 2) ---------

#: Every limit at its compiled maximum, on a large electrode so that charge per phase is
#: the limit that binds at 35 mA x 1000 us.
WIDE_OPEN = SafetyLimits(
    max_amplitude_ma=100.0, max_pulse_width_us=1000.0, max_frequency_hz=100.0,
    max_charge_per_phase_uc=35.0, electrode_area_cm2=100.0,
    max_charge_rise_uc_per_s=700.0,
)


class WireStimulator:
    """The board driver's encoding path without a board: every command delivered is
    encoded as the board's STIM_SHAPED frame, then decoded as the firmware reads it."""

    channels = 2
    resolution = p.RESOLUTION

    def __init__(self) -> None:
        self.sent: list[tuple[float, StimCommand, StimCommand]] = []
        self._decoder = p.FrameDecoder()

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        # A channel named twice holds its last command, as on every Stimulator (the
        # board driver sends only that one: a STIM_SHAPED names a channel once).
        last = list({c.channel: c for c in commands}.values())
        settings = tuple(p.ChannelSetting.from_command(c) for c in last)
        (frame,) = self._decoder.feed(p.StimShaped(0, settings).encode(len(self.sent)))
        received = p.parse(frame)
        assert isinstance(received, p.StimShaped)
        for command, setting in zip(last, received.settings, strict=True):
            self.sent.append((t_s, command, setting.to_command()))

    def stop_all(self) -> None:
        pass


def breaches_on_the_wire(limits: SafetyLimits, received: StimCommand) -> list[str]:
    """Every per-pulse limit the command the board received exceeds."""
    if not received.delivers:
        return []
    return [b.describe() for b in pulse_breaches(limits, pulse_of(received))]


def test_wire_rounding_cannot_take_a_checked_pulse_beyond_the_charge_limit():
    """The issue's repro: 35.006 mA x 999.8 us is 34.999 uC, within 35 uC, and rounded
    to the wire's 10 uA and 1 us it was 35.01 mA x 1000 us = 35.01 uC."""
    wire = WireStimulator()
    dog = Watchdog(wire, WIDE_OPEN)
    t = 0.0
    for amplitude in [*range(1, 36), 35.006]:  # ramped within the rise limit
        t += 0.002
        dog.submit(t, [StimCommand(0, True, float(amplitude), 999.8, 40.0)])
    assert not dog.latched and dog.clamped_commands == 0
    _, delivered, received = wire.sent[-1]
    assert received.amplitude_ma * received.pulse_width_us <= 35_000.0  # nC
    assert received == delivered  # the watchdog checked exactly what the board got
    assert all(not breaches_on_the_wire(WIDE_OPEN, r) for _, _, r in wire.sent)


COMMANDS = st.builds(
    StimCommand,
    st.sampled_from([0, 1]),
    st.sampled_from([True, True, True, False]),
    st.floats(0.0, 110.0),
    st.floats(0.0, 1100.0),
    st.floats(0.0, 110.0),
    st.sampled_from([0.0, 0.0, 0.0, 25.0, 49.999, 50.5]),
    st.one_of(st.just(1.0), st.floats(1.0, 10.0)),
)
LIMITS = st.builds(
    SafetyLimits,
    max_amplitude_ma=st.floats(1.0, 100.0),
    max_pulse_width_us=st.floats(10.0, 1000.0),
    max_frequency_hz=st.floats(1.0, 100.0),
    max_charge_per_phase_uc=st.floats(0.5, 35.0),
    electrode_area_cm2=st.floats(1.0, 100.0),
    max_rms_current_density_ma_per_cm2=st.floats(0.1, 2.0),
    max_shannon_k=st.floats(0.5, 1.85),
    max_charge_rise_uc_per_s=st.floats(3.0, 700.0),
)
#: A command as asked (one in ten: whatever it asks) or brought within the per-pulse
#: limits first (nine in ten), so that most sequences stimulate instead of latching at
#: their first breach.
ASKED = st.tuples(COMMANDS, st.sampled_from([False] + [True] * 9))
STEPS = st.lists(
    st.tuples(st.floats(1e-4, 0.02), st.lists(ASKED, min_size=1, max_size=2)),
    min_size=1, max_size=40,
)


def within(limits: SafetyLimits, command: StimCommand) -> StimCommand:
    """``command`` with its width and frequency at most their limits and its amplitude
    lowered until its pulse breaches no limit."""
    command = dataclasses.replace(
        command, pulse_width_us=min(command.pulse_width_us, limits.max_pulse_width_us),
        frequency_hz=min(command.frequency_hz, limits.max_frequency_hz))
    for _ in range(200):
        if not command.delivers or not pulse_breaches(limits, pulse_of(command)):
            return command
        command = dataclasses.replace(command, amplitude_ma=command.amplitude_ma * 0.9)
    return command


def check_wire(limits: SafetyLimits, steps: list) -> int:
    """Drive the watchdog over the board's encoding; every frame the board gets is the
    command the watchdog checked, within every per-pulse limit and the rise limit.
    Returns how many stimulating commands went out."""
    wire = WireStimulator()
    dog = Watchdog(wire, limits)
    t = 0.0
    for dt, asked in steps:
        t += dt
        dog.submit(t, [within(limits, c) if fit else c for c, fit in asked])
    held: dict[int, tuple[float, float]] = {}  # channel: (charge uC, time it last changed)
    stimulating = 0
    for t_s, delivered, received in wire.sent:
        # Off is all zeros on the wire, whatever numbers came with it.
        assert received == (delivered if delivered.on else StimCommand.off(delivered.channel))
        assert not breaches_on_the_wire(limits, received), received
        held_uc, last_s = held.get(received.channel, (0.0, -math.inf))
        charge_uc = pulse_of(received).charge_per_phase_uc if received.delivers else 0.0
        if received.delivers:
            stimulating += 1
            allowed = held_uc + limits.max_charge_rise_uc_per_s * min(t_s - last_s, RISE_WINDOW_S)
            assert charge_uc <= allowed * (1 + 1e-9) + 1e-12
        changed = held_charge_changed(held_uc, charge_uc)
        held[received.channel] = (charge_uc, t_s if changed else last_s)
    return stimulating


def test_no_encoded_stim_exceeds_a_limit_the_watchdog_enforces():
    stimulating = 0

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(LIMITS, STEPS)
    def prop(limits, steps):
        nonlocal stimulating
        stimulating += check_wire(limits, steps)

    prop()
    assert stimulating > 100  # the search reached stimulation, not only refusals


@pytest.mark.slow
def test_no_encoded_stim_exceeds_a_limit_the_watchdog_enforces_10000_cases():
    stimulating = 0

    @settings(max_examples=10_000, deadline=None)
    @given(LIMITS, STEPS)
    def prop(limits, steps):
        nonlocal stimulating
        stimulating += check_wire(limits, steps)

    prop()
    print(f"\nencoder property: cases tried 10000, stimulating commands on the wire "
          f"{stimulating}, failures 0")
    assert stimulating > 10_000


def test_the_last_command_for_a_channel_in_a_submit_is_what_it_holds_after_quantising():
    """Found by the 10,000-case run: a clamped command re-quantised after a later command
    for the same channel in the same submit made the channel hold the earlier one, and the
    next rise was allowed from there."""
    limits = SafetyLimits(max_amplitude_ma=33.0, max_charge_rise_uc_per_s=3.0)
    wire = WireStimulator()
    dog = Watchdog(wire, limits)
    dog.submit(0.015625, [StimCommand(0, True, 33.0, 3.0, 1.0),  # clamped to 0.03 uC
                          StimCommand(0, True, 0.0, 0.0, 0.0)])  # then nothing
    dog.submit(0.03125, [StimCommand(0, True, 4.0, 8.0, 1.0)])  # 0.032 uC from nothing
    _, _, received = wire.sent[-1]
    assert pulse_of(received).charge_per_phase_uc <= 3.0 * 0.010 + 1e-12


def test_a_channel_named_twice_is_judged_by_the_command_it_holds():
    """Found by the 10,000-case run: one submit naming channel 0 twice, the first clamped
    to 0.96 mA x 31 us (0.02976 uC), the second 1 mA x 30 us (0.03 uC), both within the
    0.03 uC a 3 uC/s rise allows from off. The channel holds the second only (as every
    stimulator does), so nothing rose beyond the limit."""
    limits = SafetyLimits(max_amplitude_ma=1.0, max_pulse_width_us=31.0,
                          max_frequency_hz=1.0, max_charge_rise_uc_per_s=3.0)
    wire = WireStimulator()
    Watchdog(wire, limits).submit(
        0.5, [StimCommand(0, True, 1.0, 31.0, 1.0), StimCommand(0, True, 1.0, 30.0, 1.0)])
    assert [received for _, _, received in wire.sent] == [StimCommand(0, True, 1.0, 30.0, 1.0)]
    assert check_wire(limits, [(0.5, [(StimCommand(0, True, 1.0, 31.0, 1.0), False),
                                      (StimCommand(0, True, 1.0, 30.0, 1.0), False)])]) == 1
