"""The arithmetic of a pulse train and its per-pulse limits, as kernels.

One implementation for every caller: the watchdog's per-sample kernel
(``controller.safety.decide``), the ``Pulse`` properties and ``pulse_breaches`` of
``controller.safety.limits`` (the config-time check and its messages). A pulse is seven
numbers: leading amplitude ``a1`` (mA) and width ``w1`` (us), frequency ``f`` (Hz), the
recovery phase's ``a2``, ``w2``, the interphase gap ``g`` (us) and the anodic width
ratio ``r`` the recovery phase was made with (``recovery_phase``; the limit on the
ratio reads ``r`` itself, not ``w2 / w1``, whose rounding could refuse a ratio exactly at
its limit). Charge per phase is amplitude x width (mA x us = nC); the pulse lasts
``w1 + g + w2`` us from the start of its leading phase to the end of its recovery
phase. ``first_max``/``first_min`` are Python's ``max``/``min`` of two numbers, NaN
included, so that the kernels decide exactly as the Python they replaced.
"""

from __future__ import annotations

import math

from controller.kernels import Floats, kernel
from controller.safety.rules import (
    ELECTRODE_AREA_CM2,
    PULSE_RULES,
    Q_AMPLITUDE,
    Q_ANODIC_WIDTH_RATIO,
    Q_CHARGE_PER_PHASE,
    Q_FREQUENCY,
    Q_INTERPHASE_GAP,
    Q_NET_DC,
    Q_PULSE_PERIOD_FRACTION,
    Q_PULSE_WIDTH,
    Q_RMS_CURRENT_DENSITY,
    Q_SHANNON_K,
)

_PULSE_QUANTITIES = len(PULSE_RULES)


@kernel
def first_max(a: float, b: float) -> float:
    """Python's ``max(a, b)``: ``a`` unless ``b`` is greater."""
    return b if b > a else a


@kernel
def first_min(a: float, b: float) -> float:
    """Python's ``min(a, b)``: ``a`` unless ``b`` is smaller."""
    return b if b < a else a


@kernel
def recovery_phase(amplitude_ma: float, pulse_width_us: float, ratio: float) -> tuple[float, float]:
    """The recovery phase of a leading phase and an anodic width ratio r: r times longer
    at 1/r of the current (same charge). A ratio that is not a finite number of at least
    1 describes no valid pulse: NaN, which the watchdog refuses as non-finite."""
    if math.isfinite(ratio) and ratio >= 1.0:
        return amplitude_ma / ratio, pulse_width_us * ratio
    return math.nan, math.nan


@kernel
def charge_per_phase_uc(a1: float, w1: float, a2: float, w2: float) -> float:
    """The larger charge of the two phases."""
    return first_max(a1 * w1, a2 * w2) / 1000.0


@kernel
def net_dc_ua(a1: float, w1: float, f: float, a2: float, w2: float) -> float:
    """Magnitude of the train's d.c. component: charge imbalance per pulse x rate."""
    return abs(a1 * w1 - a2 * w2) / 1000.0 * f


@kernel
def rms_current_ma(a1: float, w1: float, f: float, a2: float, w2: float) -> float:
    """R.m.s. current of the train (both phases), as IEC 60601-2-10 densities use."""
    return math.sqrt((a1 * a1 * w1 + a2 * a2 * w2) * 1e-6 * f)


@kernel
def shannon_k(charge_uc: float, area_cm2: float) -> float:
    """Shannon's k of a phase of ``charge_uc``: log10(Q / A) + log10(Q)."""
    if charge_uc > 0:
        return 2.0 * math.log10(charge_uc) - math.log10(area_cm2)
    return -math.inf


@kernel
def period_fraction(w1: float, f: float, w2: float, g: float) -> float:
    """The fraction of the period at ``f`` that the whole pulse lasts: leading phase,
    gap and recovery phase, ``(w1 + g + w2)`` us x ``f``. At 1 or more a pulse would
    still run when the next one starts."""
    return (w1 + g + w2) * 1e-6 * f


@kernel
def pulse_quantity(
    which: int, area_cm2: float, a1: float, w1: float, f: float, a2: float, w2: float,
    g: float, r: float,
) -> float:
    """The quantity at position ``which`` of ``PULSE_LIMITS``."""
    if which == Q_AMPLITUDE:
        return first_max(a1, a2)
    if which == Q_PULSE_WIDTH:
        return w1
    if which == Q_FREQUENCY:
        return f
    if which == Q_CHARGE_PER_PHASE:
        return charge_per_phase_uc(a1, w1, a2, w2)
    if which == Q_RMS_CURRENT_DENSITY:
        return rms_current_ma(a1, w1, f, a2, w2) / area_cm2
    if which == Q_SHANNON_K:
        return shannon_k(charge_per_phase_uc(a1, w1, a2, w2), area_cm2)
    if which == Q_NET_DC:
        return net_dc_ua(a1, w1, f, a2, w2)
    if which == Q_INTERPHASE_GAP:
        return g
    if which == Q_ANODIC_WIDTH_RATIO:
        return r
    if which == Q_PULSE_PERIOD_FRACTION:
        return period_fraction(w1, f, w2, g)
    return math.nan


@kernel
def first_pulse_breach(
    limits: Floats, a1: float, w1: float, f: float, a2: float, w2: float, g: float,
    r: float, start: int,
) -> tuple[int, float]:
    """The first per-pulse limit at or after position ``start`` of ``PULSE_LIMITS`` that
    the pulse exceeds, and its value; (-1, 0) if none. NaN (inf - inf of huge values)
    exceeds every limit."""
    area = limits[ELECTRODE_AREA_CM2]
    for which in range(start, _PULSE_QUANTITIES):
        value = pulse_quantity(which, area, a1, w1, f, a2, w2, g, r)
        if not value <= limits[PULSE_RULES[which]]:
            return which, value
    return -1, 0.0
