"""Kernels run as plain Python for a set-up call (``kernels.in_python``) give the compiled
kernels' results bit for bit: the pulse arithmetic of the config check and the ``Pulse``
properties (a config is checked exactly as the watchdog's compiled loop will check its
commands), and the simulated ankle's starting angle (``sim.ankle.new_ankle_state``).

They run as Python so that a first ``fes sim`` compiles nothing with a Python wrapper
before its loop's compilation starts in two processes
(``controller.trial.compile_ahead``)."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.kernels import in_python
from controller.safety import SafetyLimits, pulse_math
from controller.safety.rules import LIMIT_FIELDS, PULSE_RULES
from controller.stim.settings import ChannelConfig
from sim import ankle
from sim.patient import load_patient


def _bits(value: float) -> bytes:
    """The IEEE double's 8 bytes: equal bits, NaN payload and sign of zero included."""
    return struct.pack("<d", float(value))


def _same(compiled: object, python: object) -> None:
    left = compiled if isinstance(compiled, tuple) else (compiled,)
    right = python if isinstance(python, tuple) else (python,)
    assert [_bits(x) for x in left] == [_bits(x) for x in right], (compiled, python)


def _bounded(model: type, name: str) -> st.SearchStrategy[float]:
    """Every value the config model accepts for the field ``name``."""
    low = high = None
    for rule in model.model_fields[name].metadata:
        low = getattr(rule, "ge", None) if low is None else low
        low = getattr(rule, "gt", None) if low is None else low
        high = getattr(rule, "le", None) if high is None else high
    return st.floats(min_value=low, max_value=high, allow_nan=False)


#: A limits array of any valid ``[safety]`` section.
_LIMITS = st.builds(
    lambda values: np.array(values, dtype=np.float64),
    st.tuples(*(_bounded(SafetyLimits, name) for name in LIMIT_FIELDS)),
)
#: A channel's pulse of any valid config: amplitude, width, frequency, anodic ratio, gap.
_CHANNEL = st.tuples(*(_bounded(ChannelConfig, name) for name in (
    "amplitude_ma", "pulse_width_us", "frequency_hz", "anodic_width_ratio",
    "interphase_gap_us")))
#: Any finite non-negative number, as a command's fields may hold (overflow included).
_ANY = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)


def _check_pulse(
    limits: np.ndarray, a1: float, w1: float, f: float, ratio: float, gap: float
) -> None:
    compiled_phase = pulse_math.recovery_phase(a1, w1, ratio)
    _same(compiled_phase, in_python(pulse_math.recovery_phase)(a1, w1, ratio))
    a2, w2 = compiled_phase
    pulse = (a1, w1, f, a2, w2)
    for name in ("net_dc_ua", "rms_current_ma"):
        kernel = getattr(pulse_math, name)
        _same(kernel(*pulse), in_python(kernel)(*pulse))
    charge = pulse_math.charge_per_phase_uc(a1, w1, a2, w2)
    _same(charge, in_python(pulse_math.charge_per_phase_uc)(a1, w1, a2, w2))
    area = float(limits[0])
    _same(pulse_math.shannon_k(charge, area), in_python(pulse_math.shannon_k)(charge, area))
    _same(pulse_math.period_fraction(w1, f, w2, gap),
          in_python(pulse_math.period_fraction)(w1, f, w2, gap))
    for start in range(len(PULSE_RULES) + 1):
        _same(pulse_math.first_pulse_breach(limits, *pulse, gap, ratio, start),
              in_python(pulse_math.first_pulse_breach)(limits, *pulse, gap, ratio, start))


@settings(max_examples=400, deadline=None)
@given(_LIMITS, _CHANNEL)
def test_every_valid_config_is_checked_bit_for_bit_as_compiled(limits, channel):
    _check_pulse(limits, *channel)


@settings(max_examples=400, deadline=None)
@given(_LIMITS, _ANY, _ANY, _ANY, st.one_of(_ANY, st.just(math.nan), st.just(math.inf)),
       _ANY)
def test_any_command_pulse_is_computed_bit_for_bit_as_compiled(limits, a1, w1, f, ratio, gap):
    _check_pulse(limits, a1, w1, f, ratio, gap)


def test_checking_a_config_compiles_no_kernel():
    """Checking a config over its limits (a pulse over two of them, so every rule is
    asked) leaves every kernel uncompiled: a first run's compiling starts with its loop."""
    script = textwrap.dedent("""
        from controller.config import load_config
        from controller.errors import ConfigError
        from controller.kernels import KERNELS
        try:
            load_config(overrides={"safety": {"max_amplitude_ma": 20.0,
                                              "max_charge_per_phase_uc": 5.0}})
        except ConfigError as err:
            print(len(err.problems))
        print(sorted(name for name, k in KERNELS.items() if k.signatures))
    """)
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, timeout=120).stdout.splitlines()
    assert int(lines[0]) >= 2
    assert lines[1] == "[]"


@pytest.fixture(scope="module", params=["healthy", "moderate", "severe"])
def ankle_params(request: pytest.FixtureRequest) -> np.ndarray:
    return ankle.make_params(load_patient(request.param), 0.001)


@settings(max_examples=300, deadline=None)
@given(phase=st.floats(min_value=-0.5, max_value=1.5, allow_nan=False))
def test_the_ankle_starts_at_the_compiled_flat_foot_angle(ankle_params, phase):
    _same(ankle.flat_angle(phase, ankle_params), in_python(ankle.flat_angle)(phase, ankle_params))
