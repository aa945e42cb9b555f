"""The sample period of a recording is ``np.median`` of its time steps, to the bit
(``controller.detect.period`` computes it without importing ``numpy.ma``)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from controller.detect.period import median_period_s

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=True)


@given(st.lists(finite, min_size=2, max_size=60))
def test_the_median_step_is_numpys_to_the_bit(times):
    t_s = np.array(times)
    expected = float(np.median(np.diff(t_s)))
    found = median_period_s(t_s)
    assert found == expected and math.copysign(1.0, found) == math.copysign(1.0, expected)


@given(st.lists(finite, min_size=2, max_size=30), st.integers(min_value=0, max_value=29))
def test_a_missing_time_gives_nan_as_numpy_does(times, where):
    t_s = np.array(times)
    t_s[where % t_s.size] = np.nan
    assert math.isnan(median_period_s(t_s))


def test_fewer_than_two_samples_have_no_period():
    assert math.isnan(median_period_s(np.array([])))
    assert math.isnan(median_period_s(np.array([0.5])))


def test_a_500_hz_recording_has_a_2_ms_period_and_numpy_ma_stays_unloaded():
    code = (
        "import sys, numpy as np\n"
        "from controller.detect.period import median_period_s\n"
        "print(median_period_s(np.arange(30000) / 500.0), 'numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert float(out[0]) == float(np.median(np.diff(np.arange(30000) / 500.0)))
    assert out[1] == "False"
