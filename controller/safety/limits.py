"""The safety limits: absolute maxima compiled in, the configurable ``SafetyLimits``, and
the pulse arithmetic every stimulation setting and command is checked with.

A config may lower every limit, never raise it: each field of ``SafetyLimits`` is
bounded above by the compiled ``ABSOLUTE_*`` constant (a higher value is a validation
error naming the field). The sources of each number are in ``docs/safety.md``; in short:

- amplitude 100 mA, pulse width 1000 us: the top of clinical surface stimulators
  (DESIGN.md: 10-100 mA; 100-350 us typical, some devices up to 1000 us).
- frequency 100 Hz: twice the top of the clinical 20-50 Hz range.
- charge per phase 35 uC: 100 mA x 350 us, the top of the clinical ranges together.
- r.m.s. current density 2 mA/cm2: IEC 60601-2-10 (2012) asks the instructions for use
  to flag electrodes above 2 mA/cm2; here it is a hard limit.
- Shannon's k 1.85: Shannon (1992), log(Q/A) = k - log(Q) with tissue damage from
  k = 1.85 (cortical electrodes, McCreery's data); far stricter than needed on skin,
  kept as a conservative bound.
- net d.c. 10 uA: IEC 60601-1 allows 10 uA d.c. patient auxiliary current (normal
  condition, types B/BF/CF); a train's net d.c. is such a current.
- interphase gap 1000 us, anodic width ratio 10, a whole pulse at most half its period,
  total amplitude 200 mA across channels: project choices (the gap and ratio at the
  ranges of the stimulation settings and the board's reference firmware; Springer
  2015 found a 200 us gap helpful on the dorsiflexors), argued in ``docs/safety.md``.
- continuous on-time 5 s: openEMSstim bounds every command to 5 s (DESIGN.md timeouts
  2-5 s).
- duty cycle 90 % over 10 s, charge rise 700 uC/s (the top charge per phase in 50 ms),
  fault timeouts 30 ms: project choices, argued in ``docs/safety.md``.

Charge per phase is amplitude x pulse width (mA x us = nC). An asymmetric pulse (a
command whose ``anodic_width_ratio`` is above 1) is checked
phase by phase; without those fields a command is the symmetric biphasic pulse that
``controller.ports.StimCommand`` documents, whose net charge is zero.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from controller.kernels import in_python
from controller.ports import COMMAND_FIELDS, StimCommand
from controller.safety import pulse_math
from controller.safety.rules import LIMIT_FIELDS, PULSE_LIMITS, RULE_NAMES
from controller.safety.sensors import DEFAULT_SENSORS, check_sensors
from controller.validation import ConfigModel

ABSOLUTE_MAX_AMPLITUDE_MA = 100.0
ABSOLUTE_MAX_PULSE_WIDTH_US = 1000.0
ABSOLUTE_MAX_FREQUENCY_HZ = 100.0
ABSOLUTE_MAX_CHARGE_PER_PHASE_UC = 35.0
ABSOLUTE_MAX_RMS_CURRENT_DENSITY_MA_PER_CM2 = 2.0
ABSOLUTE_MAX_SHANNON_K = 1.85
ABSOLUTE_MAX_NET_DC_UA = 10.0
ABSOLUTE_MAX_INTERPHASE_GAP_US = 1000.0
ABSOLUTE_MAX_ANODIC_WIDTH_RATIO = 10.0
ABSOLUTE_MAX_PULSE_PERIOD_FRACTION = 0.5
ABSOLUTE_MAX_TOTAL_AMPLITUDE_MA = 200.0
ABSOLUTE_MAX_CONTINUOUS_ON_MS = 5000.0
ABSOLUTE_MAX_DUTY_CYCLE = 0.9
ABSOLUTE_MAX_CHARGE_RISE_UC_PER_S = 700.0
ABSOLUTE_MAX_HEARTBEAT_TIMEOUT_MS = 30.0
ABSOLUTE_MAX_SENSOR_TIMEOUT_MS = 30.0
ABSOLUTE_MAX_ACK_TIMEOUT_MS = 30.0
ABSOLUTE_MAX_UNKNOWN_PHASE_MS = 1000.0
#: The largest electrode area the density limits credit, whatever the config claims.
ABSOLUTE_MAX_ELECTRODE_AREA_CM2 = 100.0

#: The sliding window of the duty-cycle limit.
DUTY_WINDOW_S = 10.0
#: A charge rise is measured over the time since the channel's held charge last changed,
#: at most this long: a step after a long pause counts as a step, not a slow ramp.
RISE_WINDOW_S = 0.010
#: How often the monitor thread checks heartbeat, sensor and acknowledgement ages.
MONITOR_PERIOD_S = 0.002
#: The fastest loop a trial may run (``loop.sample_rate_hz``); the duty-cycle history
#: is sized for it (``controller.safety.layout``).
MAX_SAMPLE_RATE_HZ = 2000.0

#: The fields of a command the watchdog understands (every field of a ``StimCommand``);
#: any other field is refused.
KNOWN_COMMAND_FIELDS = frozenset(COMMAND_FIELDS)


class SafetyLimits(ConfigModel):
    """Limits of one installation; each may be set at or below its absolute maximum."""

    max_amplitude_ma: float = Field(
        60.0, gt=0.0, le=ABSOLUTE_MAX_AMPLITUDE_MA,
        description="Peak current of either phase of a pulse; a command above it is "
        "refused and every output latched off.",
    )
    max_pulse_width_us: float = Field(
        500.0, gt=0.0, le=ABSOLUTE_MAX_PULSE_WIDTH_US,
        description="Width of the leading (stimulating) phase of a pulse; the long, low "
        "recovery phase of an asymmetric pulse is bounded by its charge instead.",
    )
    max_frequency_hz: float = Field(
        60.0, gt=0.0, le=ABSOLUTE_MAX_FREQUENCY_HZ,
        description="Pulse rate of a channel; a command above it is refused and every "
        "output latched off.",
    )
    max_charge_per_phase_uc: float = Field(
        30.0, gt=0.0, le=ABSOLUTE_MAX_CHARGE_PER_PHASE_UC,
        description="Amplitude x pulse width of either phase.",
    )
    electrode_area_cm2: float = Field(
        8.0, ge=1.0, le=ABSOLUTE_MAX_ELECTRODE_AREA_CM2,
        description="Area of the smallest stimulating electrode (32 mm round = 8.0 cm2), "
        "which the two density limits divide by: set it to the electrodes in use; smaller "
        "electrodes tolerate less current.",
    )
    max_rms_current_density_ma_per_cm2: float = Field(
        2.0, gt=0.0, le=ABSOLUTE_MAX_RMS_CURRENT_DENSITY_MA_PER_CM2,
        description="R.m.s. current of a pulse train over the electrode area.",
    )
    max_shannon_k: float = Field(
        1.85, gt=0.0, le=ABSOLUTE_MAX_SHANNON_K,
        description="Shannon's k = log10(charge density per phase) + log10(charge per phase).",
    )
    max_net_dc_ua: float = Field(
        10.0, ge=0.0, le=ABSOLUTE_MAX_NET_DC_UA,
        description="Net d.c. of a train: charge imbalance per pulse x frequency.",
    )
    max_interphase_gap_us: float = Field(
        500.0, ge=0.0, le=ABSOLUTE_MAX_INTERPHASE_GAP_US,
        description="Pause between the leading and the recovery phase of a pulse, during "
        "which the leading phase's charge stays unreversed (0: no gap allowed).",
    )
    max_anodic_width_ratio: float = Field(
        10.0, ge=1.0, le=ABSOLUTE_MAX_ANODIC_WIDTH_RATIO,
        description="Width of the recovery (anodic) phase over the leading phase's "
        "(1: symmetric pulses only).",
    )
    max_pulse_period_fraction: float = Field(
        0.5, gt=0.0, le=ABSOLUTE_MAX_PULSE_PERIOD_FRACTION,
        description="Fraction of its period a whole pulse may last: (pulse width x (1 + "
        "anodic width ratio) + interphase gap) x frequency. A pulse must end well before "
        "the next one starts.",
    )
    max_total_amplitude_ma: float = Field(
        120.0, gt=0.0, le=ABSOLUTE_MAX_TOTAL_AMPLITUDE_MA,
        description="Sum of the peak currents of every channel stimulating at the same "
        "time (their pulses may coincide); a command that takes the sum above it is "
        "refused and every output latched off.",
    )
    max_continuous_on_ms: float = Field(
        3000.0, gt=0.0, le=ABSOLUTE_MAX_CONTINUOUS_ON_MS,
        description="Longest uninterrupted stimulation of a channel.",
    )
    max_duty_cycle: float = Field(
        0.8, gt=0.0, le=ABSOLUTE_MAX_DUTY_CYCLE,
        description=f"Fraction of the last {DUTY_WINDOW_S:g} s a channel may stimulate.",
    )
    max_charge_rise_uc_per_s: float = Field(
        350.0, gt=0.0, le=ABSOLUTE_MAX_CHARGE_RISE_UC_PER_S,
        description="Fastest increase of the charge per phase, whatever the ramp acts on "
        "(amplitude or pulse width); faster requests are slowed to this.",
    )
    heartbeat_timeout_ms: float = Field(
        20.0, gt=0.0, le=ABSOLUTE_MAX_HEARTBEAT_TIMEOUT_MS,
        description="Wall time without a command from the loop before outputs go off.",
    )
    sensor_timeout_ms: float = Field(
        20.0, gt=0.0, le=ABSOLUTE_MAX_SENSOR_TIMEOUT_MS,
        description="Time without a valid sensor sample before outputs go off.",
    )
    ack_timeout_ms: float = Field(
        20.0, gt=0.0, le=ABSOLUTE_MAX_ACK_TIMEOUT_MS,
        description="Wall time without an acknowledgement from the stimulator before "
        "outputs go off (stimulators that report acknowledgements, such as the board).",
    )
    max_unknown_phase_ms: float = Field(
        250.0, gt=0.0, le=ABSOLUTE_MAX_UNKNOWN_PHASE_MS,
        description="Longest stimulation while the detector reports an unknown phase.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_rise_limit(cls, data: Any) -> Any:
        """Name the field that replaced ``max_amplitude_rise_ma_per_s``: an amplitude
        limit missed the step of a pulse-width ramp (its amplitude is full at onset)."""
        if isinstance(data, dict) and "max_amplitude_rise_ma_per_s" in data:
            raise ValueError(
                "max_amplitude_rise_ma_per_s was replaced by max_charge_rise_uc_per_s "
                "(uC per phase per second, whatever the ramp acts on): e.g. 1000 mA/s at "
                "300 us is 300 uC/s"
            )
        return data

    def kernel_array(self, sensors: int = DEFAULT_SENSORS) -> np.ndarray:
        """These limits as the watchdog's kernels read them: one float64 per field, in
        the order of ``controller.safety.rules.LIMIT_FIELDS``, then ``sensors`` (slot
        ``sensors.SENSORS``): the sensors a valid sample must have valid, those the
        detector reads (``check_sensors``)."""
        numbers = [float(getattr(self, name)) for name in LIMIT_FIELDS]
        return np.array([*numbers, float(check_sensors(sensors))], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Pulse:
    """The biphasic pulse train a command asks for, phase by phase, in the config's units."""

    amplitude_ma: float
    pulse_width_us: float
    frequency_hz: float
    recovery_amplitude_ma: float
    recovery_pulse_width_us: float
    #: The pause between the two phases (us).
    interphase_gap_us: float
    #: The anodic width ratio the recovery phase was made with (``shaped``), which
    #: ``max_anodic_width_ratio`` bounds; a pulse built phase by phase (an unbalanced
    #: one, as the net d.c. tests build) states its own.
    anodic_width_ratio: float

    @staticmethod
    def symmetric(amplitude_ma: float, pulse_width_us: float, frequency_hz: float) -> Pulse:
        """A charge-balanced pulse whose recovery phase mirrors the leading phase, no gap."""
        return Pulse(amplitude_ma, pulse_width_us, frequency_hz, amplitude_ma, pulse_width_us,
                     0.0, 1.0)

    @staticmethod
    def shaped(
        amplitude_ma: float, pulse_width_us: float, frequency_hz: float,
        anodic_width_ratio: float, interphase_gap_us: float = 0.0,
    ) -> Pulse:
        """The pulse of a leading phase, an anodic width ratio r and an interphase gap:
        the recovery phase is r times longer at 1/r of the current, so both carry the
        same charge. A ratio that is not a finite number of at least 1 describes no valid
        pulse: its recovery phase is NaN, which the watchdog refuses as a non-finite
        value (so is a gap that is not a number)."""
        ratio, gap = anodic_width_ratio, interphase_gap_us
        if not isinstance(ratio, (int, float)):
            ratio = math.nan
        if not isinstance(gap, (int, float)):
            gap = math.nan
        recovery_ma, recovery_us = in_python(pulse_math.recovery_phase)(
            float(amplitude_ma), float(pulse_width_us), float(ratio)
        )
        return Pulse(amplitude_ma, pulse_width_us, frequency_hz, recovery_ma, recovery_us,
                     float(gap), float(ratio))

    @property
    def numbers(self) -> tuple[float, float, float, float, float, float, float]:
        """(a1, w1, f, a2, w2, g, r) as floats, the arguments of the pulse kernels."""
        return (float(self.amplitude_ma), float(self.pulse_width_us), float(self.frequency_hz),
                float(self.recovery_amplitude_ma), float(self.recovery_pulse_width_us),
                float(self.interphase_gap_us), float(self.anodic_width_ratio))

    @property
    def _phases(self) -> tuple[float, float, float, float, float]:
        """(a1, w1, f, a2, w2): the numbers of the charge and current kernels."""
        return self.numbers[:5]

    @property
    def charge_per_phase_uc(self) -> float:
        """The larger charge of the two phases."""
        a1, w1, _, a2, w2 = self._phases
        return float(in_python(pulse_math.charge_per_phase_uc)(a1, w1, a2, w2))

    @property
    def net_dc_ua(self) -> float:
        """Magnitude of the train's d.c. component: charge imbalance per pulse x rate."""
        return float(in_python(pulse_math.net_dc_ua)(*self._phases))

    @property
    def rms_current_ma(self) -> float:
        """R.m.s. current of the train (both phases), as IEC 60601-2-10 densities use."""
        return float(in_python(pulse_math.rms_current_ma)(*self._phases))

    def shannon_k(self, area_cm2: float) -> float:
        """Shannon's k of the larger phase: log10(Q / A) + log10(Q), Q in uC, A in cm2."""
        return float(in_python(pulse_math.shannon_k)(self.charge_per_phase_uc, float(area_cm2)))


def pulse_of(command: StimCommand) -> Pulse:
    """The pulse a command describes (``Pulse.shaped`` by its anodic width ratio and
    interphase gap)."""
    return Pulse.shaped(
        command.amplitude_ma, command.pulse_width_us, command.frequency_hz,
        command.anodic_width_ratio, command.interphase_gap_us,
    )


_UNKNOWN_FIELDS_BY_TYPE: dict[type, tuple[str, ...]] = {}


def unknown_fields(command: object) -> tuple[str, ...]:
    """Fields of ``command`` the watchdog does not understand (its type's name, if it is
    not a dataclass instance). Cached per type: this runs for every command."""
    kind = type(command)
    cached = _UNKNOWN_FIELDS_BY_TYPE.get(kind)
    if cached is None:
        if dataclasses.is_dataclass(kind) and not isinstance(command, type):
            names = (f.name for f in dataclasses.fields(kind))
            cached = tuple(sorted(n for n in names if n not in KNOWN_COMMAND_FIELDS))
        else:
            cached = (kind.__name__,)
        _UNKNOWN_FIELDS_BY_TYPE[kind] = cached
    return cached


@dataclass(frozen=True, slots=True)
class Breach:
    """One limit a pulse exceeds: the limit's field name, the value and the limit."""

    rule: str
    quantity: str
    value: float
    limit: float
    unit: str

    def describe(self) -> str:
        """E.g. ``charge per phase 36 uC > 30 uC``."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.quantity} {self.value:.4g}{unit} > {self.limit:.4g}{unit}"


def pulse_breaches(limits: SafetyLimits, pulse: Pulse) -> list[Breach]:
    """Every per-pulse limit ``pulse`` exceeds, in the order of ``SafetyLimits``.

    The same kernel as the watchdog's (``pulse_math.first_pulse_breach``, run as Python:
    ``kernels.in_python``, bit for bit the compiled arithmetic), asked again
    after each breach, so the config-time messages and the watchdog cannot disagree.
    The values must be finite and non-negative (the watchdog checks that first).
    """
    numbers = limits.kernel_array()
    breaches: list[Breach] = []
    which = -1
    while True:
        which, value = in_python(pulse_math.first_pulse_breach)(numbers, *pulse.numbers, which + 1)
        if which < 0:
            return breaches
        rule, quantity, unit = PULSE_LIMITS[which]
        name = RULE_NAMES[rule]
        breaches.append(Breach(name, quantity, float(value), getattr(limits, name), unit))
