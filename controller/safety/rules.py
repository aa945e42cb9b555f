"""The watchdog's rules by number: one table from rule code to rule name.

The kernels (``controller.safety.decide``) report a rule as a small integer in their
interventions log; ``RULE_NAMES[code]`` is the name the ``Intervention`` carries: the
``SafetyLimits`` field that was exceeded, or the name of a validity rule. Each constant
is its rule's name in capitals (``tests/test_watchdog_kernels.py`` checks every one).

The rules that are ``SafetyLimits`` fields come first, so that their codes index the
kernels' ``limits`` array (``LIMIT_FIELDS``).

``PULSE_LIMITS`` lists the per-pulse limits in the order they are checked (the order of
``SafetyLimits``) with the quantity and unit of their messages: the kernel that measures
a pulse (``controller.safety.pulse_math``) and the config-time check
(``controller.safety.limits.pulse_breaches``) both go through it, so they cannot drift.
"""

from __future__ import annotations

RULE_NAMES = (
    "",
    "max_amplitude_ma",
    "max_pulse_width_us",
    "max_frequency_hz",
    "max_charge_per_phase_uc",
    "max_rms_current_density_ma_per_cm2",
    "max_shannon_k",
    "max_net_dc_ua",
    "max_interphase_gap_us",
    "max_anodic_width_ratio",
    "max_pulse_period_fraction",
    "max_continuous_on_ms",
    "max_duty_cycle",
    "max_charge_rise_uc_per_s",
    "max_total_amplitude_ma",
    "sensor_timeout_ms",
    "max_unknown_phase_ms",
    "heartbeat_timeout_ms",
    "ack_timeout_ms",
    "unknown_command_field",
    "unknown_channel",
    "non_finite_value",
    "negative_value",
    "non_finite_time",
    "time_not_increasing",
    "fault_latched",
    "emergency_stop",
    "loop_overrun",
    "monitor_error",
    "intervention_log_full",
)
(
    NO_RULE,
    MAX_AMPLITUDE_MA,
    MAX_PULSE_WIDTH_US,
    MAX_FREQUENCY_HZ,
    MAX_CHARGE_PER_PHASE_UC,
    MAX_RMS_CURRENT_DENSITY_MA_PER_CM2,
    MAX_SHANNON_K,
    MAX_NET_DC_UA,
    MAX_INTERPHASE_GAP_US,
    MAX_ANODIC_WIDTH_RATIO,
    MAX_PULSE_PERIOD_FRACTION,
    MAX_CONTINUOUS_ON_MS,
    MAX_DUTY_CYCLE,
    MAX_CHARGE_RISE_UC_PER_S,
    MAX_TOTAL_AMPLITUDE_MA,
    SENSOR_TIMEOUT_MS,
    MAX_UNKNOWN_PHASE_MS,
    HEARTBEAT_TIMEOUT_MS,
    ACK_TIMEOUT_MS,
    UNKNOWN_COMMAND_FIELD,
    UNKNOWN_CHANNEL,
    NON_FINITE_VALUE,
    NEGATIVE_VALUE,
    NON_FINITE_TIME,
    TIME_NOT_INCREASING,
    FAULT_LATCHED,
    EMERGENCY_STOP,
    LOOP_OVERRUN,
    MONITOR_ERROR,
    INTERVENTION_LOG_FULL,
) = range(len(RULE_NAMES))

#: The ``SafetyLimits`` fields as the kernels' ``limits`` array holds them: the rules
#: that are limits have the first codes, so the limit of rule ``r`` is ``limits[r]``;
#: index 0 (``NO_RULE``) holds the electrode area, the one field that is not a limit.
#: (A test checks that these are exactly the fields of ``SafetyLimits``.)
LIMIT_FIELDS = ("electrode_area_cm2", *RULE_NAMES[1:ACK_TIMEOUT_MS + 1])
ELECTRODE_AREA_CM2 = NO_RULE

#: The per-pulse limits in checking order: rule, quantity and unit of its message.
PULSE_LIMITS = (
    (MAX_AMPLITUDE_MA, "amplitude", "mA"),
    # The leading (stimulating) phase: an asymmetric pulse's long, low recovery phase
    # is bounded by charge per phase, charge density and balance instead.
    (MAX_PULSE_WIDTH_US, "pulse width", "us"),
    (MAX_FREQUENCY_HZ, "frequency", "Hz"),
    (MAX_CHARGE_PER_PHASE_UC, "charge per phase", "uC"),
    (MAX_RMS_CURRENT_DENSITY_MA_PER_CM2, "r.m.s. current density", "mA/cm2"),
    (MAX_SHANNON_K, "Shannon k", ""),
    (MAX_NET_DC_UA, "net d.c.", "uA"),
    # The shape: the pause between the phases, the recovery phase's length over the
    # leading phase's, and the whole pulse (leading phase + gap + recovery phase) over
    # the period at its frequency, which it must end well within.
    (MAX_INTERPHASE_GAP_US, "interphase gap", "us"),
    (MAX_ANODIC_WIDTH_RATIO, "anodic width ratio", ""),
    (MAX_PULSE_PERIOD_FRACTION, "pulse length / period", ""),
)
#: Positions in ``PULSE_LIMITS``: the quantity a pulse kernel measures at each one.
(
    Q_AMPLITUDE,
    Q_PULSE_WIDTH,
    Q_FREQUENCY,
    Q_CHARGE_PER_PHASE,
    Q_RMS_CURRENT_DENSITY,
    Q_SHANNON_K,
    Q_NET_DC,
    Q_INTERPHASE_GAP,
    Q_ANODIC_WIDTH_RATIO,
    Q_PULSE_PERIOD_FRACTION,
) = range(len(PULSE_LIMITS))
#: The rule code of each position (a tuple the kernels index).
PULSE_RULES = tuple(rule for rule, _, _ in PULSE_LIMITS)


def rule_code(name: str) -> int:
    """The code of the rule called ``name``."""
    return RULE_NAMES.index(name)
