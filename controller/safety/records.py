"""From the kernels' log records to ``Intervention``s: the words of every rule.

A record (``controller.safety.layout``, ``L_*`` columns) holds numbers only: time, kind,
rule code, channel, what was requested (a command row, or a ``SOURCE_*`` code) and the
values its detail states. The texts are made here, once, for the shell and for a
compiled loop's log alike; they are those the watchdog has always written. What only
the shell knows of its own call (the text of a command that is not a command row, the
time as the caller passed it) comes in as ``CallTexts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.ports import (
    ROW_AMPLITUDE_MA,
    ROW_ANODIC_WIDTH_RATIO,
    ROW_FREQUENCY_HZ,
    ROW_INTERPHASE_GAP_US,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
)
from controller.safety.layout import (
    KIND_CLAMP,
    KIND_LATCH,
    L_CHANNEL,
    L_DELIVERED,
    L_FAULT_RULE,
    L_KIND,
    L_OTHER,
    L_REQUESTED,
    L_RULE,
    L_SOURCE,
    L_T,
    L_VALUE,
    LOG_COLUMNS,
    SOURCE_HELD_ON,
    SOURCE_LOG,
    SOURCE_NO_SENSOR,
    SOURCE_TIME,
)
from controller.safety.limits import Breach, Pulse, SafetyLimits
from controller.safety.rules import (
    FAULT_LATCHED,
    INTERVENTION_LOG_FULL,
    MAX_CHARGE_RISE_UC_PER_S,
    MAX_CONTINUOUS_ON_MS,
    MAX_DUTY_CYCLE,
    MAX_TOTAL_AMPLITUDE_MA,
    MAX_UNKNOWN_PHASE_MS,
    PULSE_LIMITS,
    RULE_NAMES,
    SENSOR_TIMEOUT_MS,
    TIME_NOT_INCREASING,
    UNKNOWN_CHANNEL,
)

_PULSE_LIMIT = {rule: (quantity, unit) for rule, quantity, unit in PULSE_LIMITS}
_SOURCE_TEXT = {SOURCE_HELD_ON: "held on", SOURCE_NO_SENSOR: "no valid sensor sample"}


@dataclass(frozen=True, slots=True)
class Intervention:
    """A command the watchdog did not pass unchanged, or a fault, and why.

    ``t_s`` is trial time (for a fault found by the wall-clock monitor, the last trial
    time plus the wall time since). ``rule`` is the ``SafetyLimits`` field that was
    exceeded, or the name of a validity rule; ``channel`` is -1 when the rule concerns
    all channels; ``detail`` states the value against its limit.
    """

    t_s: float
    rule: str
    channel: int
    requested: str
    delivered: str
    detail: str = ""


@dataclass
class CallTexts:
    """What the shell knows of its own submit that numbers cannot carry: the text of
    rows that stand for something that is not a command row (by row), the detail of
    the rule the shell found, and the time as the caller passed it."""

    requested: dict[int, str] = field(default_factory=dict)
    invalid_row: int = -1
    invalid_detail: str = ""
    time: str = ""


def describe_row(row: np.ndarray) -> str:
    """Short text of a command row for the intervention log."""
    if row[ROW_ON] == 0.0:
        return "off"
    amplitude, width = float(row[ROW_AMPLITUDE_MA]), float(row[ROW_PULSE_WIDTH_US])
    frequency = float(row[ROW_FREQUENCY_HZ])
    gap = float(row[ROW_INTERPHASE_GAP_US])
    pulse = Pulse.shaped(amplitude, width, frequency, float(row[ROW_ANODIC_WIDTH_RATIO]), gap)
    text = f"on {amplitude:.4g} mA {width:.4g} us {frequency:.4g} Hz"
    if gap != 0.0:
        text += f" gap {gap:.4g} us"
    if (pulse.recovery_amplitude_ma, pulse.recovery_pulse_width_us) != (amplitude, width):
        text += (
            f" recovery {pulse.recovery_amplitude_ma:.4g} mA "
            f"{pulse.recovery_pulse_width_us:.4g} us"
        )
    return text


def intervention_of(
    record: np.ndarray, limits: SafetyLimits, channels: int, texts: CallTexts | None = None
) -> Intervention:
    """The ``Intervention`` a log record stands for."""
    assert record.shape == (LOG_COLUMNS,)
    kind, rule = record[L_KIND], int(record[L_RULE])
    if kind == KIND_LATCH:
        delivered = "all off"
    elif kind == KIND_CLAMP:
        delivered = describe_row(record[L_DELIVERED:L_DELIVERED + 7])
    else:
        delivered = "off"
    return Intervention(
        float(record[L_T]), RULE_NAMES[rule], int(record[L_CHANNEL]),
        _requested(record, texts), delivered, _detail(record, limits, channels, texts),
    )


def _requested(record: np.ndarray, texts: CallTexts | None) -> str:
    source = float(record[L_SOURCE])
    if source >= 0.0:
        if texts is not None and int(source) in texts.requested:
            return texts.requested[int(source)]
        return describe_row(record[L_REQUESTED:L_REQUESTED + 7])
    if source == SOURCE_TIME:
        return f"t = {texts.time if texts and texts.time else repr(float(record[L_VALUE]))}"
    if source == SOURCE_LOG:
        return "interventions log"
    return _SOURCE_TEXT[source]


def _detail(
    record: np.ndarray, limits: SafetyLimits, channels: int, texts: CallTexts | None
) -> str:
    rule = int(record[L_RULE])
    value, other = float(record[L_VALUE]), float(record[L_OTHER])
    name = RULE_NAMES[rule]
    if (texts is not None and record[L_KIND] == KIND_LATCH
            and record[L_SOURCE] == texts.invalid_row):
        return texts.invalid_detail  # the rule the shell found in this row
    if rule in _PULSE_LIMIT:
        quantity, unit = _PULSE_LIMIT[rule]
        return Breach(name, quantity, value, getattr(limits, name), unit).describe()
    if rule == MAX_CHARGE_RISE_UC_PER_S:
        return (
            f"charge per phase rise from {value:.4g} to {other:.4g} uC at t = "
            f"{float(record[L_T]):.6g} s; at most {limits.max_charge_rise_uc_per_s:g} uC/s"
        )
    if rule == MAX_CONTINUOUS_ON_MS:
        return f"on for {value:.1f} ms > {limits.max_continuous_on_ms:g} ms"
    if rule == MAX_DUTY_CYCLE:
        return f"duty cycle {value:.3f} > {limits.max_duty_cycle:g}"
    if rule == MAX_TOTAL_AMPLITUDE_MA:
        return (f"{value:.4g} mA on all channels together > "
                f"{limits.max_total_amplitude_ma:g} mA")
    if rule == MAX_UNKNOWN_PHASE_MS:
        return (f"phase unknown for {value:.1f} ms > {limits.max_unknown_phase_ms:g} ms "
                "while stimulating")
    if rule == SENSOR_TIMEOUT_MS:
        return f"{value:.1f} ms > {limits.sensor_timeout_ms:g} ms"
    if rule == TIME_NOT_INCREASING:
        now = texts.time if texts and texts.time else repr(value)
        return f"{now} s <= previous {other!r} s"
    if rule == UNKNOWN_CHANNEL:
        shown = int(value) if value.is_integer() else value
        return f"channel {shown!r} not in 0..{channels - 1}"
    if rule == FAULT_LATCHED:
        return f"latched by {RULE_NAMES[int(record[L_FAULT_RULE])]}"
    if rule == INTERVENTION_LOG_FULL:
        return f"{value:g} free rows for a submit of {other:g} commands, which needs one more"
    return ""
