"""Amplitude to intensity for openEMSstim: the firmware's mapping and the unit's calibration.

The firmware (``EMSChannel::setIntensity``, identical in both versions) turns the
protocol's intensity I (1-100) into a potentiometer wiper with an offset, not in
proportion from zero: the wiper is ``255 - v`` with ``v = 55 + trunc(160 * (I - 1) *
0.01 + 0.5)`` in single-precision arithmetic, so I1 sets wiper 200 and I100 wiper 42
(and I0 wiper 201; I above 100 goes past the calibrated range up to wiper 0, full
output). The wiper at 255 is no output at all, which only switching a channel off
does. So I1 already gives roughly a fifth of what I100 gives, and a driver that assumes
proportion starts every ramp with a jump.

The unit's output at a wiper depends on the TENS/EMS unit and its knob, so the user
measures it once, at I1 and at I100 (``docs/hardware.md``), and the driver takes the
output as linear in the wiper between those two points (the potentiometer is linear;
the unit behind it is assumed linear in its input over that range). An amplitude maps to
the highest intensity whose output does not exceed it, so the board never gives more
than was commanded; an amplitude below the output at I1 cannot be produced and is
delivered as off, one above the output at I100 is refused.

``IntensitySteps`` is that mapping as the watchdog applies it to every command
(``controller.ports.OutputSteps``): the watchdog checks, records and counts for its
rise rule the calibrated output the unit gives, not the amplitude asked for. So the
first pulse of every train is at least the output at I1 (12.9 mA x 300 us = 3.87 uC on
the shipped example unit), a step from off that the rise rule must allow
(``controller.safety.watchdog.onset_problems``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from controller.ports import (
    ROW_AMPLITUDE_MA,
    ROW_FREQUENCY_HZ,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
)

#: The protocol's intensities.
LOWEST = 1
HIGHEST = 100
#: ``EMSChannel``'s default calibration (wiper counts from the no-output end).
_MIN_V = 55
_MAX_V = 215
_WIPER_TOP = 255
#: How far a command's pulse width and rate may be from the unit's settings: the unit
#: delivers its own (``OpenEmsSettings.pulse_problems`` refuses a trial beyond them).
WIDTH_TOLERANCE_US = 0.5
RATE_TOLERANCE_HZ = 0.05


def wiper(intensity: int) -> int:
    """The wiper position the firmware sets for the protocol's ``intensity``."""
    scaled = np.float32(_MAX_V - _MIN_V) * np.float32(intensity - 1) * np.float32(0.01)
    v = int(np.float32(scaled + np.float32(0.5))) + _MIN_V  # C's int(): towards zero
    return _WIPER_TOP - min(max(v, 0), _WIPER_TOP)


#: Wiper of every intensity, index 0 unused (intensity 0 is "off" to the driver).
_WIPERS = [_WIPER_TOP] + [wiper(i) for i in range(LOWEST, HIGHEST + 1)]


@dataclass(frozen=True, slots=True)
class Calibration:
    """The unit's measured output (mA) at intensity 1 and at intensity 100."""

    lowest_ma: float
    highest_ma: float

    def __post_init__(self) -> None:
        if not (0.0 < self.lowest_ma < self.highest_ma and math.isfinite(self.highest_ma)):
            raise ValueError(
                f"the output at intensity 1 ({self.lowest_ma:g} mA) must be positive and "
                f"below the output at intensity 100 ({self.highest_ma:g} mA)"
            )

    def output_ma(self, intensity: int) -> float:
        """The unit's output at ``intensity`` (1-100), 0 for intensity 0 (off)."""
        if intensity == 0:
            return 0.0
        top, bottom = _WIPERS[HIGHEST], _WIPERS[LOWEST]
        fraction = (bottom - _WIPERS[intensity]) / (bottom - top)
        return self.lowest_ma + fraction * (self.highest_ma - self.lowest_ma)

    def intensity(self, amplitude_ma: float) -> int:
        """The highest intensity whose output does not exceed ``amplitude_ma``; 0 (off)
        below the output at intensity 1. Raises ``ValueError`` above the output at
        intensity 100."""
        tolerance = 1e-9 * self.highest_ma
        if amplitude_ma > self.highest_ma + tolerance:
            raise ValueError(
                f"{amplitude_ma:g} mA is above what the unit gives at intensity 100 "
                f"({self.highest_ma:g} mA)"
            )
        if amplitude_ma < self.lowest_ma - tolerance:
            return 0
        low, high = LOWEST, HIGHEST  # output(low) <= amplitude; find the last such
        while low < high:
            mid = (low + high + 1) // 2
            if self.output_ma(mid) <= amplitude_ma + tolerance:
                low = mid
            else:
                high = mid - 1
        return low


@dataclass(frozen=True, slots=True)
class IntensitySteps:
    """What an openEMSstim and its unit deliver for a command row
    (``controller.ports.OutputSteps``): the calibrated output of the intensity the
    driver sends (the highest not above the amplitude; off below the output at
    intensity 1), at the unit's own pulse width and rate."""

    calibration: Calibration
    pulse_width_us: float
    frequency_hz: float

    def quantise_row(self, row: NDArray[np.float64]) -> None:
        """Rewrite ``row`` to what the unit delivers for it: the amplitude to the output
        of its intensity (0 and ``on`` 0 below the lowest), a pulse width or rate within
        the driver's tolerance of the unit's to the unit's. What the driver refuses (an
        amplitude above the output at intensity 100, a width or rate the unit is not
        set to, a value that is not a finite non-negative number) is left as it is."""
        amplitude = float(row[ROW_AMPLITUDE_MA])
        cal = self.calibration
        if 0.0 <= amplitude <= cal.highest_ma:
            delivered = cal.output_ma(cal.intensity(amplitude))
            row[ROW_AMPLITUDE_MA] = delivered
            if delivered == 0.0:
                row[ROW_ON] = 0.0
        for column, unit, tolerance in ((ROW_PULSE_WIDTH_US, self.pulse_width_us,
                                         WIDTH_TOLERANCE_US),
                                        (ROW_FREQUENCY_HZ, self.frequency_hz,
                                         RATE_TOLERANCE_HZ)):
            if abs(float(row[column]) - unit) <= tolerance:
                row[column] = unit

    def lowest_amplitude_ma(self, row: NDArray[np.float64]) -> float:
        """The unit's output at intensity 1: the first pulse of every train."""
        return self.calibration.lowest_ma
