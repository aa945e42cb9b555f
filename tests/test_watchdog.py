"""The watchdog's rules one by one: what passes, what is clamped, what latches off."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import pytest
from helpers.stimulators import RecordingStimulator
from pydantic import ValidationError

from controller.ports import Sample, StimCommand
from controller.safety import SafetyLimits, Watchdog
from controller.safety.limits import (
    KNOWN_COMMAND_FIELDS,
    RISE_WINDOW_S,
    Pulse,
    pulse_breaches,
    pulse_of,
)

LIMITS = SafetyLimits(
    max_amplitude_ma=50.0, max_pulse_width_us=400.0, max_frequency_hz=50.0,
    max_continuous_on_ms=1000.0,
)
DT = 0.002


@dataclass(frozen=True, slots=True)
class NewFieldCommand(StimCommand):
    """A command with a field the watchdog has never heard of."""

    burst_count: int = 0


def on(amplitude=30.0, width=300.0, freq=40.0, channel=0) -> StimCommand:
    return StimCommand(channel, True, amplitude, width, freq)


def ramped(dog: Watchdog, command: StimCommand, start_s: float = 0.0) -> float:
    """Ramp ``command``'s amplitude up within the rise limit; return the next free time."""
    t = start_s
    steps = math.ceil(command.amplitude_ma / 1.5)
    for k in range(1, steps + 1):
        dog.submit(t, [dataclasses.replace(command, amplitude_ma=command.amplitude_ma * k / steps)])
        t += DT
    return t


def test_a_ramp_within_every_limit_passes_unchanged():
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    for k in range(20):
        command = on(amplitude=1.5 * k)
        assert dog.submit(k * DT, [command]) == [command]
    assert len(out.applied) == 20
    assert dog.faults == 0 and dog.clamped_commands == 0 and dog.interventions == []


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (on(amplitude=50.5), "max_amplitude_ma"),
        (on(width=401.0), "max_pulse_width_us"),
        (on(freq=51.0), "max_frequency_hz"),
        (on(amplitude=45.0, width=390.0), "max_charge_per_phase_uc"),  # 17.6 uC over 8 cm2
        (on(amplitude=math.nan), "non_finite_value"),
        (on(width=math.inf), "non_finite_value"),
        (on(amplitude=-1.0), "negative_value"),
        (on(channel=5), "unknown_channel"),
        (on(channel=-1), "unknown_channel"),
        (StimCommand(0, True, 20.0, 300.0, 40.0, anodic_width_ratio=0.5), "non_finite_value"),
        (StimCommand(0, True, 20.0, 300.0, 40.0, anodic_width_ratio=math.nan),
         "non_finite_value"),
        (StimCommand(0, True, 20.0, 300.0, 40.0, interphase_gap_us=-5.0), "negative_value"),
        (StimCommand(0, True, 20.0, 300.0, 40.0, interphase_gap_us=501.0),
         "max_interphase_gap_us"),
        (StimCommand(0, True, 20.0, 300.0, 40.0, anodic_width_ratio=10.5),
         "max_anodic_width_ratio"),
        (NewFieldCommand(0, True, 20.0, 300.0, 40.0, burst_count=3), "unknown_command_field"),
        ("on 30 mA please", "unknown_command_field"),
    ],
)
def test_breach_turns_output_off_and_latches(command, rule):
    limits = LIMITS.model_copy(update={"max_charge_per_phase_uc": 15.0})
    out = RecordingStimulator()
    dog = Watchdog(out, limits)
    t = ramped(dog, on(amplitude=10.0))
    applied_before = len(out.applied)
    delivered = dog.submit(t, [command])
    assert all(not c.on for c in delivered)
    assert dog.fault is not None and dog.fault.rule == rule
    assert out.stops >= 1 and len(out.applied) == applied_before
    # Latched: a perfectly safe command afterwards is still refused and logged.
    assert not dog.submit(t + DT, [on(amplitude=5.0)])[0].on
    assert len(out.applied) == applied_before
    assert dog.interventions[-1].rule == "fault_latched"
    dog.reset()
    assert dog.submit(t + 2 * DT, [on(amplitude=5.0)])[0].on
    assert dog.faults == 1


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"electrode_area_cm2": 1.0}, "max_rms_current_density_ma_per_cm2"),
        ({"electrode_area_cm2": 2.0, "max_rms_current_density_ma_per_cm2": 2.0},
         "max_rms_current_density_ma_per_cm2"),
        ({"electrode_area_cm2": 4.0, "max_shannon_k": 1.2}, "max_shannon_k"),
    ],
)
def test_density_limits_depend_on_the_electrode_area(changes, rule):
    limits = LIMITS.model_copy(update=changes)
    command = on(amplitude=30.0, width=300.0, freq=40.0)
    pulse = Pulse.symmetric(30.0, 300.0, 40.0)
    assert pulse.rms_current_ma == pytest.approx(30.0 * math.sqrt(2 * 300e-6 * 40.0))
    assert pulse.shannon_k(4.0) == pytest.approx(math.log10(9.0 / 4.0) + math.log10(9.0))
    dog = Watchdog(RecordingStimulator(), limits)
    ramped(dog, command)
    assert dog.fault is not None and dog.fault.rule == rule
    # The same pulse on the default 8 cm2 electrode is within every limit.
    calm = Watchdog(RecordingStimulator(), LIMITS)
    ramped(calm, command)
    assert calm.faults == 0


def test_a_balanced_asymmetric_pulse_passes_and_an_unbalanced_one_does_not():
    """A 4:1 pulse (ODFS-like) carries equal charge both ways; the pulse-width limit is
    the leading phase's. An unbalanced pulse (no StimCommand can say one, but a future
    command type could) is a d.c. leak the net-d.c. limit refuses."""
    balanced = StimCommand(0, True, 8.0, 300.0, 40.0, anodic_width_ratio=4.0)
    pulse = pulse_of(balanced)
    assert (pulse.recovery_amplitude_ma, pulse.recovery_pulse_width_us) == (2.0, 1200.0)
    assert pulse.net_dc_ua == 0.0
    dog = Watchdog(RecordingStimulator(), LIMITS.model_copy(update={"max_pulse_width_us": 400.0}))
    assert dog.submit(0.0, [balanced]) == [balanced]
    leaky = Pulse(8.0, 300.0, 40.0, 2.0, 1000.0, 0.0, 1000.0 / 300.0)  # 0.4 uC x 40 Hz = 16 uA
    (breach,) = [b for b in pulse_breaches(LIMITS, leaky) if b.rule == "max_net_dc_ua"]
    assert "16 uA > 10 uA" in breach.describe()


@pytest.mark.parametrize(
    ("shape", "rule", "detail"),
    [
        ({"interphase_gap_us": 1e7}, "max_interphase_gap_us", "interphase gap 1e+07 us > 500 us"),
        ({"anodic_width_ratio": 1000.0}, "max_anodic_width_ratio",
         "anodic width ratio 1000 > 10"),
    ],
)
def test_the_audits_shapes_at_60_hz_are_refused_and_never_reach_the_output(shape, rule, detail):
    """The safety audit's two commands (7 Dec 2026), which passed the watchdog and reached
    the simulated limb: a 10 s gap, a recovery phase 1000 times the leading one."""
    out = RecordingStimulator()
    dog = Watchdog(out, SafetyLimits())
    delivered = dog.submit(0.0, [dataclasses.replace(on(freq=60.0), **shape)])
    assert not delivered[0].on and out.applied == [] and out.stops == 1
    assert dog.fault is not None
    assert (dog.fault.rule, dog.fault.channel, dog.fault.detail) == (rule, 0, detail)


#: Loose enough that a whole pulse can outlast its period without breaking another limit.
LONG_PULSES = SafetyLimits(max_pulse_width_us=1000.0, max_frequency_hz=100.0,
                           max_interphase_gap_us=1000.0)


@pytest.mark.parametrize(
    ("frequency_hz", "fraction"),
    [(100.0, 1.2),  # 12 ms of pulse every 10 ms: it would overlap the next one
     (50.0, 0.6)],  # it would end 8 ms before the next one, in less than half the period
)
def test_a_pulse_that_does_not_end_well_before_the_next_one_is_refused(frequency_hz, fraction):
    """1000 us leading phase + 1000 us gap + 10000 us recovery phase = 12 ms, within the
    width, gap and ratio limits on their own."""
    out = RecordingStimulator()
    dog = Watchdog(out, LONG_PULSES)
    command = StimCommand(0, True, 10.0, 1000.0, frequency_hz, 1000.0, 10.0)
    assert not dog.submit(0.0, [command])[0].on
    assert out.applied == [] and out.stops == 1
    assert dog.fault is not None and dog.fault.rule == "max_pulse_period_fraction"
    assert dog.fault.detail == f"pulse length / period {fraction:g} > 0.5"
    # The same pulse at 40 Hz fills 0.48 of its period: delivered (its charge ramped).
    calm = Watchdog(RecordingStimulator(), LONG_PULSES)
    ramped(calm, dataclasses.replace(command, frequency_hz=40.0))
    assert calm.faults == 0


def test_the_current_of_all_channels_together_is_limited():
    """Two channels ramped up together: 30 + 20 mA is the limit and passes; the step to
    30 + 20.5 mA latches every output off before it reaches the stimulator."""
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS.model_copy(update={"max_total_amplitude_ma": 50.0}))
    t = 0.0
    for k in range(1, 21):
        dog.submit(t, [on(amplitude=1.5 * k, channel=0), on(amplitude=1.0 * k, channel=1)])
        t += DT
    assert dog.faults == 0 and dog.clamped_commands == 0
    assert sum(c.amplitude_ma for c in out.applied[-1][1]) == 50.0
    applied = len(out.applied)
    delivered = dog.submit(t, [on(amplitude=30.0, channel=0), on(amplitude=20.5, channel=1)])
    assert not any(c.on for c in delivered) and len(out.applied) == applied and out.stops == 1
    assert dog.fault is not None
    assert (dog.fault.rule, dog.fault.channel) == ("max_total_amplitude_ma", -1)
    assert dog.fault.detail == "50.5 mA on all channels together > 50 mA"
    assert dog.fault.requested == "on 20.5 mA 300 us 40 Hz"


def test_a_channel_held_on_counts_toward_the_total_current():
    """Channel 0 is not named again; turning channel 1 on beside it breaks the sum."""
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS.model_copy(update={"max_total_amplitude_ma": 40.0}))
    t = ramped(dog, on(amplitude=30.0, channel=0))
    t = ramped(dog, on(amplitude=10.0, channel=1), t)
    assert dog.faults == 0
    dog.submit(t, [on(amplitude=10.5, channel=1)])
    assert dog.fault is not None and dog.fault.rule == "max_total_amplitude_ma"


def test_time_must_increase_and_be_finite():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    dog.submit(1.0, [on(amplitude=5.0)])
    assert not dog.submit(0.5, [on(amplitude=5.0)])[0].on
    assert dog.fault is not None and dog.fault.rule == "time_not_increasing"
    dog = Watchdog(RecordingStimulator(), LIMITS)
    dog.submit(1.0, [on(amplitude=5.0)])
    dog.submit(math.nan, [on(amplitude=5.0)])
    assert dog.fault is not None and dog.fault.rule == "non_finite_time"
    assert dog.fault.t_s == 1.0  # logged at the last finite time, never NaN


def test_continuous_on_time_limit_latches():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(501):
        assert dog.submit(k * DT, [on(amplitude=5.0)])[0].on
    assert not dog.submit(1.004, [on(amplitude=5.0)])[0].on
    assert dog.fault is not None and dog.fault.rule == "max_continuous_on_ms"


def test_off_command_restarts_the_on_time_count():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(2000):
        command = on(amplitude=5.0) if (k // 200) % 2 == 0 else StimCommand.off(0)
        dog.submit(k * DT, [command])
    assert dog.faults == 0


def test_a_channel_held_on_without_new_commands_still_times_out():
    """Channel 1 is switched on once and then never named again."""
    dog = Watchdog(RecordingStimulator(), LIMITS)
    dog.submit(0.0, [on(amplitude=5.0, channel=1)])
    k = 1
    while dog.faults == 0 and k < 1000:
        dog.submit(k * DT, [StimCommand.off(0)])
        k += 1
    assert dog.fault is not None and dog.fault.rule == "max_continuous_on_ms"
    assert dog.fault.channel == 1 and dog.fault.requested == "held on"
    assert k * DT == pytest.approx(1.004, abs=DT)


def stride_pattern(dog: Watchdog, on_ms: float, off_ms: float, seconds: float) -> float:
    """Alternate on and off; return the trial time at which a fault latched (or inf)."""
    period_ms = on_ms + off_ms
    for k in range(round(seconds / DT)):
        phase_ms = (k * DT * 1000.0) % period_ms
        dog.submit(k * DT, [on(amplitude=5.0) if phase_ms < on_ms - 1e-6 else StimCommand.off(0)])
        if dog.latched:
            return k * DT
    return math.inf


def test_duty_cycle_over_the_sliding_window_latches():
    dog = Watchdog(RecordingStimulator(), LIMITS)  # max_duty_cycle 0.8 over 10 s
    t_fault = stride_pattern(dog, on_ms=900.0, off_ms=100.0, seconds=15.0)
    assert dog.fault is not None and dog.fault.rule == "max_duty_cycle"
    # Time before the first command counts as off: 0.9 x t exceeds 8 s after 8.9 s.
    assert t_fault == pytest.approx(8.8, abs=0.003)
    walking = Watchdog(RecordingStimulator(), LIMITS)
    assert stride_pattern(walking, on_ms=700.0, off_ms=300.0, seconds=30.0) == math.inf


def test_a_steep_rise_is_slowed_not_refused():
    out = RecordingStimulator()
    # 300 uC/s: at 300 us, 1000 mA/s.
    dog = Watchdog(out, LIMITS.model_copy(update={"max_charge_rise_uc_per_s": 300.0}))
    amplitudes = [dog.submit(k * DT, [on(amplitude=30.0)])[0].amplitude_ma for k in range(20)]
    assert amplitudes[0] == pytest.approx(1000.0 * RISE_WINDOW_S)  # first step: 10 mA
    assert all(b - a <= 2.0 + 1e-9 for a, b in itertools.pairwise(amplitudes))
    assert amplitudes[10] == pytest.approx(30.0)  # 10 mA + 10 steps of 2 mA
    assert dog.faults == 0 and dog.clamped_commands == 10
    first = dog.interventions[0]
    assert first.rule == "max_charge_rise_uc_per_s" and first.t_s == 0.0
    assert first.requested.startswith("on 30 mA") and first.delivered.startswith("on 10 mA")
    # Falling is never limited: off at once.
    assert not dog.submit(20 * DT, [StimCommand.off(0)])[0].on


def test_a_clamped_asymmetric_pulse_stays_balanced():
    # The first step may reach 100 uC/s x 10 ms = 1 uC: 10 mA at 100 us.
    dog = Watchdog(RecordingStimulator(), LIMITS.model_copy(
        update={"max_pulse_width_us": 400.0, "max_charge_rise_uc_per_s": 100.0}))
    command = StimCommand(0, True, 30.0, 100.0, 40.0, anodic_width_ratio=3.0)
    delivered = dog.submit(0.0, [command])[0]
    assert delivered.amplitude_ma == pytest.approx(10.0)
    assert delivered.anodic_width_ratio == 3.0
    assert pulse_of(delivered).recovery_amplitude_ma == pytest.approx(10.0 / 3.0)
    assert pulse_of(delivered).net_dc_ua == pytest.approx(0.0, abs=1e-12)
    assert dog.faults == 0


def sample(t: float, gyro: float = 1.0, heel: int = 0) -> Sample:
    return Sample(t, gyro, heel)


def test_stimulating_while_the_phase_is_unknown_too_long_latches():
    dog = Watchdog(RecordingStimulator(), LIMITS)  # max_unknown_phase_ms 250
    k = 0
    while not dog.latched and k < 500:
        dog.observe(sample(k * DT), phase_known=k < 100)
        dog.submit(k * DT, [on(amplitude=5.0)])
        k += 1
    assert dog.fault is not None and dog.fault.rule == "max_unknown_phase_ms"
    assert (k - 1) * DT == pytest.approx(0.2 + 0.252)


def test_an_unknown_phase_with_the_output_off_or_ramping_down_in_time_is_fine():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(1000):
        dog.observe(sample(k * DT), phase_known=False)
        dog.submit(k * DT, [StimCommand.off(0)])
    assert dog.faults == 0
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(1000):
        lost = k >= 100
        level = 5.0 * max(0.0, 1.0 - (k - 100) * DT / 0.2) if lost else 5.0
        dog.observe(sample(k * DT), phase_known=not lost)
        dog.submit(k * DT, [on(amplitude=level) if level > 0 else StimCommand.off(0)])
    assert dog.faults == 0


@pytest.mark.parametrize(
    "bad",
    [sample(0.0, gyro=math.nan), sample(0.0, gyro=500.0), sample(0.0, heel=7),
     sample(0.0, gyro=-math.inf)],
)
def test_a_sensor_gone_bad_latches_even_with_the_output_off(bad):
    dog = Watchdog(RecordingStimulator(), LIMITS)  # sensor_timeout_ms 20
    for k in range(100):
        dog.observe(sample(k * DT), True)
    k = 100
    while not dog.latched and k < 200:
        dog.observe(dataclasses.replace(bad, t_s=k * DT), True)
        k += 1
    assert dog.fault is not None and dog.fault.rule == "sensor_timeout_ms"
    assert (k - 1) * DT == pytest.approx(99 * DT + 0.022)


def test_isolated_dropouts_and_missing_samples():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    for k in range(1000):
        dropped = k % 5 == 0  # one NaN in five samples: 4 ms gaps
        dog.observe(sample(k * DT, gyro=math.nan if dropped else 1.0), True)
    assert dog.faults == 0
    dog.observe(sample(1000 * DT + 0.030), True)  # 30 ms without any sample at all
    assert dog.fault is not None and dog.fault.rule == "sensor_timeout_ms"


def test_a_loop_that_stops_reporting_samples_is_caught_at_its_next_command():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    dog.observe(sample(0.0), True)
    for k in range(1, 20):
        dog.submit(k * DT, [StimCommand.off(0)])
    assert dog.fault is not None and dog.fault.rule == "sensor_timeout_ms"


def test_emergency_stop_latches_and_is_logged():
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    t = ramped(dog, on(amplitude=10.0))
    stops = out.stops
    dog.emergency_stop("api")
    assert out.stops == stops + 1
    assert dog.fault is not None and dog.fault.rule == "emergency_stop"
    assert dog.fault.requested == "e-stop (api)" and dog.fault.delivered == "all off"
    assert dog.fault.t_s >= t - DT
    dog.emergency_stop("key")
    assert dog.faults == 1 and dog.interventions[-1].requested == "e-stop (key)"
    assert not dog.submit(t + 1.0, [on(amplitude=5.0)])[0].on


def test_every_fault_is_logged_with_time_rule_requested_and_delivered():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    t = ramped(dog, on(amplitude=10.0))
    dog.submit(t, [on(amplitude=55.0)])
    fault = dog.fault
    assert fault is not None
    assert (fault.t_s, fault.rule, fault.channel) == (t, "max_amplitude_ma", 0)
    assert fault.requested == "on 55 mA 300 us 40 Hz" and fault.delivered == "all off"
    assert fault.detail == "amplitude 55 mA > 50 mA"


def test_stop_all_is_not_a_fault_and_reset_keeps_outputs_off():
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    t = ramped(dog, on(amplitude=10.0))
    dog.stop_all()
    assert out.stops == 1 and dog.faults == 0
    # After a stop the channel is off: the next command rises from 0 uC again, to
    # 350 uC/s x 2 ms = 0.7 uC, which is 2.33 mA at 300 us.
    rise_uc = LIMITS.max_charge_rise_uc_per_s * DT
    assert dog.submit(t, [on(amplitude=30.0)])[0].amplitude_ma == pytest.approx(rise_uc / 0.3)


@pytest.mark.parametrize(
    "field", [name for name, f in SafetyLimits.model_fields.items() if f.metadata]
)
def test_no_limit_can_be_raised_above_its_absolute_maximum(field):
    ceiling = next(m.le for m in SafetyLimits.model_fields[field].metadata if hasattr(m, "le"))
    SafetyLimits(**{field: ceiling})
    with pytest.raises(ValidationError, match=field):
        SafetyLimits(**{field: ceiling * 1.01})


def test_the_watchdog_understands_every_field_of_a_command():
    """A field added to StimCommand (an interphase gap, an asymmetry) must be taught to
    the watchdog first; until then every such command is refused."""
    names = {f.name for f in dataclasses.fields(StimCommand)}
    assert names <= KNOWN_COMMAND_FIELDS


def test_a_loop_overrun_latches_off_until_reset():
    """Stale commands (the loop fell behind by more than loop.max_overrun_ms)."""
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    dog.submit(0.0, [on(amplitude=5.0)])
    dog.loop_overrun(0.1, 0.08)
    dog.loop_overrun(0.2, 0.09)  # already latched: still one fault
    assert dog.faults == 1 and out.stops >= 1
    assert dog.fault is not None and dog.fault.rule == "loop_overrun"
    assert dog.fault.channel == -1 and dog.fault.detail == "sample 80 ms late"
    assert not dog.submit(0.3, [on(amplitude=5.0)])[0].on
    dog.reset()
    assert dog.submit(0.4, [on(amplitude=5.0)])[0].on


def test_refusals_under_a_latch_are_logged_once_per_channel_and_all_counted():
    """An hour of a latched trial must not add a record per sample to summary.json."""
    out = RecordingStimulator()
    dog = Watchdog(out, LIMITS)
    dog.emergency_stop()
    t = 0.0
    for _ in range(100):
        t += DT
        dog.submit(t, [on(amplitude=5.0), StimCommand(1, True, 5.0, 300.0, 40.0)])
    refused = [i for i in dog.interventions if i.rule == "fault_latched"]
    assert [i.channel for i in refused] == [0, 1]
    assert dog.clamped_commands == 200
    dog.reset()
    dog.emergency_stop()  # a new latch: its first refusals are logged again
    dog.submit(t + DT, [on(amplitude=5.0)])
    assert [i.channel for i in dog.interventions if i.rule == "fault_latched"] == [0, 1, 0]


def test_a_pulse_of_a_charge_too_small_for_a_float_still_counts_as_on():
    """Found by the 100,000-sequence property run: 1 mA x 5e-324 us is a pulse (the
    output switches), but its charge in uC underflows to 0, and the channel was then
    held as off, so its time on went uncounted."""
    dog = Watchdog(RecordingStimulator(), LIMITS)  # max_continuous_on_ms 1000
    k = 0
    while not dog.latched and k < 700:
        dog.submit(k * DT, [on(amplitude=1.0, width=5e-324)])
        k += 1
    assert dog.fault is not None and dog.fault.rule == "max_continuous_on_ms"
    assert k * DT == pytest.approx(1.0 + 2 * DT)
