"""The watchdog's kernels as a compiled loop calls them, and the tables they share with
the Python shell: one implementation of every rule, so the two paths cannot disagree."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from helpers.stimulators import RecordingStimulator
from helpers.watchdog_sequences import LIMIT_SETS, steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ports import COMMAND_ROW_SIZE, Sample, StimCommand, command_of_row, write_row
from controller.safety import SafetyLimits, Watchdog, rules
from controller.safety.channels import channel_base, deliver, duty
from controller.safety.decide import watchdog_observe, watchdog_submit
from controller.safety.layout import (
    C_CLOSED_TOTAL,
    C_RING_COUNT,
    C_RING_HEAD,
    CHANNEL_FIELDS,
    DUTY_RING_INTERVALS,
    new_state,
)
from controller.safety.limits import DUTY_WINDOW_S, MAX_SAMPLE_RATE_HZ, Pulse, pulse_breaches

LIMITS = SafetyLimits(max_amplitude_ma=50.0, max_pulse_width_us=400.0, max_frequency_hz=50.0)


def test_every_rule_constant_names_its_rule_and_the_limits_are_safety_limits_fields():
    constants = {name: value for name, value in vars(rules).items()
                 if name.isupper() and isinstance(value, int)}
    rule_constants = {n: v for n, v in constants.items() if n not in ("ELECTRODE_AREA_CM2",)
                      and not n.startswith("Q_")}
    assert len(rule_constants) == len(rules.RULE_NAMES)
    for name, code in rule_constants.items():
        assert rules.RULE_NAMES[code] == ("" if name == "NO_RULE" else name.lower())
    assert sorted(rules.LIMIT_FIELDS) == sorted(SafetyLimits.model_fields)
    numbers = LIMITS.kernel_array()
    for index, name in enumerate(rules.LIMIT_FIELDS):
        assert numbers[index] == getattr(LIMITS, name)
    for position, (rule, _, _) in enumerate(rules.PULSE_LIMITS):
        assert rules.PULSE_RULES[position] == rule


def test_the_q_positions_follow_the_pulse_limit_table():
    # Unbalanced (9 uC out, 6 uC back), a 100 us gap: 300 + 100 + 600 us at 40 Hz.
    pulse = Pulse(30.0, 300.0, 40.0, 10.0, 600.0, 100.0, 2.0)
    expected = {
        rules.Q_AMPLITUDE: 30.0, rules.Q_PULSE_WIDTH: 300.0, rules.Q_FREQUENCY: 40.0,
        rules.Q_CHARGE_PER_PHASE: 9.0, rules.Q_NET_DC: 120.0,
        rules.Q_RMS_CURRENT_DENSITY: pulse.rms_current_ma / 8.0,
        rules.Q_SHANNON_K: pulse.shannon_k(8.0),
        rules.Q_INTERPHASE_GAP: 100.0, rules.Q_ANODIC_WIDTH_RATIO: 2.0,
        rules.Q_PULSE_PERIOD_FRACTION: 1000e-6 * 40.0,
    }
    tight = SafetyLimits(max_amplitude_ma=1.0, max_pulse_width_us=1.0, max_frequency_hz=1.0,
                         max_charge_per_phase_uc=1.0, max_rms_current_density_ma_per_cm2=0.01,
                         max_shannon_k=0.01, max_net_dc_ua=0.0, max_interphase_gap_us=0.0,
                         max_anodic_width_ratio=1.0, max_pulse_period_fraction=0.01)
    breaches = pulse_breaches(tight, pulse)
    assert [b.rule for b in breaches] == [rules.RULE_NAMES[r] for r in rules.PULSE_RULES]
    for position, breach in enumerate(breaches):
        assert breach.value == pytest.approx(expected[position])
        assert (breach.quantity, breach.unit) == rules.PULSE_LIMITS[position][1:]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.floats(0.0, 120.0), st.floats(0.0, 1200.0), st.floats(0.0, 120.0),
       st.floats(1.0, 12.0), st.floats(0.0, 1500.0), st.sampled_from(LIMIT_SETS))
def test_the_config_check_and_the_watchdog_name_the_same_first_breach(a, w, f, ratio, gap,
                                                                      lim):
    """``pulse_breaches`` (config-time messages) and the watchdog's refusal agree."""
    pulse = Pulse.shaped(a, w, f, ratio, gap)
    breaches = pulse_breaches(lim, pulse)
    dog = Watchdog(RecordingStimulator(), lim)
    # Per-pulse limits are checked before the rise limit: the first command shows them.
    dog.submit(0.0, [StimCommand(0, True, a, w, f, gap, ratio)])
    charge = max(a * w, pulse.recovery_amplitude_ma * pulse.recovery_pulse_width_us)
    if breaches and f > 0 and charge > 0:
        assert dog.fault is not None
        assert (dog.fault.rule, dog.fault.detail) == (breaches[0].rule, breaches[0].describe())
    else:
        assert dog.faults == 0


def _kernel_path(dog: Watchdog):
    """Submit and observe through the kernels as a compiled loop does (arrays only)."""
    rows = np.zeros((8, COMMAND_ROW_SIZE))
    out = np.zeros_like(rows)

    def submit(t: float, commands: list[StimCommand]) -> tuple[int, list[StimCommand]]:
        n = len(commands)
        for i, command in enumerate(commands):
            write_row(command, rows[i])
        log = dog.reserve_log(n + 1)  # before taking the arrays: it may replace the log
        limits, state, log = dog.kernel_arrays
        stop = watchdog_submit(limits, state, log, t, rows[:n], out[:n])
        dog.drain_log()
        return stop, [command_of_row(out[i]) for i in range(n)]

    def observe(sample: Sample, known: bool) -> None:
        limits, state, log = dog.kernel_arrays
        if watchdog_observe(limits, state, log, sample.t_s, sample.gyro_rad_s,
                            float(sample.heel_switch), known):
            dog.drain_log()

    return submit, observe


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.sampled_from(LIMIT_SETS), steps)
def test_the_kernels_decide_as_the_shell_does(limits, sequence):
    """The same generated sequences as the property test, through ``Watchdog`` and
    through the kernels on another watchdog's arrays: same deliveries, same log."""
    shell = Watchdog(RecordingStimulator(), limits)
    compiled = Watchdog(RecordingStimulator(), limits)
    submit, observe = _kernel_path(compiled)
    t = 0.0
    for step in sequence:
        if step[0] == "reset":
            shell.reset()
            compiled.reset()
            continue
        dt = step[1]
        t_call = t + dt if math.isfinite(dt) else dt
        if math.isfinite(t_call) and dt >= 0:
            t = max(t, t_call)
        if step[0] in ("observe", "loop"):
            sample = Sample(t_call, step[2], step[3])
            shell.observe(sample, step[4])
            observe(sample, step[4])
        if step[0] in ("submit", "loop"):
            burst = step[-1]
            was_latched = shell.latched
            expected = shell.submit(t_call, burst)
            stop, delivered = submit(t_call, burst)
            assert stop == (was_latched or shell.latched)
            assert delivered == expected
        assert compiled.interventions == shell.interventions
        assert (compiled.faults, compiled.clamped_commands) == (shell.faults,
                                                               shell.clamped_commands)


@numba.njit(cache=True, _nrt=False)
def _closed_loop(limits, state, log, rows, out, samples, period_s):
    """What the lead's compiled loop does with the watchdog: observe, then submit."""
    stops = 0
    for k in range(samples):
        t = k * period_s
        stops += watchdog_observe(limits, state, log, t, 0.5, 1.0, True)
        rows[0, 2] = min(20.0, 0.5 * k)  # a ramp within the rise limit
        stops += watchdog_submit(limits, state, log, t, rows, out)
    return stops


def test_a_compiled_loop_calls_the_kernels_and_the_shell_drains_its_log():
    dog = Watchdog(RecordingStimulator(), LIMITS)
    rows = np.zeros((1, COMMAND_ROW_SIZE))
    write_row(StimCommand(0, True, 0.0, 300.0, 40.0), rows[0])
    out = np.zeros_like(rows)
    dog.reserve_log(4096 * 2)
    limits, state, log = dog.kernel_arrays
    # 1 kHz for 4 s, on from the second sample (1 ms): the continuous on-time limit
    # (3 s) latches at 3.002 s, and each of the 998 submits from then on stops all.
    stops = _closed_loop(limits, state, log, rows, out, 4000, 0.001)
    assert stops == 998
    dog.drain_log()
    assert dog.fault is not None and dog.fault.rule == "max_continuous_on_ms"
    assert dog.fault.t_s == pytest.approx(3.002)
    assert dog.fault.detail == "on for 3001.0 ms > 3000 ms"
    assert dog.faults == 1 and dog.clamped_commands == 998
    # The first refusal under the latch is logged; the other 996 are only counted.
    assert [i.rule for i in dog.interventions[1:]] == ["fault_latched"]
    assert dog.interventions[1].t_s == pytest.approx(3.003)


def test_a_full_log_latches_rather_than_decide_without_a_record():
    """A compiled loop that never drains: a steep ramp is clamped at every submit until
    the log has no room for another submit's records; then the watchdog latches."""
    dog = Watchdog(RecordingStimulator(), LIMITS)
    limits, state, log = dog.kernel_arrays
    rows = np.zeros((1, COMMAND_ROW_SIZE))
    write_row(StimCommand(0, True, 40.0, 300.0, 40.0), rows[0])
    out = np.zeros_like(rows)
    stops = [watchdog_submit(limits, state, log, k * 1e-4, rows, out)
             for k in range(log.shape[0] + 1)]
    assert stops == [0] * (log.shape[0] - 1) + [1, 1]
    assert command_of_row(out[0]) == StimCommand.off(0)
    dog.drain_log()
    rules_seen = [i.rule for i in dog.interventions]
    assert rules_seen == (["max_charge_rise_uc_per_s"] * (log.shape[0] - 1)
                          + ["intervention_log_full"] * 2)
    assert dog.fault is not None and dog.fault.rule == "intervention_log_full"
    assert dog.fault.detail == "1 free rows for a submit of 1 commands, which needs one more"
    assert dog.interventions[-1].requested == "1 interventions"  # the refusal without a row
    assert dog.faults == 1 and dog.clamped_commands == log.shape[0] + 1


def _intervals(state: np.ndarray, base: int, ring: int) -> list[tuple[float, float]]:
    head, count = int(state[base + C_RING_HEAD]), int(state[base + C_RING_COUNT])
    slots = [base + CHANNEL_FIELDS + 2 * ((head + k) % ring) for k in range(count)]
    return [(state[s], state[s + 1]) for s in slots]


def test_the_duty_ring_holds_a_window_at_the_fastest_loop():
    """One interval closing at every sample of a 2 kHz loop (off then on again at each
    submit): the ring keeps them all, never merging."""
    state = new_state(1)
    base = channel_base(state, 0)
    dt = 1.0 / MAX_SAMPLE_RATE_HZ
    for k in range(round(1.2 * DUTY_WINDOW_S / dt)):
        deliver(state, base, k * dt, False, 0.0, 0.0)
        deliver(state, base, k * dt, True, 5.0, 10.0)
        duty(state, base, k * dt)
    kept = _intervals(state, base, DUTY_RING_INTERVALS)
    assert len(kept) >= DUTY_WINDOW_S / dt - 1
    assert max(end - begin for begin, end in kept) == pytest.approx(dt)


def test_a_full_ring_merges_its_oldest_intervals_and_over_counts_the_duty():
    ring = 4
    state, exact = new_state(1, ring_intervals=ring), []
    base = channel_base(state, 0)
    for k in range(6):  # on 0.1 s, off 0.9 s
        deliver(state, base, float(k), True, 5.0, 10.0)
        deliver(state, base, k + 0.1, False, 0.0, 0.0)
        exact.append((float(k), k + 0.1))
    kept = _intervals(state, base, ring)
    assert len(kept) == ring
    # The three oldest became one interval 0..2.1 s, gaps included.
    assert kept[0] == (0.0, 2.1) and kept[1:] == exact[3:]
    assert state[base + C_CLOSED_TOTAL] == pytest.approx(2.1 + 0.3)
    assert duty(state, base, 6.0) == pytest.approx(2.4 / DUTY_WINDOW_S)
    assert duty(state, base, 6.0) > sum(e - b for b, e in exact) / DUTY_WINDOW_S
