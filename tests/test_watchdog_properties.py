"""Property tests: whatever the loop asks (NaN, inf, negative, huge, reordered times,
bursts, asymmetric pulses, bad sensor data, resets), what reaches the stimulator stays
within every limit and charge-balanced.

The checker below rebuilds the output from what the stimulator received (apply and
stop_all calls, in order) and re-derives every limit with its own arithmetic, so a bug
in the watchdog's pulse formulas or channel bookkeeping shows up here. The default run
generates a few hundred sequences; ``-m slow`` runs 100,000.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from helpers.watchdog_sequences import CHANNELS, LIMIT_SETS, held_charge_changed, steps
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.ports import Sample, StimCommand
from controller.safety import SafetyLimits, Watchdog
from controller.safety.limits import DUTY_WINDOW_S, RISE_WINDOW_S

TOL = 1e-9


class RecordingStimulator:
    """Keeps every call in order; ``now`` is the time of the watchdog call in progress."""

    channels = CHANNELS

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.now = math.nan

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        self.events.append(("apply", t_s, list(commands)))

    def stop_all(self) -> None:
        self.events.append(("stop", self.now))




def drive(
    limits: SafetyLimits, sequence: list[tuple]
) -> tuple[Watchdog, RecordingStimulator, list[tuple]]:
    """Run a generated sequence; times are cumulative sums of the steps' ``dt``."""
    out = RecordingStimulator()
    dog = Watchdog(out, limits)
    timeline: list[tuple] = []  # ("observe", t, ok, known) and the stimulator's events
    t = 0.0
    for step in sequence:
        if step[0] == "reset":
            out.now = math.nan  # the output goes off at the last accepted command's time
            before = len(out.events)
            dog.reset()
            timeline.extend(out.events[before:])
            continue
        dt = step[1]
        t_call = t + dt if math.isfinite(dt) else dt
        if math.isfinite(t_call):
            t = max(t, t_call) if dt >= 0 else t
        out.now = t_call
        before = len(out.events)
        latched_before = dog.latched
        if step[0] in ("observe", "loop"):
            sample = Sample(t_call, step[2], step[3])
            dog.observe(sample, phase_known=step[4])
            timeline.append(("observe", t_call, sample, step[4]))
            timeline.extend(out.events[before:])
            before = len(out.events)
            latched_before = dog.latched
        if step[0] in ("submit", "loop"):
            burst = step[-1]
            delivered = dog.submit(t_call, burst)
            assert len(delivered) == len(burst)
            if latched_before:  # nothing reaches the output while a fault is latched
                assert all(e[0] == "stop" for e in out.events[before:])
            timeline.extend(out.events[before:])
    return dog, out, timeline


@dataclass
class Output:
    """One channel as the checker reconstructs it from the stimulator's calls."""

    on: bool = False
    since: float = math.nan
    charge_uc: float = 0.0
    amplitude_ma: float = 0.0  # peak current of either phase while on
    last_change: float = -math.inf  # the held charge's (the rise rule counts from it)
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def close(self, t: float) -> None:
        if self.on:
            self.intervals.append((self.since, max(t, self.since)))
        self.on, self.since, self.charge_uc, self.amplitude_ma = False, math.nan, 0.0, 0.0

    def duty(self, t: float) -> float:
        start = t - DUTY_WINDOW_S
        total = sum(max(0.0, min(b, t) - max(a, start)) for a, b in self.intervals)
        if self.on:
            total += t - max(self.since, start)
        return total / DUTY_WINDOW_S


def check_pulse(command: StimCommand, lim: SafetyLimits) -> float:
    """Assert the per-pulse limits of a command that stimulates; return its charge per
    phase (uC)."""
    a1, w1, f = command.amplitude_ma, command.pulse_width_us, command.frequency_hz
    ratio, gap = command.anodic_width_ratio, command.interphase_gap_us
    assert math.isfinite(ratio) and ratio >= 1.0, command  # balanced by construction
    assert math.isfinite(gap) and gap >= 0.0, command
    a2, w2 = a1 / ratio, w1 * ratio  # the recovery phase: same charge, no net d.c.
    values = (a1, w1, f, a2, w2)
    assert all(math.isfinite(v) and v >= 0.0 for v in values), command
    area = lim.electrode_area_cm2
    q = max(a1 * w1, a2 * w2) / 1000.0  # uC
    assert max(a1, a2) <= lim.max_amplitude_ma
    assert w1 <= lim.max_pulse_width_us  # the leading phase (docs/safety.md)
    assert f <= lim.max_frequency_hz
    assert q <= lim.max_charge_per_phase_uc * (1 + TOL)
    rms_ma = math.sqrt((a1 * a1 * w1 + a2 * a2 * w2) * 1e-6 * f)
    assert rms_ma / area <= lim.max_rms_current_density_ma_per_cm2 * (1 + TOL)
    if q > 0.0:  # log10(Q/A) + log10(Q), written so that a denormal Q cannot underflow
        assert 2.0 * math.log10(q) - math.log10(area) <= lim.max_shannon_k + TOL
    # Charge balance: the d.c. left by the imbalance of each pulse.
    net_dc_ua = abs(a1 * w1 - a2 * w2) / 1000.0 * f
    assert net_dc_ua <= lim.max_net_dc_ua * (1 + TOL) + 1e-12
    # The shape: gap, ratio, and the whole pulse well within its period.
    assert gap <= lim.max_interphase_gap_us
    assert ratio <= lim.max_anodic_width_ratio
    assert (w1 + gap + w1 * ratio) * 1e-6 * f <= lim.max_pulse_period_fraction
    return q


def check(timeline: list[tuple], lim: SafetyLimits) -> int:
    """Assert every limit on the reconstructed output; return the number of applies."""
    outputs = [Output() for _ in range(CHANNELS)]
    last_apply = -math.inf
    first_observed = last_good = unknown_since = math.nan
    applies = 0
    for event in timeline:
        kind, t = event[0], event[1]
        if kind == "observe":
            if math.isfinite(t):
                sample, known = event[2], event[3]
                if math.isnan(first_observed):
                    first_observed = t
                good = math.isfinite(sample.gyro_rad_s) and abs(sample.gyro_rad_s) <= 100.0
                if good and sample.heel_switch in (0, 1):
                    last_good = t
                if known:
                    unknown_since = math.nan
                elif math.isnan(unknown_since):
                    unknown_since = t
            continue
        if kind == "stop":
            off_t = max(t, last_apply) if math.isfinite(t) else last_apply
            for out in outputs:
                out.close(off_t)
            continue
        applies += 1
        assert math.isfinite(t) and t > last_apply
        last_apply = t
        for command in event[2]:
            assert isinstance(command.channel, int) and 0 <= command.channel < CHANNELS
            out = outputs[command.channel]
            charge = command.amplitude_ma * command.pulse_width_us  # equal both ways
            stimulates = command.on and command.frequency_hz > 0 and charge > 0
            if stimulates:
                charge_uc = check_pulse(command, lim)
                allowed = out.charge_uc + lim.max_charge_rise_uc_per_s * min(
                    t - out.last_change, RISE_WINDOW_S)
                assert charge_uc <= allowed * (1 + 2e-9) + 1e-12, (charge_uc, allowed)
                if not out.on or held_charge_changed(out.charge_uc, charge_uc):
                    out.last_change = t
                if not out.on:
                    out.on, out.since = True, t
                out.charge_uc = charge_uc
                out.amplitude_ma = command.amplitude_ma  # the leading phase's, the larger
            else:
                if out.on:
                    out.last_change = t
                out.close(t)
        assert sum(out.amplitude_ma for out in outputs) <= lim.max_total_amplitude_ma
        for out in outputs:
            if out.on:
                assert (t - out.since) * 1000.0 <= lim.max_continuous_on_ms * (1 + TOL)
                assert out.duty(t) <= lim.max_duty_cycle + TOL
                if not math.isnan(unknown_since):
                    assert (t - unknown_since) * 1000.0 <= lim.max_unknown_phase_ms + TOL
        if not math.isnan(first_observed):
            reference = first_observed if math.isnan(last_good) else last_good
            assert (t - reference) * 1000.0 <= lim.sensor_timeout_ms + TOL
    return applies


def run_property(max_examples: int, derandomize: bool) -> tuple[set[str], int]:
    """Check ``max_examples`` generated sequences; return the rules that intervened and
    the number of commands applied, so a test can also show the search reached them."""
    rules: set[str] = set()
    applies = 0

    @settings(max_examples=max_examples, deadline=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(LIMIT_SETS), steps)
    def output_never_exceeds_a_limit(limits: SafetyLimits, sequence: list[tuple]) -> None:
        nonlocal applies
        dog, out, timeline = drive(limits, sequence)
        applies += check(timeline, limits)
        assert sum(1 for e in out.events if e[0] == "stop") >= dog.faults
        for item in dog.interventions:
            assert math.isfinite(item.t_s) and item.rule and item.requested and item.delivered
        rules.update(item.rule for item in dog.interventions)

    output_never_exceeds_a_limit()
    return rules, applies


#: Rules the default run's fixed sample reaches; the 100k run must reach every rule.
#: ``max_net_dc_ua`` is not among them: every ``StimCommand`` pulse is balanced by
#: construction (its shape is a width ratio), so that rule guards future command types
#: and is tested on an unbalanced ``Pulse`` in test_watchdog.py.
#: The amplitude and pulse-width rules are reached by the slow run and each has its own
#: explicit test in test_watchdog.py; whether the fixed 300-example sample reaches them
#: depends on the draw order, so they are not asserted here.
REACHED = {"max_charge_rise_uc_per_s", "non_finite_value", "negative_value",
           "unknown_channel", "non_finite_time", "time_not_increasing", "sensor_timeout_ms",
           "fault_latched"}
EVERY_RULE = REACHED | {"max_amplitude_ma", "max_pulse_width_us", "max_frequency_hz",
                       "max_charge_per_phase_uc", "max_rms_current_density_ma_per_cm2",
                       "max_shannon_k", "max_interphase_gap_us", "max_anodic_width_ratio",
                       "max_pulse_period_fraction", "max_total_amplitude_ma",
                       "max_continuous_on_ms", "max_duty_cycle", "max_unknown_phase_ms"}


def test_output_never_exceeds_a_limit():
    """A fixed (derandomized) sample, so that the default run is repeatable."""
    rules, applies = run_property(300, derandomize=True)
    assert applies > 500
    assert rules >= REACHED, REACHED - rules


@pytest.mark.slow
def test_output_never_exceeds_a_limit_100k():
    rules, applies = run_property(100_000, derandomize=False)
    print(f"100,000 sequences, {applies} commands applied, rules reached: {sorted(rules)}")
    assert rules >= EVERY_RULE, EVERY_RULE - rules


def on(t: float, amplitude: float = 5.0, width: float = 300.0, freq: float = 40.0) -> tuple:
    return ("apply", t, [StimCommand(0, True, amplitude, width, freq)])


@pytest.mark.parametrize(
    "timeline",
    [
        [on(0.0, amplitude=51.0)],
        [on(0.0, width=401.0)],
        [on(0.0, amplitude=45.0, width=350.0)],  # 15.75 uC > 15 uC
        [("apply", 0.0, [StimCommand(0, True, 5.0, 300.0, 40.0, anodic_width_ratio=0.5)])],
        [("apply", 0.0, [StimCommand(0, True, 5.0, 100.0, 40.0, interphase_gap_us=101.0)])],
        [("apply", 0.0, [StimCommand(0, True, 5.0, 100.0, 40.0, anodic_width_ratio=3.5)])],
        # 380 + 20 + 456 us at 50 Hz: 4.28 % of the period, within every other limit.
        [("apply", 0.0, [StimCommand(0, True, 5.0, 380.0, 50.0, 20.0, 1.2)])],
        [("apply", 0.0, [StimCommand(0, True, 2.0, 300.0, 40.0),
                         StimCommand(1, True, 2.0, 300.0, 40.0)]),
         ("apply", 0.01, [StimCommand(0, True, 40.0, 10.0, 40.0),
                          StimCommand(1, True, 40.5, 10.0, 40.0)])],  # 80.5 mA together
        [on(0.0), on(0.002, amplitude=15.0)],  # a 10 mA step in 2 ms
        [on(0.0), on(0.61)],  # on for 610 ms
        [on(k * 0.5) if k % 2 == 0 else ("apply", k * 0.5, [StimCommand.off(0)])
         for k in range(7)],  # 1.5 s on in 10 s > 10 %
        [("observe", 0.0, Sample(0.0, 1.0, 0), False), on(0.2)],  # phase unknown 200 ms
        [("observe", 0.0, Sample(0.0, 1.0, 0), True), on(0.03)],  # no sample for 30 ms
        [on(0.0), on(0.0)],  # time not increasing
    ],
)
def test_the_checker_catches_what_the_watchdog_must_stop(timeline):
    """The checker is not vacuous: fed output that the watchdog would never let through,
    it fails."""
    with pytest.raises(AssertionError):
        check(timeline, LIMIT_SETS[0])


def test_the_checker_accepts_a_clean_walk():
    timeline = []
    for k in range(90):
        t = k * 0.002
        timeline.append(("observe", t, Sample(t, 1.0, 0), True))
        if k >= 50:
            timeline.append(on(t, amplitude=min(2.0 * (k - 49), 20.0)))
    assert check(timeline, LIMIT_SETS[1]) == 40


#: Limits that none of the boundary tests' pulses reaches but the one under test.
_LOOSE = SafetyLimits(max_pulse_width_us=1000.0, max_frequency_hz=100.0,
                      max_interphase_gap_us=1000.0)
_ABOVE = math.inf


def _first_fault(limits: SafetyLimits, commands: list[StimCommand]) -> str | None:
    dog = Watchdog(RecordingStimulator(), limits)
    dog.submit(0.0, commands)
    return dog.fault.rule if dog.fault else None


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.floats(0.0, 1000.0), st.floats(1.0, 10.0))
def test_a_gap_or_ratio_exactly_at_its_limit_passes_and_the_next_float_up_does_not(gap, ratio):
    limits = _LOOSE.model_copy(update={"max_interphase_gap_us": gap,
                                       "max_anodic_width_ratio": ratio,
                                       "max_pulse_period_fraction": 0.5})
    pulse = StimCommand(0, True, 1.0, 10.0, 10.0, gap, ratio)  # at most 0.0121 of 100 ms
    assert _first_fault(limits, [pulse]) is None
    wider = dataclasses.replace(pulse, interphase_gap_us=math.nextafter(gap, _ABOVE))
    assert _first_fault(limits, [wider]) == "max_interphase_gap_us"
    if ratio < 10.0:
        longer = dataclasses.replace(pulse, anodic_width_ratio=math.nextafter(ratio, _ABOVE))
        assert _first_fault(limits, [longer]) == "max_anodic_width_ratio"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.floats(10.0, 1000.0), st.floats(1.0, 100.0), st.floats(1.0, 10.0),
       st.floats(0.0, 1000.0))
def test_a_pulse_filling_exactly_its_allowed_fraction_of_the_period_passes(w1, f, ratio, gap):
    """Boundary of ``max_pulse_period_fraction`` as docs/safety.md writes it: (width +
    gap + width x ratio) x frequency. At the limit the pulse passes; with the limit one
    float lower it is refused."""
    fraction = (w1 + gap + w1 * ratio) * 1e-6 * f
    assume(0.0 < fraction <= 0.5)
    pulse = StimCommand(0, True, 1.0, w1, f, gap, ratio)
    at = _LOOSE.model_copy(update={"max_pulse_period_fraction": fraction})
    assert _first_fault(at, [pulse]) is None
    below = at.model_copy(update={"max_pulse_period_fraction": math.nextafter(fraction, 0.0)})
    assert _first_fault(below, [pulse]) == "max_pulse_period_fraction"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.floats(0.5, 60.0), st.floats(0.5, 60.0))
def test_a_total_current_exactly_at_its_limit_passes_and_one_float_over_does_not(a, b):
    """Two channels switched on together (10 us pulses: no rise clamp from off)."""
    both = [StimCommand(0, True, a, 10.0, 40.0), StimCommand(1, True, b, 10.0, 40.0)]
    at = _LOOSE.model_copy(update={"max_total_amplitude_ma": a + b})
    assert _first_fault(at, both) is None
    over = at.model_copy(update={"max_total_amplitude_ma": math.nextafter(a + b, 0.0)})
    assert _first_fault(over, both) == "max_total_amplitude_ma"
