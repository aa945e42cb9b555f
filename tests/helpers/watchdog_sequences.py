"""Generated command and sample sequences for the watchdog's property tests (the
installations they run on, and the Hypothesis strategies of what a loop, broken or not,
may ask): shared by ``tests/test_watchdog_properties.py`` and
``tests/test_watchdog_kernels.py``; and the rise rule's count as the checkers rebuild it
(also ``tests/test_watchdog_stateful.py``)."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import strategies as st

from controller.ports import StimCommand
from controller.safety import SafetyLimits

_COMMON = SafetyLimits(
    max_amplitude_ma=50.0, max_pulse_width_us=400.0, max_frequency_hz=50.0,
    max_continuous_on_ms=600.0, max_duty_cycle=0.1, max_charge_rise_uc_per_s=300.0,
    sensor_timeout_ms=20.0, max_unknown_phase_ms=100.0,
)
#: Two installations, so that every per-pulse limit can be the one that binds: on a large
#: electrode the charge per phase, on a small one the current density and Shannon's k;
#: on the first a tight pulse shape (a gap up to 100 us, a ratio up to 3, a whole pulse
#: up to 4 % of its period: 400 us + 400 us at 50 Hz, symmetric, is exactly that) and
#: 80 mA on both channels together (each may have 50).
LIMIT_SETS = (
    _COMMON.model_copy(update={
        "max_charge_per_phase_uc": 15.0, "electrode_area_cm2": 8.0,
        "max_interphase_gap_us": 100.0, "max_anodic_width_ratio": 3.0,
        "max_pulse_period_fraction": 0.04, "max_total_amplitude_ma": 80.0}),
    _COMMON.model_copy(update={"max_charge_per_phase_uc": 35.0, "electrode_area_cm2": 3.0}),
)
CHANNELS = 2


SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 0.0, 1e300, 5e-324])


def value(low: float, high: float) -> st.SearchStrategy[float]:
    """Mostly plausible values around the limit, sometimes anything at all."""
    plausible = st.floats(low, high)
    return st.one_of(plausible, plausible, plausible, plausible, SPECIAL, st.floats())


# Strategies are built once here (not per draw): generation dominates the run time.
CHANNEL = st.sampled_from([0, 1] * 30 + [-1, CHANNELS])
ON = st.sampled_from([True, True, True, False])
WILD_AMPLITUDE, WILD_WIDTH, WILD_FREQUENCY = value(0.0, 60.0), value(0.0, 450.0), value(0.0, 60.0)
TAME = st.builds(StimCommand, CHANNEL, ON, st.floats(0.0, 45.0), st.floats(0.0, 380.0),
                 st.floats(0.0, 50.0))
WILD = st.builds(StimCommand, CHANNEL, ON, WILD_AMPLITUDE, WILD_WIDTH, WILD_FREQUENCY)
#: Mostly a valid asymmetry (1 = symmetric up to 4:1), sometimes no valid pulse at all.
RATIO = st.one_of(*[st.floats(1.0, 4.0)] * 4, st.sampled_from([0.0, 0.5, -1.0, math.nan, math.inf]))
#: Mostly no interphase gap, sometimes one, sometimes a broken one.
GAP = st.one_of(*[st.just(0.0)] * 3, st.floats(0.0, 150.0),
                st.sampled_from([-1.0, math.nan, math.inf]))


@st.composite
def asymmetric(draw) -> StimCommand:
    """A command with a pulse shape: an anodic width ratio (valid or not) and a gap."""
    base = draw(st.sampled_from([TAME, TAME, TAME, WILD]).flatmap(lambda kind: kind))
    return dataclasses.replace(base, anodic_width_ratio=draw(RATIO), interphase_gap_us=draw(GAP))


#: One command in ten is wild, one in ten has a pulse shape.
COMMAND = st.sampled_from([TAME] * 24 + [WILD] * 3 + [asymmetric()] * 3).flatmap(lambda kind: kind)
#: Mostly the loop's period, often a long hold, one step in fifteen backwards or broken.
STEP_DT = st.one_of(
    *[st.just(0.002)] * 8, *[st.floats(0.0, 0.05)] * 2, *[st.floats(0.05, 1.2)] * 4,
    st.sampled_from([0.0, -0.002, -1.0, math.nan, math.inf]),
)
BURST = st.lists(COMMAND, min_size=1, max_size=3)
GYRO, HEEL = value(-3.0, 3.0), st.sampled_from([0, 1, 1, 3])
KNOWN = st.sampled_from([True, True, True, False])
#: What the loop does every period: a sample 2 ms after the last, then the commands.
LOOP = st.tuples(st.just("loop"), st.just(0.002), GYRO, HEEL, KNOWN, BURST)
#: What a broken loop might do: commands or samples alone, at any time at all.
SUBMIT = st.tuples(st.just("submit"), STEP_DT, BURST)
OBSERVE = st.tuples(st.just("observe"), STEP_DT, GYRO, HEEL, KNOWN)
RESET = st.just(("reset",))
#: Two families: commands alone at any times (long holds reach the on-time and duty-cycle
#: limits; without samples there is no sensor gap), and the loop's rhythm of sample then
#: commands, broken now and then by a stray command, sample or reset.
steps = st.one_of(
    st.lists(st.one_of(SUBMIT, SUBMIT, SUBMIT, SUBMIT, RESET), min_size=10, max_size=60),
    st.lists(st.one_of(LOOP, LOOP, LOOP, LOOP, LOOP, LOOP, SUBMIT, OBSERVE, RESET),
             min_size=10, max_size=60),
)


def held_charge_changed(before_uc: float, after_uc: float) -> bool:
    """Whether a channel's held charge changed, for the rise rule's count (it runs from
    the held charge's last change): by more than float rounding, so that a checker never
    restarts the count where the watchdog, whose charge is computed phase by phase, kept
    it running (a checker may only be the more lenient of the two)."""
    return abs(after_uc - before_uc) > 1e-9 * max(abs(before_uc), abs(after_uc))
