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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The protocol's intensities.
LOWEST = 1
HIGHEST = 100
#: ``EMSChannel``'s default calibration (wiper counts from the no-output end).
_MIN_V = 55
_MAX_V = 215
_WIPER_TOP = 255


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
